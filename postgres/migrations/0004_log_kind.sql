-- The kind of each audit record, so that readers that follow one kind
-- (catalog changes, proxy flags, notice marks) find it by index instead of
-- reading the whole log.
ALTER TABLE log_entries ADD COLUMN kind text NOT NULL DEFAULT '';
UPDATE log_entries SET kind = coalesce(convert_from(data, 'UTF8')::jsonb ->> 'kind', '');
CREATE INDEX log_entries_kind ON log_entries (kind, idx);
