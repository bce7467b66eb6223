-- Events without the (pseudonym, time) index (issue 14, ingest over HTTP).
--
-- Every read of events names the pseudonym, and the primary key
-- (pseudonym, id) already holds a subject's events together; with the
-- table partitioned by pseudonym, a subject's rows are in one partition
-- and its key range is contiguous. A read by time then sorts one
-- subject's rows, as SQLite has done since its events were clustered by
-- subject (sqlite 0004). The index cost every inserted event a fourth
-- B-tree insert, about a fifth of PostgreSQL's work per event (measured in
-- docs/BENCHMARKS.md, "Ingest over HTTP"). The expiry sweep keeps its
-- partial index on expires; idempotency keys keep their unique index.

DROP INDEX IF EXISTS events_subject_time;
