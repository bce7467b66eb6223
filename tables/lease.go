package tables

import (
	"context"
	"fmt"
)

// TakeLeaseSQL takes a bucket's lease for a node and returns the new
// epoch: one more than the last taker's. It runs on PostgreSQL only
// (package cluster, on its own session, in its own transaction); the
// update waits for every write transaction that holds the row FOR SHARE
// (LeaseEpoch), so a write in flight under the old epoch commits before
// the bucket changes hands, and any later one sees the new epoch.
const TakeLeaseSQL = `INSERT INTO leases (bucket, epoch, node, taken) VALUES ($1, 1, $2, now())
	ON CONFLICT (bucket) DO UPDATE SET epoch = leases.epoch + 1, node = excluded.node, taken = excluded.taken
	RETURNING epoch`

// leaseSQL reads a bucket's epoch and holds it until the transaction ends
// (SQLite drops FOR SHARE: its write transaction excludes every other
// writer already).
const leaseSQL = `SELECT epoch FROM leases WHERE bucket = ? FOR SHARE`

// LeaseEpoch returns the epoch of bucket's lease, 0 if no node ever took
// it, and holds the row so that no node can take the bucket until the
// transaction ends. A node's write for a bucket compares it with the
// epoch it took (cluster.Node.Check): a fencing token.
func (t Tx) LeaseEpoch(ctx context.Context, bucket int) (int64, error) {
	rows, err := t.query(ctx, leaseSQL, bucket)
	if err != nil {
		return 0, fmt.Errorf("read lease of bucket %d: %w", bucket, err)
	}
	defer rows.Close()
	var epoch int64
	if rows.Next() {
		if err := rows.Scan(&epoch); err != nil {
			return 0, fmt.Errorf("read lease of bucket %d: %w", bucket, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read lease of bucket %d: %w", bucket, err)
	}
	return epoch, nil
}
