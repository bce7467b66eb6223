-- Times are timestamptz; NULL stands for the zero time.

CREATE TABLE subjects (
	pseudonym        TEXT COLLATE "C" PRIMARY KEY, -- byte order, as Pseudonyms pages and as SQLite sorts
	wrapped_key      BYTEA NOT NULL,
	sealed_id        BYTEA,
	created          TIMESTAMPTZ NOT NULL,
	minor            BOOLEAN NOT NULL DEFAULT false,
	restricted       BOOLEAN NOT NULL DEFAULT false,
	object_profiling BOOLEAN NOT NULL DEFAULT false,
	object_marketing BOOLEAN NOT NULL DEFAULT false,
	personalization  INTEGER NOT NULL DEFAULT 100 CHECK (personalization BETWEEN 0 AND 100)
);

CREATE TABLE events (
	id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pseudonym TEXT NOT NULL,
	type      TEXT NOT NULL,
	time      TIMESTAMPTZ NOT NULL,
	idem      BYTEA,
	sealed    BYTEA NOT NULL,
	expires   TIMESTAMPTZ
);
CREATE UNIQUE INDEX events_idem ON events (pseudonym, idem) WHERE idem IS NOT NULL;
CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL;
CREATE INDEX events_subject_time ON events (pseudonym, time);

CREATE TABLE profile (
	pseudonym TEXT NOT NULL,
	field     TEXT NOT NULL,
	sealed    BYTEA NOT NULL,
	source    TEXT NOT NULL,
	updated   TIMESTAMPTZ NOT NULL,
	expires   TIMESTAMPTZ,
	PRIMARY KEY (pseudonym, field)
);

CREATE TABLE labels (
	pseudonym TEXT NOT NULL,
	label     TEXT NOT NULL,
	version   INTEGER NOT NULL,
	sealed    BYTEA NOT NULL,
	computed  TIMESTAMPTZ NOT NULL,
	expires   TIMESTAMPTZ,
	PRIMARY KEY (pseudonym, label)
);

-- Append-only ledger (CN-2): rows are inserted, never updated.
CREATE TABLE consents (
	seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pseudonym      TEXT NOT NULL,
	purpose        TEXT NOT NULL,
	status         TEXT NOT NULL,
	notice_version TEXT NOT NULL,
	channel        TEXT NOT NULL,
	user_agent     TEXT NOT NULL,
	ip             TEXT NOT NULL,
	guardian       BOOLEAN NOT NULL,
	categories     TEXT[] NOT NULL,
	at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX consents_subject ON consents (pseudonym, purpose, seq);

CREATE TABLE suppressions (
	pseudonym TEXT NOT NULL,
	label     TEXT NOT NULL,
	deleted   BOOLEAN NOT NULL,
	PRIMARY KEY (pseudonym, label)
);

CREATE TABLE suspensions (
	kind         TEXT NOT NULL,
	id           TEXT NOT NULL,
	reason       TEXT NOT NULL,
	suspended_by TEXT NOT NULL,
	at           TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (kind, id)
);

CREATE TABLE generation (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	n   BIGINT NOT NULL
);
INSERT INTO generation (one, n) VALUES (1, 0);

CREATE TABLE log_entries (
	idx    BIGINT PRIMARY KEY,
	data   BYTEA NOT NULL,
	hashes BYTEA NOT NULL
);

-- The single row is locked (FOR UPDATE) by every appender, which
-- serialises the log across nodes.
CREATE TABLE log_head (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	size BIGINT NOT NULL
);
INSERT INTO log_head (one, size) VALUES (1, 0);

-- Every signed checkpoint is kept; the newest is the log's current one.
CREATE TABLE checkpoints (
	id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	note    BYTEA NOT NULL,
	created TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
	id      TEXT PRIMARY KEY,
	hash    BYTEA NOT NULL UNIQUE,
	role    TEXT NOT NULL,
	created TIMESTAMPTZ NOT NULL
);
