-- The kind of each audit record, so that readers that follow one kind
-- (catalog changes, proxy flags, notice marks) find it by index instead of
-- reading the whole log.
ALTER TABLE log_entries ADD COLUMN kind TEXT NOT NULL DEFAULT '';
UPDATE log_entries SET kind = coalesce(json_extract(CAST(data AS TEXT), '$.kind'), '');
CREATE INDEX log_entries_kind ON log_entries (kind, idx);
