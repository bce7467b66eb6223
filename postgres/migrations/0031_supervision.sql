-- Supervision documents on the regulator node (package regulator,
-- issue 11): signed supervision reports, complaints (their text sealed),
-- rule-pack drafts with comments and sign-offs. body is the JSON the
-- regulator package defines for each kind; no personal data in clear.
CREATE TABLE reg_docs (
	kind    TEXT NOT NULL,
	id      TEXT NOT NULL,
	company TEXT NOT NULL DEFAULT '',
	created TIMESTAMPTZ NOT NULL,
	body    BYTEA NOT NULL,
	PRIMARY KEY (kind, id)
);
CREATE INDEX reg_docs_company ON reg_docs (kind, company, created);
