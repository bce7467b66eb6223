-- Sorted runs (issue 14, target 1, session 6). Ingest wrote each event
-- twice through the one writer: appended to events_new with a
-- (pseudonym, idem) index, whose random inserts cost more than the row
-- itself, then moved into the clustered table. Now each transaction's
-- events are one run: written once, sorted by (pseudonym, id), at the
-- right edge of a table keyed (run, pseudonym, id), where no page in the
-- middle of the tree is split and no secondary index is touched. A
-- subject's events in the runs are one seek per run; event_runs lists the
-- runs (one row per run, not per event) so reads, erasure and the sweep
-- seek run by run, and skip runs that cannot hold what they look for.
-- The mover still clusters runs into events in the background, when
-- ingest is idle or the runs pile up, in one transaction per move.
-- Idempotency keys are unique across every run by a partial index that
-- events without a key never touch.
-- Events still appended in the old events_new move into the clustered
-- table here, sorted, so every event is kept with its id.
INSERT INTO events (id, pseudonym, type, time, idem, sealed, expires)
	SELECT id, pseudonym, type, time, idem, sealed, expires FROM events_new ORDER BY pseudonym, id;
DROP TABLE events_new;
CREATE TABLE events_new (
	run       INTEGER NOT NULL,
	id        INTEGER NOT NULL,
	pseudonym BLOB NOT NULL,
	type      TEXT NOT NULL,
	time      INTEGER NOT NULL,
	idem      BLOB,
	sealed    BLOB NOT NULL,
	expires   INTEGER,
	PRIMARY KEY (run, pseudonym, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX events_new_idem ON events_new (pseudonym, idem) WHERE idem IS NOT NULL;
-- One row per run: run is the first id reserved for it, last the last;
-- the ids of different runs never overlap, so the run of an id is the
-- greatest run not above it. n counts its events when written (a hint
-- for sizing moves); expires is the earliest expiry in it, NULL if none
-- expires (a lower bound once events are rewritten or deleted, which the
-- sweep needs only to skip runs that hold nothing expired).
CREATE TABLE event_runs (
	run     INTEGER PRIMARY KEY,
	last    INTEGER NOT NULL,
	n       INTEGER NOT NULL,
	expires INTEGER
);
