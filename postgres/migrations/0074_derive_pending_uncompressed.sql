-- derive_pending's pseudonyms stored out of line without compression
-- (issue 14, ingest over HTTP on PostgreSQL).
--
-- A row names a chunk's subjects: 1,000 pseudonyms are 33 kB of random
-- hexadecimal, which pglz tries to compress on every insert and gives up
-- on (the value stays 33 kB): 3 ms of the backend's CPU per chunk, against
-- 0.1-0.3 ms to store it as it is.

ALTER TABLE derive_pending ALTER COLUMN pseudonyms SET STORAGE EXTERNAL;
