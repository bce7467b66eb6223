// Package rules reads signed rule packs: the standards — lexicon of
// protected characteristics and sensitive inferences, prohibited practices,
// tier floors, retention caps, minors rules, jurisdictions and alert
// thresholds — that a catalog is checked against. The company writes its
// catalog; it does not write the rules the catalog is judged by.
//
// Invariant: nothing unverified is trusted. A pack is a C2SP signed note
// (golang.org/x/mod/sumdb/note, as the audit checkpoints) whose text is the
// pack's JSON (schema in docs/RULEPACK.md); Open verifies the signature
// against the trusted keys before it reads a byte of the JSON, so a *Pack
// exists only for a pack a trusted key signed. The default pack is embedded
// and verified with DefaultKey, whose signing key is not in the repository:
// an edited default pack fails verification, and a pack given with --pack
// must be signed by the default key or the regulator's key when joined.
//
// Matching cannot be dodged by spelling: Match normalises the text and the
// lexicon alike — Unicode NFKC (full-width letters), traditional and variant
// characters to simplified (OpenCC's character tables, embedded), case
// folding, tone marks and tone numbers dropped, and spaces, dots and other
// separators removed — then finds Chinese and pinyin terms anywhere and
// English terms as whole words however separators split them.
package rules
