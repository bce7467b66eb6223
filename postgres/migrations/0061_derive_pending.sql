-- Batches whose subjects' labels wait for incremental derivation
-- (derive.Queue). Ingest adds one row per stored chunk, naming its
-- subjects (their pseudonyms, space-separated), in the chunk's own
-- transaction; the queue deletes the row, in a page's write transaction,
-- once every subject it names has been derived from a read made after
-- the row committed. A process that stops leaves the rows of what it had
-- not derived, and the next start derives those subjects. One row per
-- chunk, not per subject: a row per subject cost as much as the events'
-- own insert.
CREATE TABLE derive_pending (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pseudonyms TEXT NOT NULL
);
