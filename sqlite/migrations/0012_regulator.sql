-- The regulator node's tables (package regulator): enrolled companies and
-- the mirror of every log entry the regulator witnessed. A company
-- engine's database has them too, empty. No personal data: keys, digests,
-- filings and pseudonymous log entries.
CREATE TABLE reg_companies (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	token_hash     BLOB NOT NULL UNIQUE,
	origin         TEXT UNIQUE, -- NULL until the first filing
	log_key        TEXT NOT NULL DEFAULT '',
	receipt_key    TEXT NOT NULL DEFAULT '',
	catalog_digest TEXT NOT NULL DEFAULT '',
	algorithms     BLOB,
	size           INTEGER NOT NULL DEFAULT 0,
	checkpoint     BLOB,
	contact        INTEGER,
	created        INTEGER NOT NULL
);

CREATE TABLE reg_mirror (
	company TEXT NOT NULL REFERENCES reg_companies (id),
	idx     INTEGER NOT NULL,
	data    BLOB NOT NULL,
	hashes  BLOB NOT NULL,
	PRIMARY KEY (company, idx)
) WITHOUT ROWID;

-- Signed orders to companies (suspend, lift, receivership, …). body is
-- the JSON of regulator.OrderRecord: the signed order and its state.
CREATE TABLE reg_orders (
	id      TEXT PRIMARY KEY,
	company TEXT NOT NULL REFERENCES reg_companies (id),
	created INTEGER NOT NULL,
	body    BLOB NOT NULL
);
CREATE INDEX reg_orders_company ON reg_orders (company, created);
