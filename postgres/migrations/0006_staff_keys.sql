-- Staff keys belong to named people ("team/person", RO-7), expire, can be
-- revoked and record when they were last used. Revoked keys stay, so that
-- their hash can never be registered again; a name is unique among the
-- keys in force. Keys stored before names existed are named by their id.
ALTER TABLE api_keys ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires timestamptz;
ALTER TABLE api_keys ADD COLUMN revoked timestamptz;
ALTER TABLE api_keys ADD COLUMN last_used timestamptz;
UPDATE api_keys SET name = id;
CREATE UNIQUE INDEX api_keys_name ON api_keys (name) WHERE revoked IS NULL;
