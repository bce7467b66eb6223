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
//     subjects' protected attributes are audited with fairness.Audit.
//   - FP-6: every profile field and label is measured against every
//     protected attribute; a feature above the threshold is flagged, the
//     flag is logged (kind "proxy_flag") and Sensitive reports it until a
//     reviewer clears it (kind "proxy_clear"). Flags and clearances are
//     rebuilt from the audit log at start, so every node agrees.
//   - FP-1: price-shown events (a declared event type with item and price
//     fields) are scanned across segments and labels.
//   - FB-1, FB-2: exposure events (views) give each subject's category
//     entropy, coverage and exposure concentration per period, with the
//     trend; a subject below the diversity floor raises an alert. Reports
//     are kept (in memory and, when configured, as JSON files).
//
// Every alert is appended to the audit log (kind "alert") with its
// requirement id, metric and value, never a personal value; subjects appear
// only as pseudonyms. Restricted subjects (storage only, SR-7) are left out
// of every monitor, and the report says how many.
package monitor
