package ingest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
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
// onEachEngine runs test on SQLite and on PostgreSQL (invariant 7), each
// a subtest with default options.
func onEachEngine(t *testing.T, test func(t *testing.T, e *env)) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) { test(t, engines(t, name, ingest.Options{})) })
	}
}

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
		items[i].Event = portrait.Event{SubjectID: fmt.Sprintf("s%d", i%k), Type: "view", Time: now.Add(-time.Duration(i) * time.Millisecond),
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
		for _, chunk := range chunkSizes {
			b.Run(fmt.Sprintf("%s/chunk=%d", name, chunk), func(b *testing.B) { benchWithdrawal(b, name, chunk) })
		}
	}
}

// benchWithdrawal is one run of BenchmarkWithdrawalDuringIngest; a chunk
// of MaxEvents is one transaction for the whole request, as before chunks.
func benchWithdrawal(b *testing.B, name string, chunk int) {
	{
		{
			e := engines(b, name, ingest.Options{ChunkSize: chunk})
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
					if os.Getenv("INGEST_QUIET") != "" {
						return // no withdrawals: the ingest alone
					}
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
		}
	}
}

// profileEvents is n events over subjects p0…p(k-1) and w, each carrying
// only income, which serves the consent purpose credit alone; every third
// event is w's.
func profileEvents(n, k int, now time.Time) []ingest.Item {
	items := make([]ingest.Item, n)
	for i := range items {
		id := fmt.Sprintf("p%d", i%k)
		if i%3 == 0 {
			id = "w"
		}
		items[i].Event = portrait.Event{SubjectID: id, Type: "profile", Time: now.Add(-time.Duration(i) * time.Second),
			Fields: map[string]any{"income": float64(1000 + i)}}
	}
	return items
}

// CN-4, invariant 5: a large batch commits chunk by chunk, each with its
// own audit record, so a withdrawal made while it runs binds the chunks
// after it. Before, the whole batch was decided against the consent of its
// start and stored in one transaction that held consent writes back.
func TestWithdrawalBindsLaterChunks(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var e *env
			withdrawn := false
			e = engines(t, name, ingest.Options{ChunkSize: 100, OnStored: func(ctx context.Context, _ []portrait.Pseudonym) {
				if withdrawn {
					return
				}
				withdrawn = true
				if _, err := e.ledger.Record(ctx, operator, consent.ByID("w"), consent.Change{Purpose: "credit", Status: policy.Withdrawn}); err != nil {
					t.Error(err)
				}
			}})
			const n, k = 1000, 10
			for i := range k {
				e.grant(t, fmt.Sprintf("p%d", i), "credit")
			}
			e.grant(t, "w", "credit")
			res, sum, err := e.in.Ingest(ctx, operator, profileEvents(n, k, e.now))
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Chunks) != n/100 {
				t.Fatalf("%d chunks, want %d: %+v", len(sum.Chunks), n/100, sum)
			}
			indexes := map[int64]bool{}
			for i, c := range sum.Chunks {
				if c.Number != i+1 || !c.Stored || c.Events != 100 || c.Subjects == 0 || indexes[c.LogIndex] {
					t.Errorf("chunk %+v", c)
				}
				indexes[c.LogIndex] = true
			}
			if sum.LogIndex != sum.Chunks[len(sum.Chunks)-1].LogIndex {
				t.Errorf("summary log index %d is not the last chunk's", sum.LogIndex)
			}
			perChunk := map[int]int{}
			refused := 0
			for i, r := range res {
				if r.Chunk < 1 || r.Chunk > len(sum.Chunks) {
					t.Fatalf("event %d: chunk %d", i, r.Chunk)
				}
				perChunk[r.Chunk]++
				switch {
				case i%3 == 0 && r.Chunk > 1:
					if r.Status != ingest.Rejected || r.Problem == nil || r.Requirement != "CM-1" {
						t.Fatalf("event %d of w after the withdrawal: %s %+v", i, r.Status, r.Problem)
					}
					refused++
				case r.Status != ingest.Accepted:
					t.Fatalf("event %d (chunk %d): %s %+v", i, r.Chunk, r.Status, r.Problem)
				}
			}
			// w has 334 events: at most 100 were in the first chunk.
			if refused < 234 || sum.Rejected != refused || sum.Accepted != n-refused {
				t.Errorf("summary %+v, %d of w's events refused", sum, refused)
			}
			for c, k := range perChunk {
				if k != 100 {
					t.Errorf("chunk %d holds %d events", c, k)
				}
			}
			for _, c := range sum.Chunks {
				if rec, err := e.log.Entry(ctx, e.st, c.LogIndex); err != nil || len(rec) == 0 {
					t.Errorf("audit record of chunk %d: %v", c.Number, err)
				}
			}
		})
	}
}

// A chunk that cannot be stored leaves the chunks before it stored and
// says so; its events and the later ones are not_stored.
func TestFailedChunkKeepsEarlierOnes(t *testing.T) {
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			chunks := 0
			e := engines(t, name, ingest.Options{ChunkSize: 100, OnStored: func(context.Context, []portrait.Pseudonym) {
				if chunks++; chunks == 2 {
					cancel() // the client goes away after the second chunk
				}
			}})
			for i := range 10 {
				e.grant(t, fmt.Sprintf("s%d", i), "personalization")
			}
			res, sum, err := e.in.Ingest(ctx, operator, bigBatch(450, 10, e.now))
			if err != nil {
				t.Fatalf("a later chunk's failure failed the batch: %v", err)
			}
			if sum.Accepted != 200 || sum.NotStored != 250 || len(sum.Chunks) != 5 || !sum.Chunks[1].Stored || sum.Chunks[2].Stored {
				t.Fatalf("summary %+v", sum)
			}
			failed := 0
			for i, r := range res {
				switch {
				case r.Chunk <= 2 && r.Status != ingest.Accepted:
					t.Fatalf("event %d of a stored chunk: %+v", i, r)
				case r.Chunk > 2 && (r.Status != ingest.NotStored || r.Problem == nil || r.Code != "not_stored"):
					t.Fatalf("event %d of a failed chunk: %+v", i, r)
				case r.Chunk == 3:
					failed++
					if !strings.Contains(r.Reason, "chunks 1–2 are stored") {
						t.Errorf("reason %q", r.Reason)
					}
				}
			}
			if failed != 100 {
				t.Errorf("%d events in the failed chunk", failed)
			}
			// What the summary says is what is stored.
			stored := 0
			for i := range 10 {
				stored += len(e.events(t, fmt.Sprintf("s%d", i)))
			}
			if stored != 200 {
				t.Errorf("%d events stored, want the 200 of the first two chunks", stored)
			}
		})
	}
}

var chunkSizes = []int{ingest.MaxEvents, ingest.DefaultChunkSize}

func init() {
	if s := os.Getenv("INGEST_CHUNKS"); s != "" {
		chunkSizes = nil
		for _, f := range strings.Split(s, ",") {
			var n int
			fmt.Sscan(f, &n)
			chunkSizes = append(chunkSizes, n)
		}
	}
}
