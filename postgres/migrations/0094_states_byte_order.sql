-- consents and suppressions keyed in byte order, as subjects already is
-- (issue 14, batch derivation). A batch page's states are read as one
-- range of each table's key between the page's first and last pseudonym
-- (tables.DB.StatesRange), and the page is listed in byte order
-- (SubjectsAfter); in a database whose default collation orders text
-- otherwise, the range would hold other subjects than the page and miss
-- some of its own. Pseudonyms are hexadecimal, where most collations
-- agree with byte order, but the store does not depend on that.

ALTER TABLE consents ALTER COLUMN pseudonym TYPE TEXT COLLATE "C";
ALTER TABLE suppressions ALTER COLUMN pseudonym TYPE TEXT COLLATE "C";
