-- Consent evidence: the user agent is sealed with the subject's data key
-- (keys.ConsentAD) from now on, so that erasure makes it unreadable in
-- backups too, and user_agent holds ''. Rows written before keep their
-- user agent in user_agent, bounded here to the 512 bytes the ledger has
-- always kept: sealing them needs the master key, which a SQL migration
-- does not have; erasure deletes them with the subject's other rows.
ALTER TABLE consents ADD COLUMN ua_sealed BLOB;
UPDATE consents SET user_agent = substr(user_agent, 1, 512) WHERE length(CAST(user_agent AS BLOB)) > 512;
