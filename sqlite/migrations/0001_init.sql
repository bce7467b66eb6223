-- Times are UTC unix nanoseconds; NULL stands for the zero time.

CREATE TABLE subjects (
	pseudonym        TEXT PRIMARY KEY,
	wrapped_key      BLOB NOT NULL,
	sealed_id        BLOB,
	created          INTEGER NOT NULL,
	minor            INTEGER NOT NULL DEFAULT 0,
	restricted       INTEGER NOT NULL DEFAULT 0,
	object_profiling INTEGER NOT NULL DEFAULT 0,
	object_marketing INTEGER NOT NULL DEFAULT 0,
	personalization  INTEGER NOT NULL DEFAULT 100 CHECK (personalization BETWEEN 0 AND 100)
);

CREATE TABLE events (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	pseudonym TEXT NOT NULL,
	type      TEXT NOT NULL,
	time      INTEGER NOT NULL,
	idem      BLOB,
	sealed    BLOB NOT NULL,
	expires   INTEGER
);
CREATE UNIQUE INDEX events_idem ON events (pseudonym, idem) WHERE idem IS NOT NULL;
CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL;
CREATE INDEX events_subject_time ON events (pseudonym, time);

CREATE TABLE profile (
	pseudonym TEXT NOT NULL,
	field     TEXT NOT NULL,
	sealed    BLOB NOT NULL,
	source    TEXT NOT NULL,
	updated   INTEGER NOT NULL,
	expires   INTEGER,
	PRIMARY KEY (pseudonym, field)
);

CREATE TABLE labels (
	pseudonym TEXT NOT NULL,
	label     TEXT NOT NULL,
	version   INTEGER NOT NULL,
	sealed    BLOB NOT NULL,
	computed  INTEGER NOT NULL,
	expires   INTEGER,
	PRIMARY KEY (pseudonym, label)
);

-- Append-only ledger (CN-2): rows are inserted, never updated.
CREATE TABLE consents (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	pseudonym      TEXT NOT NULL,
	purpose        TEXT NOT NULL,
	status         TEXT NOT NULL,
	notice_version TEXT NOT NULL,
	channel        TEXT NOT NULL,
	user_agent     TEXT NOT NULL,
	ip             TEXT NOT NULL,
	guardian       INTEGER NOT NULL,
	categories     TEXT NOT NULL,
	at             INTEGER NOT NULL
);
CREATE INDEX consents_subject ON consents (pseudonym, purpose, seq);

CREATE TABLE suppressions (
	pseudonym TEXT NOT NULL,
	label     TEXT NOT NULL,
	deleted   INTEGER NOT NULL,
	PRIMARY KEY (pseudonym, label)
);

CREATE TABLE suspensions (
	kind         TEXT NOT NULL,
	id           TEXT NOT NULL,
	reason       TEXT NOT NULL,
	suspended_by TEXT NOT NULL,
	at           INTEGER NOT NULL,
	PRIMARY KEY (kind, id)
);

CREATE TABLE generation (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	n   INTEGER NOT NULL
);
INSERT INTO generation (one, n) VALUES (1, 0);

CREATE TABLE log_entries (
	idx    INTEGER PRIMARY KEY,
	data   BLOB NOT NULL,
	hashes BLOB NOT NULL
);

CREATE TABLE log_head (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	size INTEGER NOT NULL
);
INSERT INTO log_head (one, size) VALUES (1, 0);

-- Every signed checkpoint is kept; the newest is the log's current one.
CREATE TABLE checkpoints (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	note    BLOB NOT NULL,
	created INTEGER NOT NULL
);

CREATE TABLE api_keys (
	id      TEXT PRIMARY KEY,
	hash    BLOB NOT NULL UNIQUE,
	role    TEXT NOT NULL,
	created INTEGER NOT NULL
);
