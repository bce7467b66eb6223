-- The clustered table without its expiry index (issue 14, target 1,
-- session 7). Every moved event paid an insert into events_expires, a
-- fifth of the move's cost, so that the retention sweep could find
-- expired events in expiry order. The sweep now finds them through one
-- row per subject instead: the earliest expiry among the subject's
-- clustered events, kept exact (the move lowers it, a rewrite or delete
-- of a clustered event recomputes it before its transaction member ends,
-- erasure deletes it). A move writes a subject's row only when it lowers
-- it, so the common move (later events expiring later) writes none.
-- Events still in runs are found through event_runs.expires as before.
CREATE TABLE event_expiry (
	pseudonym BLOB PRIMARY KEY,
	expires   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX event_expiry_expires ON event_expiry (expires);
INSERT INTO event_expiry (pseudonym, expires)
	SELECT pseudonym, min(expires) FROM events WHERE expires IS NOT NULL GROUP BY pseudonym;
DROP INDEX events_expires;
