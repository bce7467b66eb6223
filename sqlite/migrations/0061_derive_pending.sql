-- Subjects whose labels wait for incremental derivation (derive.Queue).
-- Ingest adds a row per subject in the transaction that stores the
-- subject's events, so a process that stops with subjects queued leaves
-- them here, and the next start derives them. Rows are only ever added
-- and deleted, never updated: the queue deletes, in the transaction that
-- writes a page's labels, the rows it read before reading the page's
-- events, so a row added meanwhile stays for the next derivation.
CREATE TABLE derive_pending (
	id        INTEGER PRIMARY KEY,
	pseudonym TEXT NOT NULL
);
CREATE INDEX derive_pending_subject ON derive_pending (pseudonym);
