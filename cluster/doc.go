// Package cluster shares work on subjects among the serve nodes of one
// PostgreSQL database, so that each subject's derivation runs on one node
// at a time and the work moves when a node leaves.
//
// Subjects fall into Buckets buckets by their pseudonym (a keyed hash, so
// uniform). A node that joins holds a PostgreSQL session advisory lock
// naming it; the live nodes are those whose lock is held (pg_locks). Each
// bucket belongs to the live node that ranks it highest by rendezvous
// hashing, so a node leaving moves only its own buckets and a node joining
// takes about 1/N of each other's. Views of the membership may differ for
// a moment, so the owner also holds the bucket's own advisory lock while
// it works on the bucket, and gives a bucket up only between two pieces of
// work.
//
// The invariant it keeps: no two nodes work on one bucket (so on one
// subject) at once. A node does work on a bucket only inside Hold, which
// succeeds only while the node's session holds the bucket's lock;
// PostgreSQL grants that lock to one session at a time, and drops it when
// the session ends — a node killed with SIGKILL leaves when its connection
// closes, and its buckets pass to the others at their next refresh.
//
// Beliefs can be stale — a node paused past its lease (DefaultLease:
// PostgreSQL ends its silent session, and its locks) still thinks it holds
// its buckets when it resumes — so writes are fenced: taking a bucket bumps
// its lease epoch in the leases table, and Fence, called inside a write's
// own transaction, reads the epoch FOR SHARE and refuses the write unless
// it is the one this node took.
//
// Membership lives in PostgreSQL, which every node already shares, rather
// than in NATS KV: it needs no table (pg_locks is the table), no clock or
// time-to-live to tune (a lock lasts exactly as long as its session), and
// the lock that proves membership is the same kind that guards a bucket.
package cluster
