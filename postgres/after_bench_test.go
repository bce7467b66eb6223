package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

// BenchmarkEventsAfter measures what incremental derivation's read costs
// as the events table grows: 1,000 subjects share events=N events, a
// page of 64 subjects each holds its events up to a mark, and every
// iteration one new event per subject of the page is committed (through
// the store, outside the timer) and the page reads what is new since
// its marks. What it should cost is the 64 new rows, whatever N; rows/op
// is how many rows came back (new ones and ones read again), and with
// PORTRAIT_BENCH_VISITED set, visited/op how many the server looked at
// (it waits 2 × 11 s per size for the statistics).
func BenchmarkEventsAfter(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			ctx := context.Background()
			u := freshSchema(b)
			s := mustOpen(b, u)
			b.Cleanup(func() { s.Close() })
			const subjects, page = 1000, 64
			conn, err := pgx.Connect(ctx, u)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			// Filled in SQL: the read is measured, not the governed insert.
			if _, err := conn.Exec(ctx, `INSERT INTO events (pseudonym, type, time, sealed)
				SELECT 's' || lpad((g % $2)::text, 4, '0'), 'view', now() - g * interval '1 second', decode(repeat('ab', 120), 'hex')
				FROM generate_series(1, $1) g`, n, subjects); err != nil {
				b.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
				b.Fatal(err)
			}
			grants := make([]policy.Grant, page)
			collect := make([]policy.Grant, page)
			for i := range page {
				ps := portrait.Pseudonym(fmt.Sprintf("s%04d", i))
				grants[i] = storetest.Grant(b, ps, policy.Derive)
				collect[i] = storetest.Grant(b, ps, policy.Collect)
			}
			got, h, err := s.EventsAfter(ctx, grants, nil)
			if err != nil {
				b.Fatal(err)
			}
			marks := map[portrait.Pseudonym]portrait.EventMark{}
			remark := func(got map[portrait.Pseudonym][]portrait.StoredEvent, h int64) {
				for _, g := range grants {
					m := marks[g.Pseudonym()]
					for _, e := range got[g.Pseudonym()] {
						m.ID = max(m.ID, e.ID)
					}
					m.Horizon = h
					marks[g.Pseudonym()] = m
				}
			}
			remark(got, h)
			// visited is how many rows the server looked at in the
			// events partitions so far (index fetches and sequential
			// reads; inserts count neither), once every backend has
			// flushed its statistics (at most PGSTAT_IDLE_INTERVAL, 10 s,
			// after it went idle): a figure the machine's load does not
			// move.
			visited := func() int64 {
				time.Sleep(11 * time.Second)
				var v int64
				if err := conn.QueryRow(ctx, `SELECT pg_stat_clear_snapshot()::text || '', coalesce(sum(coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0)), 0)
					FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname LIKE 'events_p%'`).Scan(new(string), &v); err != nil {
					b.Fatal(err)
				}
				return v
			}
			var rows int
			at := time.Now()
			// round commits one new event per subject of the page and
			// reads what is new since the marks.
			round := func(timed bool) {
				if timed {
					b.StopTimer()
				}
				at = at.Add(time.Second)
				evs := make([]portrait.StoredEvent, page)
				for i, g := range collect {
					evs[i] = portrait.StoredEvent{Grant: g, Pseudonym: g.Pseudonym(), Type: "view", Time: at, Sealed: []byte("new")}
				}
				if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
					_, err := tx.InsertEvents(ctx, evs)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if timed {
					b.StartTimer()
				}
				got, h, err := s.EventsAfter(ctx, grants, marks)
				if err != nil {
					b.Fatal(err)
				}
				if timed {
					b.StopTimer()
					for _, evs := range got {
						rows += len(evs)
					}
				}
				remark(got, h)
				if timed {
					b.StartTimer()
				}
			}
			// A process that has read before holds samples for the floor
			// (after.go); the first reads of a new one are unbounded, as
			// its memo is empty anyway. Two rounds warm it.
			round(false)
			round(false)
			var v0 int64
			if os.Getenv("PORTRAIT_BENCH_VISITED") != "" {
				v0 = visited()
			}
			for b.Loop() {
				round(true)
			}
			b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
			if os.Getenv("PORTRAIT_BENCH_VISITED") != "" {
				b.StopTimer()
				b.ReportMetric(float64(visited()-v0)/float64(b.N), "visited/op")
			}
		})
	}
}
