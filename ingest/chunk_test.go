package ingest_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

// engines opens an env on SQLite and, where PORTRAIT_TEST_POSTGRES is set,
// on PostgreSQL (invariant 7), with ingest options opt.
func engines(tb testing.TB, name string, opt ingest.Options) *env {
	tb.Helper()
	e := &env{path: ""}
	switch name {
	case "sqlite":
		n := newEnv(tb)
		e.path, e.store = n.path, n.store
		return e.setup(tb, n.store, nil, opt)
	case "postgres":
		if os.Getenv(storetest.EnvPostgres) == "" {
			tb.Skip(storetest.EnvPostgres + " is not set")
		}
		st, err := postgres.Open(context.Background(), storetest.PostgresDatabase(tb))
		if err != nil {
			tb.Fatal(err)
		}
		return e.setup(tb, st, nil, opt)
	}
	tb.Fatalf("no engine %s", name)
	return nil
}

// bigBatch is n view events over subjects s0…s(k-1).
func bigBatch(n, k int, now time.Time) []ingest.Item {
	items := make([]ingest.Item, n)
	for i := range items {
		items[i].Event = portrait.Event{Subject: fmt.Sprintf("s%d", i%k), Type: "view", Time: now.Add(-time.Duration(i) * time.Millisecond),
			Fields: map[string]any{"item": fmt.Sprintf("item-%d", i), "category": "sports", "price": float64(i % 500)}}
	}
	return items
}

// BenchmarkWithdrawalDuringIngest measures how long a consent withdrawal
// waits while one request ingests 10⁵ events (CN-4): a second goroutine
// withdraws and grants again every 20 ms for as long as the ingest runs.
// Reported: the worst and the median wait, and the ingest's events/s.
//
//	go test ./ingest -run '^$' -bench WithdrawalDuringIngest -benchtime 1x
func BenchmarkWithdrawalDuringIngest(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			e := engines(b, name, ingest.Options{})
			const n, k = 100_000, 1000
			for i := range k {
				e.grant(b, fmt.Sprintf("s%d", i), "personalization")
			}
			e.grant(b, "w", "personalization")
			ctx := context.Background()
			var worst, total time.Duration
			var waits []time.Duration
			var elapsed time.Duration
			for b.Loop() {
				items := bigBatch(n, k, e.now)
				done := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					status := policy.Withdrawn
					for {
						select {
						case <-done:
							return
						case <-time.After(20 * time.Millisecond):
						}
						t0 := time.Now()
						_, err := e.ledger.Record(ctx, operator, consent.ByID("w"), consent.Change{Purpose: "personalization", Status: status, NoticeVersion: "1"})
						d := time.Since(t0)
						if err != nil {
							b.Error(err)
							return
						}
						waits = append(waits, d)
						worst = max(worst, d)
						total += d
						status = map[policy.Status]policy.Status{policy.Withdrawn: policy.Granted, policy.Granted: policy.Withdrawn}[status]
					}
				}()
				t0 := time.Now()
				_, sum, err := e.in.Ingest(ctx, operator, items)
				elapsed += time.Since(t0)
				close(done)
				wg.Wait()
				if err != nil || sum.Accepted != n {
					b.Fatal(err, sum)
				}
			}
			b.ReportMetric(float64(worst.Milliseconds()), "worst-wait-ms")
			if len(waits) > 0 {
				b.ReportMetric(float64(total.Milliseconds())/float64(len(waits)), "mean-wait-ms")
			}
			b.ReportMetric(float64(len(waits)), "withdrawals")
			b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "events/s")
		})
	}
}
