-- Bucket leases (package cluster, issue 15). A SQLite store has one
-- writer and no cluster, so the table stays empty and every bucket's
-- epoch reads 0; it exists so that both engines keep one store contract.
CREATE TABLE leases (
	bucket INTEGER PRIMARY KEY,
	epoch  INTEGER NOT NULL,
	node   INTEGER NOT NULL,
	taken  INTEGER NOT NULL
);
