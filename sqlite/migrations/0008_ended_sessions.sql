-- Sessions ended before they expire: one session at sign-out (id is the
-- hash of its token, issued_before its expiry), or every session of a
-- subject issued up to an erasure (id is the hash of the pseudonym's
-- sessions name). Every node reads it on each request that carries a
-- session, so an ended session ends on all of them at once.
CREATE TABLE ended_sessions (
	id            BLOB PRIMARY KEY,
	issued_before INTEGER NOT NULL, -- Unix seconds: sessions issued at or before it are ended
	keep_until    INTEGER NOT NULL  -- Unix seconds: after it no session it ends is still valid
) WITHOUT ROWID;
