package consent

import (
	"errors"
	"fmt"
	"slices"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tcf"
)

// Kinds of consent string a Change may carry (Change.StringType).
const (
	StringTCF = "tcfv2" // an IAB TCF v2.2 TC string
	StringGPP = "gpp"   // an IAB Global Privacy Platform string
)

// maxConsentString bounds the string kept as evidence; real TC strings
// with range-encoded vendor lists stay under a few kilobytes.
const maxConsentString = 16 << 10

// fromString decides what a CMP's consent string says about purpose p,
// through the mapping the catalog declares for it: true for consent,
// false for no consent. A string the mapping cannot read is an error that
// names the declaration to add.
func fromString(p *catalog.Purpose, typ, s string) (bool, error) {
	if len(s) > maxConsentString {
		return false, portrait.Errorf(portrait.EINVALID, "the consent string is %d bytes; at most %d are kept as evidence", len(s), maxConsentString)
	}
	var tc *tcf.TCString
	var us *tcf.USNat
	switch typ {
	case StringTCF:
		t, err := tcf.ParseTC(s)
		if err != nil {
			return false, invalidString(err)
		}
		tc = t
	case StringGPP:
		g, err := tcf.ParseGPP(s)
		if err != nil {
			return false, invalidString(err)
		}
		tc, us = g.TCFEU, g.USNat
	default:
		return false, portrait.Errorf(portrait.EINVALID, "consent string type %q: want %s or %s", typ, StringTCF, StringGPP)
	}
	var decided, granted = false, true
	if tc != nil && p.TCF != nil {
		decided = true
		granted = granted && tcfGrants(p.TCF, tc)
	}
	if us != nil && p.USNat != nil {
		decided = true
		granted = granted && usnatGrants(p.USNat, us)
	}
	if !decided {
		return false, &portrait.Error{Code: portrait.EINVALID, Requirement: "CN-1",
			Message: fmt.Sprintf("the %s string has no section that purpose %q maps; declare tcf: {purposes: [...]} or usnat: {opt_outs: [...]} under the purpose in the catalog", typ, p.ID)}
	}
	return granted, nil
}

func invalidString(err error) error {
	if errors.Is(err, tcf.ErrMalformed) {
		return portrait.Errorf(portrait.EINVALID, "%v", err)
	}
	return err
}

// tcfGrants: every mapped TCF purpose and special feature has consent and,
// when the company is a TCF vendor, so does the vendor, with no publisher
// restriction forbidding it a mapped purpose or requiring another basis.
func tcfGrants(m *catalog.TCFMapping, t *tcf.TCString) bool {
	for _, id := range m.Purposes {
		if !t.PurposeConsents.Has(id) {
			return false
		}
	}
	for _, id := range m.SpecialFeatures {
		if !t.SpecialFeatures.Has(id) {
			return false
		}
	}
	if m.Vendor == 0 {
		return true
	}
	if !t.VendorConsents.Has(m.Vendor) {
		return false
	}
	for _, r := range t.Restrictions {
		if slices.Contains(m.Purposes, r.Purpose) && r.Type != tcf.RequireConsent && r.Restricts(m.Vendor) {
			return false
		}
	}
	return true
}

// usnatGrants: no mapped opt-out was exercised (and notice was given, so
// "did not opt out" is a choice), every mapped sensitive category has
// consent, and no GPC signal rides in the string (CN-12).
func usnatGrants(m *catalog.USNatMapping, u *tcf.USNat) bool {
	if u.GPC != nil && *u.GPC {
		return false
	}
	for _, name := range m.OptOuts {
		v := map[string]int{"sale": u.SaleOptOut, "sharing": u.SharingOptOut, "targeted_advertising": u.TargetedAdvertisingOptOut}[name]
		if v != tcf.DidNotOptOut {
			return false
		}
	}
	for _, id := range m.Sensitive {
		if id > len(u.SensitiveDataProcessing) || u.SensitiveDataProcessing[id-1] != 2 {
			return false
		}
	}
	return true
}

// statusFromString turns the string's answer into the change to record:
// consent is a grant; no consent withdraws a standing grant and otherwise
// refuses. A status the caller also sent must agree with the string.
func statusFromString(p *catalog.Purpose, c Change, current policy.Status) (policy.Status, error) {
	granted, err := fromString(p, c.StringType, c.ConsentString)
	if err != nil {
		return policy.None, err
	}
	st := policy.Granted
	if !granted {
		st = policy.Refused
		if current == policy.Granted {
			st = policy.Withdrawn
		}
	}
	if c.Status != policy.None && (c.Status == policy.Granted) != granted {
		return policy.None, portrait.Errorf(portrait.EINVALID,
			"status %s contradicts the consent string, which says %s for purpose %q; send the string alone", c.Status, st, p.ID)
	}
	return st, nil
}
