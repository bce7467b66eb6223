// Package tcf decodes the consent strings that consent-management platforms
// (CMPs) produce: IAB Europe Transparency and Consent Framework v2.2 TC
// strings and IAB Tech Lab Global Privacy Platform (GPP) strings.
//
// It implements, from the public specifications:
//
//   - "Consent string and vendor list formats v2" (IAB Tech Lab, TCF v2.2):
//     the core segment (version, created, last updated, CMP id and version,
//     consent screen and language, vendor list and policy versions, special
//     feature opt-ins, purpose consents and legitimate interests, publisher
//     country, vendor consents and legitimate interests in bitfield or range
//     encoding, publisher restrictions) and the optional segments that
//     follow it after a "." (disclosed vendors, allowed vendors, publisher
//     purposes).
//   - "Global Privacy Platform String" v1 (IAB Tech Lab): the header with its
//     Fibonacci-coded range of section ids, the "~"-separated sections, the
//     EU TCF v2 section (id 2, a TC string) and the MSPA US National section
//     "usnat" (id 7, versions 1 and 2, with its GPC sub-section).
//
// Decoding is total: any input yields a value or an error, never a panic,
// and the size of what is decoded is bounded by the size of the input (a
// range of vendor ids is kept as a bitset of at most MaxVendorId bits, not
// expanded), so a hostile string cannot make the server allocate more than
// a small multiple of its length.
//
// The package only reads strings; what they mean for Portrait's purposes is
// declared in the catalog (catalog.Purpose.TCF and USNat) and recorded by the
// consent ledger, which keeps the string as evidence on the receipt.
package tcf
