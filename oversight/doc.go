// Package oversight produces what auditors, regulators and the public use
// to hold the handler to account, all generated from the live catalog and
// the stores rather than written by hand (FA-6):
//
//   - the record of processing activities (GDPR Art. 30; FA-4);
//   - the algorithm filing record (互联网信息服务算法推荐管理规定 Art. 24;
//     FA-3), with a dated change history built from "catalog" audit
//     records, one per distinct catalog the system has run with;
//   - the evidence pack (PIPL Art. 54, 63, 64; FA-2, RO-1, RO-2): one
//     Ed25519-signed JSON bundle that Verify checks offline;
//   - breach notices (PIPL Art. 57; RO-3);
//   - violation reports from anyone, tracked to an answer (RO-8);
//   - four eyes at the build stage (SG-7, invariant 9): a catalog record
//     that adds or changes labels or use-cases is a change request, and
//     they stay held — suspended under unapproved_label/unapproved_usecase
//     on every node — until a named person other than its author approves
//     it (and, joined, the regulator countersigns its high-tier use-cases),
//     all read back from the verified log (invariant 8).
//
// Breaches and reports are kept as portrait.Case rows, so the deadline and
// overdue machinery of subject requests covers them too; their audit
// records hold only digests, and a report's text is sealed with its own
// data key (invariant 4), since a reporter may name people.
package oversight
