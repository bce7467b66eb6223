-- Subjects whose labels wait for incremental derivation (derive.Queue).
-- Ingest adds a row per subject in the transaction that stores the
-- subject's events, so a process that stops with subjects queued leaves
-- them here, and the next start derives them. Rows are only ever added
-- and deleted, never updated, so ingest and the queue never wait on each
-- other's row locks: the queue deletes, in the transaction that writes a
-- page's labels, the rows it read before reading the page's events, and
-- a row added meanwhile (a new id) stays for the next derivation.
CREATE TABLE derive_pending (
	id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pseudonym TEXT NOT NULL
);
CREATE INDEX derive_pending_subject ON derive_pending (pseudonym);
