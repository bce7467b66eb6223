-- Append, then cluster (issue 14, target 1). Ingest appends events here,
-- in arrival order: the id is the rowid, so a batch goes at the end of
-- the table instead of into each subject's run of the clustered events
-- table, which cost an insert 2.8-7x more. The engine's mover takes the
-- oldest appended events, sorted by (pseudonym, id), into events in
-- bounded transactions that insert and delete in one go, so an event is
-- always in exactly one of the two tables. Reads of a subject, erasure,
-- the retention sweep and the idempotency check cover both.
-- One index does two jobs: its prefix finds a subject's appended events,
-- and as a unique index it refuses a second (pseudonym, idem) here
-- (NULL keys never collide); the insert itself looks the key up in
-- events. No index on expires: the table is kept small by the mover, and
-- the sweep scans it.
CREATE TABLE events_new (
	id        INTEGER PRIMARY KEY,
	pseudonym BLOB NOT NULL,
	type      TEXT NOT NULL,
	time      INTEGER NOT NULL,
	idem      BLOB,
	sealed    BLOB NOT NULL,
	expires   INTEGER
);
CREATE UNIQUE INDEX events_new_subject ON events_new (pseudonym, idem);
