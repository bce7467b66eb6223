package tables

import (
	"context"
	"fmt"
)

// PutPartial stores a monitor run's sealed partial for bucket, unless one
// is stored already; it reports whether this one was. The caller fences
// the write (cluster.Node.Fence) in the same transaction.
func (t Tx) PutPartial(ctx context.Context, run string, bucket int, node int32, epoch int64, sealed []byte) (bool, error) {
	n, err := t.exec(ctx, `INSERT INTO monitor_partials (run, bucket, node, epoch, sealed) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		run, bucket, node, epoch, sealed)
	if err != nil {
		return false, fmt.Errorf("store monitor partial of bucket %d: %w", bucket, err)
	}
	return n == 1, nil
}

// DeletePartials deletes the partials of every run up to and including
// run (runs are times in RFC 3339, UTC, so they sort as text).
func (t Tx) DeletePartials(ctx context.Context, run string) error {
	if _, err := t.exec(ctx, `DELETE FROM monitor_partials WHERE run <= ?`, run); err != nil {
		return fmt.Errorf("delete monitor partials: %w", err)
	}
	return nil
}

// PartialBuckets lists the buckets whose partial of run is stored.
func (db DB) PartialBuckets(ctx context.Context, run string) ([]int, error) {
	return queryAll(ctx, db, "read monitor partials", func(r Rows) (b int, err error) { return b, r.Scan(&b) },
		`SELECT bucket FROM monitor_partials WHERE run = ? ORDER BY bucket`, run)
}

// Partials returns the sealed partials of run, by bucket.
func (db DB) Partials(ctx context.Context, run string) (map[int][]byte, error) {
	rows, err := db.query(ctx, `SELECT bucket, sealed FROM monitor_partials WHERE run = ?`, run)
	if err != nil {
		return nil, fmt.Errorf("read monitor partials: %w", err)
	}
	type row struct {
		b int
		s []byte
	}
	rs, err := collect(rows, func(r Rows) (x row, err error) { return x, r.Scan(&x.b, &x.s) })
	if err != nil {
		return nil, fmt.Errorf("read monitor partials: %w", err)
	}
	out := make(map[int][]byte, len(rs))
	for _, x := range rs {
		out[x.b] = x.s
	}
	return out, nil
}
