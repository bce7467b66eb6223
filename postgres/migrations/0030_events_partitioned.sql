-- Events partitioned by a hash of the pseudonym (issue 15).
--
-- Every query on events names the pseudonym (a subject's events, one
-- event by id and pseudonym, erasure by pseudonym) except the expiry
-- sweep, which reads every partition's small partial index. Partitioning
-- by pseudonym keeps a subject's events in one partition, and is the
-- shape a distributed PostgreSQL wants: in Citus the same table becomes
-- distributed by pseudonym (docs/SCALING.md) without a query changing.
--
-- A partitioned table's unique indexes must include the partition key,
-- so the primary key becomes (pseudonym, id); id stays unique on its own
-- because it still comes from one identity sequence.
--
-- The rows are moved in this migration's transaction: a node that starts
-- while it runs waits on the migration lock, and a failure leaves the old
-- table as it was.

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_idem RENAME TO events_unpartitioned_idem;
ALTER INDEX events_expires RENAME TO events_unpartitioned_expires;
ALTER INDEX events_subject_time RENAME TO events_unpartitioned_subject_time;

CREATE TABLE events (
	id        BIGINT GENERATED ALWAYS AS IDENTITY,
	pseudonym TEXT NOT NULL,
	type      TEXT NOT NULL,
	time      TIMESTAMPTZ NOT NULL,
	idem      BYTEA,
	sealed    BYTEA NOT NULL,
	expires   TIMESTAMPTZ,
	PRIMARY KEY (pseudonym, id)
) PARTITION BY HASH (pseudonym);

-- Sixteen partitions: enough to spread a large table's vacuum and index
-- work, few enough that planning a query that cannot prune (the expiry
-- sweep) stays cheap. Changing the count means a new migration that
-- rebuilds the table; Citus has its own shard count (docs/SCALING.md).
CREATE TABLE events_p00 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 0);
CREATE TABLE events_p01 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 1);
CREATE TABLE events_p02 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 2);
CREATE TABLE events_p03 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 3);
CREATE TABLE events_p04 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 4);
CREATE TABLE events_p05 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 5);
CREATE TABLE events_p06 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 6);
CREATE TABLE events_p07 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 7);
CREATE TABLE events_p08 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 8);
CREATE TABLE events_p09 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 9);
CREATE TABLE events_p10 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 10);
CREATE TABLE events_p11 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 11);
CREATE TABLE events_p12 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 12);
CREATE TABLE events_p13 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 13);
CREATE TABLE events_p14 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 14);
CREATE TABLE events_p15 PARTITION OF events FOR VALUES WITH (MODULUS 16, REMAINDER 15);

CREATE UNIQUE INDEX events_idem ON events (pseudonym, idem) WHERE idem IS NOT NULL;
CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL;
CREATE INDEX events_subject_time ON events (pseudonym, time);

INSERT INTO events (id, pseudonym, type, time, idem, sealed, expires) OVERRIDING SYSTEM VALUE
	SELECT id, pseudonym, type, time, idem, sealed, expires FROM events_unpartitioned;
-- New ids continue after the moved ones, so ids keep their insertion order.
SELECT setval(pg_get_serial_sequence('events', 'id'), coalesce((SELECT max(id) FROM events_unpartitioned), 0) + 1, false);
DROP TABLE events_unpartitioned;
