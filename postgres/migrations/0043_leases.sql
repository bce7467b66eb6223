-- Bucket leases for serve --cluster (package cluster, issue 15): one row
-- per subject bucket, whose epoch grows each time a node takes the
-- bucket. A node's writes for a bucket read the epoch FOR SHARE in their
-- own transaction and are refused unless it is the epoch the node took,
-- so a node that lost a bucket (its session ended while it was paused)
-- cannot write for it, and a taker waits for a write in flight.
CREATE TABLE leases (
	bucket INTEGER PRIMARY KEY,
	epoch  BIGINT NOT NULL,
	node   INTEGER NOT NULL,
	taken  TIMESTAMPTZ NOT NULL
);
