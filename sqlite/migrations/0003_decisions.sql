-- Automated decisions (AD-2, AD-4); the explanation is sealed.
CREATE TABLE decisions (
	id            TEXT PRIMARY KEY,
	pseudonym     TEXT NOT NULL,
	usecase       TEXT NOT NULL,
	model         TEXT NOT NULL,
	model_version INTEGER NOT NULL,
	outcome       INTEGER NOT NULL,
	score         REAL NOT NULL,
	input_hash    TEXT NOT NULL,
	sealed        BLOB,
	status        TEXT NOT NULL,
	created       INTEGER NOT NULL,
	log_index     INTEGER NOT NULL
);
CREATE INDEX decisions_subject ON decisions (pseudonym, created);

-- Human reviews and appeals (AD-2, AD-3, RO-7); the statement is sealed.
CREATE TABLE reviews (
	id        TEXT PRIMARY KEY,
	decision  TEXT NOT NULL,
	pseudonym TEXT NOT NULL,
	usecase   TEXT NOT NULL,
	kind      TEXT NOT NULL,
	sealed    BLOB,
	status    TEXT NOT NULL,
	reviewer  TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	reason    TEXT NOT NULL,
	created   INTEGER NOT NULL,
	deadline  INTEGER,
	closed    INTEGER
);
CREATE INDEX reviews_status ON reviews (status, created);
CREATE INDEX reviews_subject ON reviews (pseudonym);

-- The item catalog recommendations rank: not personal data.
CREATE TABLE items (
	id         TEXT PRIMARY KEY,
	categories TEXT NOT NULL,
	attributes TEXT NOT NULL,
	price      REAL NOT NULL,
	updated    INTEGER
);

-- Audit-only protected attributes (FP-2), apart from the profile.
CREATE TABLE protected (
	pseudonym TEXT NOT NULL,
	attribute TEXT NOT NULL,
	sealed    BLOB NOT NULL,
	PRIMARY KEY (pseudonym, attribute)
);
