// Package catalog loads and validates the declarations file — purposes,
// fields, event types, labels and use-cases — that says what the company may
// collect and do ("privacy as code").
//
// It keeps invariant 1, declared or refused: anything not declared here is
// rejected elsewhere, and a declaration that breaks a rule (no retention,
// no legal basis, a sensitive field without separate consent, an unknown
// fideslang key) is rejected here with file:line:column, what is wrong and
// how to fix it.
//
// Load and Parse walk the YAML node tree by hand, so every problem has an
// exact position, unknown keys get the nearest known key as a suggestion and
// a wrong shape is a Problem, never a panic. All problems are reported at
// once as *Errors, one line each: "file:line:col: message; fix: … [REQ-ID]".
//
// Top-level keys: version, jurisdiction, handler, blocklist, purposes, fields,
// event_types, labels, use_cases (see examples/demo/catalog.yaml). The rules,
// each reported with its requirement id:
//
//   - handler with name in zh-CN and en, contact (CN-7) and officer (RO-4);
//   - ids unique and every reference declared (invariant 1, CM-1);
//   - purposes: a known legal basis (CN-1), a zh-CN and en notice with a
//     notice_version and a fideslang data_use (CN-7), separate consent for
//     recipients (CN-8);
//   - fields: a fideslang data_category (CM-5), purposes (CM-1), retention
//     (CM-3); PIPL Art. 28 categories are sensitive and stay so (SM-1), and
//     every purpose of a sensitive field needs separate consent (SM-2); one
//     age field of type number (SM-3); a number field may declare its own
//     inclusive min and max (finite, min ≤ max, number fields only), else
//     ingest takes |value| ≤ 10¹⁵ (DefaultMaxMagnitude) and refuses the rest;
//   - labels: registered with bilingual name and description, kind, version
//     and owner (LP-1); the fields a label reads must be declared for all its
//     purposes (CM-1), never protected (FP-2), pass on sensitivity (SM-1,
//     SM-2) and, as sensitive model features, have a ground (SM-5); names are
//     checked against the rule pack's lexicon plus the catalog's blocklist (LP-1, LP-2)
//     and prohibited practices (FP-5) through the rule pack; what a rule reads is checked against
//     inputs and event types; the label engine adds its own checks through
//     LabelCheck;
//   - use-cases: kind and tier (RO-9); prohibited tiers and Art. 5 tags are
//     refused (FP-5); Annex III tags need tier high (AD-6); decisions name a
//     score label and have an impact assessment (AD-1) and an owner (RO-7);
//     prices and terms may not use preference or trading-habit data (FP-1).
//
// The standards themselves — the lexicon of protected characteristics and
// sensitive inferences, prohibited practices, tier floors, retention caps,
// minors rules and jurisdictions — come from a verified rule pack (package
// rules): Parse applies the embedded default pack, ParseWith a pack signed
// by a trusted key. Names, descriptions, ids and the string literals of
// label rules are matched after normalisation, so spelling does not dodge
// them, and every refusal a pack rule finds names the rule id. Diff and
// Scopes say when a purpose changed under the same notice version (CN-3).
//
// The data-category and data-use keys are the fideslang taxonomy, "fideslang
// taxonomy by Ethyca, CC BY 4.0", embedded from fideslang/.
package catalog
