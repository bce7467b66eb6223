-- The regulator node's tables (package regulator): enrolled companies and
-- the mirror of every log entry the regulator witnessed. A company
-- engine's database has them too, empty. No personal data: keys, digests,
-- filings and pseudonymous log entries.
CREATE TABLE reg_companies (
	id             text PRIMARY KEY,
	name           text NOT NULL,
	token_hash     bytea NOT NULL UNIQUE,
	origin         text UNIQUE, -- NULL until the first filing
	log_key        text NOT NULL DEFAULT '',
	receipt_key    text NOT NULL DEFAULT '',
	catalog_digest text NOT NULL DEFAULT '',
	algorithms     bytea,
	size           bigint NOT NULL DEFAULT 0,
	checkpoint     bytea,
	contact        timestamptz,
	created        timestamptz NOT NULL
);

CREATE TABLE reg_mirror (
	company text NOT NULL REFERENCES reg_companies (id),
	idx     bigint NOT NULL,
	data    bytea NOT NULL,
	hashes  bytea NOT NULL,
	PRIMARY KEY (company, idx)
);

-- Signed orders to companies (suspend, lift, receivership, …). body is
-- the JSON of regulator.OrderRecord: the signed order and its state.
CREATE TABLE reg_orders (
	id      text PRIMARY KEY,
	company text NOT NULL REFERENCES reg_companies (id),
	created timestamptz NOT NULL,
	body    bytea NOT NULL
);
CREATE INDEX reg_orders_company ON reg_orders (company, created);
