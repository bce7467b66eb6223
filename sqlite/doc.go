// Package sqlite implements portrait.Store in one SQLite file, the
// embedded default engine that needs no set-up (modernc.org/sqlite, pure
// Go, WAL).
//
// It keeps invariant 7 (one store contract, two engines): it passes the
// same conformance suite as package postgres (storetest). Open returns its
// engine behind package guard, which checks the policy.Grant of every
// method that reads or writes personal values before the engine runs
// (invariant 2); the engine itself checks none. It keeps invariant 3 by
// running Update in one transaction, so an action and its audit entries
// commit together or not at all.
//
// It keeps invariant 4 (erasure is real): Erase deletes the subject's
// wrapped data key first, then everything derived; secure_delete makes
// SQLite zero the deleted content in place and in free pages, and
// TruncateWAL truncates the write-ahead log, after which no copy of the
// erased values is left in the files (SR-3).
//
// Each transaction's events are written once, as a sorted run of
// events_new listed in event_runs, and moved, clustered by subject, into
// events by a background mover that yields the writer to ingest
// (move.go) in slices of subjects, each one transaction, so an event is
// in exactly one place at every commit, and every read, the idempotency check, the
// expiry sweep and Erase cover the clustered table and every run. The
// clustered table has no index on expiry: the sweep finds its expired
// events through event_expiry, each subject's earliest clustered expiry,
// which every move, rewrite and erasure keeps exact (expiry.go).
//
// The schema is in migrations/, applied at Open and recorded in
// schema_version. Times are UTC unix nanoseconds; NULL is the zero time.
package sqlite
