// Package regulator provides the regulator's node — the state's seat as
// guarantor of commercial profiling (国家担保责任: prepare, supervise,
// take over) — and the client a company engine uses to join it.
//
// A regulator node is a separate process with its own store, master key,
// audit log and staff (roles regulator-admin and inspector). It enrols
// companies, receives their filings (log origin and key, receipt key,
// catalog digest, algorithm filing), and witnesses their audit logs:
//
//   - Checkpoints arrive by C2SP tlog-witness add-checkpoint
//     (https://github.com/C2SP/C2SP/blob/main/tlog-witness.md) with an
//     RFC 6962 consistency proof from the last checkpoint cosigned for
//     that log; the node checks the proof with golang.org/x/mod/sumdb/tlog
//     and answers with a C2SP tlog-cosignature
//     (https://github.com/C2SP/C2SP/blob/main/tlog-cosignature.md), made
//     by package witness.
//   - As the mirror of every log it witnesses, the node also keeps the
//     entries: the engine uploads them before the checkpoint, and the node
//     cosigns only a tree whose root it recomputed from its own copy. A
//     company that restores an old backup, winds its log back or forks it
//     can therefore fetch the witnessed entries back, verified against a
//     tree it can no longer rewrite.
//
// Invariant 8 (nothing unverified is trusted): a checkpoint is cosigned
// only if its signature verifies with the filed log key, it extends the
// last cosigned tree, and the mirrored entries hash to its root; the
// compare-and-set of the witnessed size is one store statement, so two
// submissions can never roll it back. Invariant 4: nothing about a
// subject reaches the regulator — log entries hold pseudonyms and digests.
//
// Dead-man switch (SG-5, a weak precaution by tier): a max_silence order
// sets how long the engine may go without an answer from the regulator;
// past it the engine's high-tier use-cases are refused (Enforcer.Silence,
// checked in apply's Gate) while minimal and limited ones go on, and they
// resume at the next answer. The order is signed and logged like any
// other, so every node of the company reads the limit from its own log
// even while the regulator is unreachable. An engine restarted while the
// regulator is down starts offline (Enforcer.Offline): high tier stopped
// until the first answer, on which it files and catches up.
//
// The node's storage is the narrow Store interface here, implemented by
// the sqlite and postgres packages beside portrait.Store over the same
// database; its own log is an audit.Log over that database.
package regulator
