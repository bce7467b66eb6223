// Package postgres implements portrait.Store in PostgreSQL (pgx, pgxpool)
// for many stateless nodes sharing one database.
//
// It keeps invariant 7 (one store contract, two engines): it passes the
// same conformance suite as package sqlite (storetest). Open returns its
// engine behind package guard, which checks the policy.Grant of every
// method that reads or writes personal values before the engine runs
// (invariant 2); the engine itself checks none. It keeps invariant 3 by
// running Update in one transaction; the audit log's head row is locked
// by Tx.LogSize until the transaction ends, so nodes append to one log in
// turn. Every governance change increments a shared generation counter in
// its own transaction, so every node sees it at once (invariant 5).
//
// It keeps invariant 4 (erasure is real): Erase deletes the subject's
// wrapped data key first, then everything derived. Dead tuples remain
// until VACUUM; without the key they are ciphertext nobody can read.
//
// Large event batches are copied (COPY) into a temporary table and
// inserted from it with ON CONFLICT DO NOTHING, which keeps idempotency
// keys working at bulk speed. The schema is in migrations/, applied at
// Open under an advisory lock and recorded in schema_version.
package postgres
