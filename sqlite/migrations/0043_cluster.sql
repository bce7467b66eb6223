-- Bucket leases (package cluster, issue 15). A SQLite store has one
-- writer and no cluster, so the table stays empty and every bucket's
-- epoch reads 0; it exists so that both engines keep one store contract.
CREATE TABLE leases (
	bucket INTEGER PRIMARY KEY,
	epoch  INTEGER NOT NULL,
	node   INTEGER NOT NULL,
	taken  INTEGER NOT NULL
);

-- An index of audit-log records by subject, for the kinds a reader asks
-- for (package delivery: who received a subject's data, for its export).
-- It is filled from the verified log by its readers, up to upto; nothing
-- in it is trusted: every entry it points to is checked against the
-- signed tree and its record's own subject and kind before use.
CREATE TABLE log_subjects (
	kind      TEXT NOT NULL,
	pseudonym TEXT NOT NULL,
	idx       INTEGER NOT NULL,
	PRIMARY KEY (kind, pseudonym, idx)
);
CREATE TABLE log_subjects_head (
	kind TEXT PRIMARY KEY,
	upto INTEGER NOT NULL
);

-- A monitor run's per-bucket partials (serve --cluster): each node leaves
-- the inputs it read for the buckets it holds, sealed with the nodes'
-- cipher, under its lease epoch; the node holding bucket 0 combines them
-- once every bucket is there, then deletes the run's rows. One row per
-- run and bucket, so no subject is counted twice.
CREATE TABLE monitor_partials (
	run    TEXT NOT NULL,
	bucket INTEGER NOT NULL,
	node   INTEGER NOT NULL,
	epoch  INTEGER NOT NULL,
	sealed BLOB NOT NULL,
	PRIMARY KEY (run, bucket)
);
