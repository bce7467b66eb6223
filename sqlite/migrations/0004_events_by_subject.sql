-- Events clustered by subject (issue 3). Rows stored in arrival order put
-- every event of a subject on another page, so reading a subject cost one
-- page read per event through the (pseudonym, time) index. Keyed by
-- (pseudonym, id) without a rowid, a subject's events are contiguous, and
-- new ones go at the end of their subject's run, so ingest touches one
-- page per subject; reads order a subject's events by time themselves,
-- and the (pseudonym, time) index is gone.
-- A pseudonym of 32 lowercase hex digits (keys.Pseudonym) is kept as its
-- 16 bytes, halving the key that the table and both indexes repeat;
-- any other stays text (see eventKey in read.go). The column is declared
-- BLOB because that affinity converts neither kind.
-- Ids now come from event_ids, advanced under the write lock; next starts
-- above every id AUTOINCREMENT ever handed out, so no id is reused.

CREATE TABLE event_ids (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	next INTEGER NOT NULL
);
INSERT INTO event_ids (one, next) SELECT 1, 1 + max(
	coalesce((SELECT max(id) FROM events), 0),
	coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0));

CREATE TABLE events_by_subject (
	id        INTEGER NOT NULL,
	pseudonym BLOB NOT NULL,
	type      TEXT NOT NULL,
	time      INTEGER NOT NULL,
	idem      BLOB,
	sealed    BLOB NOT NULL,
	expires   INTEGER,
	PRIMARY KEY (pseudonym, id)
) WITHOUT ROWID;
INSERT INTO events_by_subject (id, pseudonym, type, time, idem, sealed, expires)
	SELECT id, CASE WHEN length(pseudonym) = 32 AND pseudonym NOT GLOB '*[^0-9a-f]*' THEN unhex(pseudonym) ELSE pseudonym END,
		type, time, idem, sealed, expires FROM events ORDER BY 2, id;
DROP TABLE events;
ALTER TABLE events_by_subject RENAME TO events;
CREATE UNIQUE INDEX events_idem ON events (pseudonym, idem) WHERE idem IS NOT NULL;
CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL;
