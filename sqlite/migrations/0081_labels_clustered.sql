-- Labels in a table clustered by its key (subject, label), WITHOUT ROWID,
-- instead of a rowid table beside an index on that key. Every label
-- write (a batch derivation writes one row per subject and label, 10⁷
-- at 10⁶ subjects) inserted or updated two B-trees, the table by rowid
-- and the index by key, after a seek of the index for the conflict; now
-- it seeks and writes one, and a subject's labels are read from one
-- range of it (LabelsFor, access, erasure). The rows are copied in key
-- order.
CREATE TABLE labels_clustered (
	pseudonym TEXT NOT NULL,
	label     TEXT NOT NULL,
	version   INTEGER NOT NULL,
	sealed    BLOB NOT NULL,
	computed  INTEGER NOT NULL,
	expires   INTEGER,
	PRIMARY KEY (pseudonym, label)
) WITHOUT ROWID;
INSERT INTO labels_clustered (pseudonym, label, version, sealed, computed, expires)
	SELECT pseudonym, label, version, sealed, computed, expires FROM labels ORDER BY pseudonym, label;
DROP TABLE labels;
ALTER TABLE labels_clustered RENAME TO labels;
