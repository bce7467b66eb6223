-- The consent string (IAB TCF v2.2 or GPP) a consent record was decided
-- from, kept as evidence of what the subject chose in the company's CMP.
ALTER TABLE consents ADD COLUMN consent_string TEXT NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN string_type TEXT NOT NULL DEFAULT '';
