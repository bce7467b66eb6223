-- Data-subject requests (SR-4, SR-5). They hold no personal values and
-- outlive erasure: the erasure case is the subject's receipt.
CREATE TABLE cases (
	id        TEXT PRIMARY KEY,
	pseudonym TEXT NOT NULL,
	type      TEXT NOT NULL,
	status    TEXT NOT NULL,
	created   INTEGER NOT NULL,
	deadline  INTEGER,
	closed    INTEGER,
	outcome   TEXT NOT NULL,
	reason    TEXT NOT NULL,
	log_index INTEGER NOT NULL
);
CREATE INDEX cases_subject ON cases (pseudonym, created);
CREATE INDEX cases_created ON cases (created);
