-- Consent evidence: the user agent is sealed with the subject's data key
-- (keys.ConsentAD) from now on, so that erasure makes it unreadable in
-- backups too, and user_agent holds ''. Rows written before keep their
-- user agent in user_agent, bounded here to the 512 bytes the ledger has
-- always kept: sealing them needs the master key, which a SQL migration
-- does not have; erasure deletes them with the subject's other rows.
ALTER TABLE consents ADD COLUMN ua_sealed BYTEA;
UPDATE consents SET user_agent = left(user_agent, 512) WHERE octet_length(user_agent) > 512;
