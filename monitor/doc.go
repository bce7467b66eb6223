// Package monitor runs Portrait's own fairness, price-discrimination and
// filter-bubble monitors over the stored portrait, keeps the protected
// attributes those monitors need apart from everything else, and renders
// the reports as JSON and as HTML with inline SVG charts (no script).
//
// The computation is package fairness; this package reads the store under
// grants from the decision point, feeds fairness, records what it found in
// the audit log and keeps the latest reports.
//
// Requirements and invariants:
//
//   - FP-2: protected attributes (catalog fields with protected: true) are
//     written through Tx.PutProtected with a Collect grant and sealed with
//     the subject's data key, additional data pseudonym+"/protected/"+name.
//     Only the auditor role and Portrait's own fairness engine may read
//     them. The role check lives here, not in package policy, because the
//     decision point rules on purposes and consent while this is a
//     separation-of-duties rule about one kind of data: the fairness engine
//     asks the decision point for an Access grant as the system caller
//     "fairness", and this package decides beforehand who may cause that
//     request. Every read is appended to the audit log (kind
//     "protected_access", attribute names only, no values) before the
//     values are returned: a read that cannot be logged does not happen
//     (invariant 3).
//   - FP-3, FP-4: per decision use-case, stored decisions joined with the
//     subjects' protected attributes are audited with fairness.Audit. The
//     model's automated outcome is the selection. Portrait records no
//     true outcome of a decision; the only known outcomes are human review
//     verdicts (upheld, overturned), so error rates compare the model with
//     its reviewers over reviewed decisions, and the report says so.
//     The counterfactual flip test re-runs the use-case's declared model
//     (catalog Label.Model, as apply.Decide does) on each subject's
//     current features with each protected attribute changed (no flip is
//     possible unless the attribute reaches the model, since FP-2 refuses
//     it as a feature) and, separately, with each flagged proxy the model
//     reads moved to the same rank within each other group (FP-6).
//   - FP-6: every profile field and label is measured against every
//     protected attribute; a feature above the threshold is flagged, the
//     flag is logged (kind "proxy_flag") and Sensitive reports it until a
//     reviewer clears it (kind "proxy_clear"). Flags and clearances are
//     rebuilt from the audit log at start, so every node agrees.
//   - FP-1: price-shown events (a declared event type with item and price
//     fields) are scanned across segments and labels. An alert on the same
//     item and context in EscalateAfter consecutive runs escalates: halting
//     the use-cases tagged pricing or terms is recommended, and with
//     AutoHalt done through Deps.Halter (apply's Halt, AD-7); the
//     escalation is logged (kind "escalation").
//   - FB-1, FB-2: exposure events (views) give each subject's category
//     entropy, coverage and exposure concentration per period, with the
//     trend; a subject below the diversity floor raises an alert. Reports
//     are kept (in memory and, when configured, as JSON files).
//     Recommendation answers are measured as they are returned: the audit
//     record keeps only a digest of the items, so apply calls Observe with
//     the items and their categories. Per recommender and per subject the
//     report gives category entropy, intra-list diversity, coverage, Gini
//     and the trend, against a floor settable per recommender. Memory is
//     bounded (periods kept, subjects kept, items per period); the
//     aggregates live in the node's memory and start empty on restart.
//
// A run splits by subject bucket across serve --cluster nodes: Collect
// reads one node's buckets into a Partial (logging the protected-attribute
// read, FP-2), Combine computes from partials covering every bucket once
// the report Run computes over all subjects, and refuses a bucket missing
// or doubled, so no subject is missed or counted twice.
//
// Every alert is appended to the audit log (kind "alert") with its
// requirement id, metric and value, never a personal value; subjects appear
// only as pseudonyms. Restricted subjects (storage only, SR-7) are left out
// of every monitor, and the report says how many.
package monitor
