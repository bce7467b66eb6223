package oversight_test

import (
	"context"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// BenchmarkStartScan measures what a start costs on a log of 100,000
// records: New reads the whole log once to find the last catalog record
// and to count records by kind and month.
func BenchmarkStartScan(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b, onSQLite)
	recs := make([]audit.Record, 1000)
	for i := range recs {
		recs[i] = audit.Record{Kind: "decision", Pseudonym: "0123456789abcdef0123456789abcdef", Purpose: "credit", Digest: "ab"}
	}
	for range 100 {
		if err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { _, err := e.log.Append(ctx, tx, recs...); return err }); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		e.start(b)
	}
	size, _ := e.store.LogSize(ctx)
	b.ReportMetric(float64(size), "records")
}
