package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
)

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMoveCost splits what clustering costs per event into the
// append (ingest's transaction) and the move, and measures the variants
// issue 14 suggested for a cheaper move, on the store itself: batches of
// 1,000 events of 100 subjects (BenchmarkIngest's shape, ~90-byte sealed
// values with an expiry) appended ten at a time, then moved. Every
// variant reports CPU per event (getrusage: the process's, so the
// background checkpoint is in it), which a shared machine disturbs far
// less than wall time.
//
//	go test ./sqlite -run '^$' -bench MoveCost -benchtime 15x
func BenchmarkMoveCost(b *testing.B) {
	type variant struct {
		name    string
		page    int    // page size of a new file; 0: SQLite's default
		setup   string // run on the write connection after Open
		batches int    // batches of 1,000 per move
		move    func(tb testing.TB, e *engine, n int)
	}
	store := func(tb testing.TB, e *engine, n int) {
		for more := true; more; {
			var err error
			if _, _, more, err = e.moveOnce(context.Background(), n); err != nil {
				tb.Fatal(err)
			}
		}
	}
	// journal is the move as session 5 ran it: a plain INSERT, which may
	// abort and so keeps a statement journal of every page it touches.
	journal := func(tb testing.TB, e *engine, n int) {
		defer func(v string) { moveInsert = v }(moveInsert)
		moveInsert = `INSERT`
		store(tb, e, n)
	}
	// mergeRuns is the LSM's step instead of the move: the runs merged,
	// sorted, into one new run at the right edge of events_new (a fresh
	// run number above every key), then the old runs deleted.
	var merged int64
	mergeRuns := func(tb testing.TB, e *engine, n int) {
		if err := e.Update(context.Background(), func(t guard.Tx) error {
			tx := t.(*txn)
			var last, run int64
			if err := tx.tx.QueryRow(`SELECT max(run) FROM event_runs`).Scan(&last); err != nil {
				return err
			}
			if err := tx.tx.QueryRow(reserveEventIDs, 1).Scan(&run); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`INSERT INTO events_new (run, `+eventColumns+`) SELECT ?, `+eventColumns+` FROM events_new WHERE run > ? AND run <= ? ORDER BY pseudonym, id`, run, merged, last); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`DELETE FROM events_new WHERE run > ? AND run <= ?`, merged, last); err != nil {
				return err
			}
			_, err := tx.tx.Exec(`DELETE FROM event_runs WHERE run > ? AND run <= ?`, merged, last)
			merged = run
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	// perRun moves run by run: each run is already in (pseudonym, id)
	// order, so no statement sorts.
	perRun := func(tb testing.TB, e *engine, n int) {
		if err := e.Update(context.Background(), func(t guard.Tx) error {
			tx := t.(*txn)
			runs, err := runNumbers(tx)
			if err != nil {
				return err
			}
			for _, r := range runs {
				if _, err := tx.tx.Exec(`INSERT OR IGNORE INTO events (`+eventColumns+`) SELECT `+eventColumns+` FROM events_new WHERE run = ? ORDER BY run, pseudonym, id`, r); err != nil {
					return err
				}
				if _, err := tx.tx.Exec(`DELETE FROM events_new WHERE run = ?`, r); err != nil {
					return err
				}
			}
			_, err = tx.tx.Exec(`DELETE FROM event_runs`)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	// unionMove is the move with the sort replaced by a merge of the
	// runs, each already in (pseudonym, id) order: a compound SELECT of
	// one arm per run with ORDER BY, which SQLite runs as a merge.
	unionMove := func(tb testing.TB, e *engine, n int) {
		if err := e.Update(context.Background(), func(t guard.Tx) error {
			tx := t.(*txn)
			runs, err := runNumbers(tx)
			if err != nil || len(runs) == 0 {
				return err
			}
			var arms []string
			for _, r := range runs {
				arms = append(arms, fmt.Sprintf(`SELECT %s FROM events_new WHERE run = %d`, eventColumns, r))
			}
			last := runs[len(runs)-1]
			if _, err := tx.tx.Exec(moveExpirySQL, last); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`INSERT OR IGNORE INTO events (` + eventColumns + `) ` + strings.Join(arms, " UNION ALL ") + ` ORDER BY 2, 1`); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`DELETE FROM events_new WHERE run <= ?`, last); err != nil {
				return err
			}
			_, err = tx.tx.Exec(`DELETE FROM event_runs`)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	for _, v := range []variant{
		{name: "store", move: store},
		{name: "statement-journal", move: journal},
		{name: "moves-of-50000", batches: 50, move: store},
		{name: "expires-index", setup: `CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL`, move: store},
		{name: "per-run", move: perRun},
		{name: "merge-arms", move: unionMove},
		{name: "merge-runs", setup: `DROP INDEX events_new_idem`, move: mergeRuns},
		{name: "cache-32MB", setup: `PRAGMA cache_size=-32768`, move: store},
		{name: "page-8KB", page: 8192, move: store},
		{name: "page-16KB", page: 16384, move: store},
		{name: "mmap-256MB", setup: `PRAGMA mmap_size=268435456`, move: store},
		{name: "no-cache-spill", setup: `PRAGMA cache_spill=OFF`, move: store},
		// What zeroing costs (SR-3 needs it: not a candidate).
		{name: "secure-delete-off", setup: `PRAGMA secure_delete=OFF`, move: store},
	} {
		b.Run(v.name, func(b *testing.B) {
			merged = 0
			path := filepath.Join(b.TempDir(), "portrait.db")
			if v.page != 0 {
				raw, err := sql.Open("sqlite", path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := raw.Exec(fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=WAL; CREATE TABLE x(a); DROP TABLE x`, v.page)); err != nil {
					b.Fatal(err)
				}
				raw.Close()
			}
			stillMover(b)
			db, err := Open(context.Background(), path)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := db.e
			if v.setup != "" {
				if _, err := e.write.Exec(v.setup); err != nil {
					b.Fatal(err)
				}
			}
			batches := max(v.batches, 10)
			subs := make([]portrait.Pseudonym, 100)
			for i := range subs {
				var k [16]byte
				rand.Read(k[:])
				subs[i] = portrait.Pseudonym(fmt.Sprintf("%x", k))
			}
			sealed := make([]byte, 90)
			rand.Read(sealed)
			id, n := 0, 0
			var app, mv time.Duration
			for b.Loop() {
				c0 := cpuTime(b)
				for range batches {
					evs := make([]portrait.StoredEvent, 1000)
					for i := range evs {
						id++
						evs[i] = portrait.StoredEvent{Pseudonym: subs[id%100], Type: "view", Time: time.Unix(int64(id), 0), Sealed: sealed,
							Expires: time.Unix(int64(id)+1e8, 0)}
					}
					if err := e.Update(context.Background(), func(tx guard.Tx) error {
						_, err := tx.InsertEvents(context.Background(), evs)
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
				c1 := cpuTime(b)
				v.move(b, e, batches*1000)
				app += c1 - c0
				mv += cpuTime(b) - c1
				n += batches * 1000
			}
			b.ReportMetric(float64(app.Nanoseconds())/float64(n), "append-cpu-ns/event")
			b.ReportMetric(float64(mv.Nanoseconds())/float64(n), "move-cpu-ns/event")
		})
	}
}

// BenchmarkMoveShape measures the move's CPU per event against how many
// events of each subject one move carries, with sustained HTTP ingest's
// shape (portrait load --subjects 1000: every run of 1,000 events holds
// each of 1,000 subjects once, 150-byte sealed values): a move writes a
// subject's last clustered page once however many of its events it
// brings, so larger moves cost less per event; sliced, a move of 100,000
// keeps that while each transaction carries about 10,000 (move.go).
//
//	go test ./sqlite -run '^$' -bench MoveShape -benchtime 3x
func BenchmarkMoveShape(b *testing.B) {
	for _, v := range []struct {
		name                   string
		batch, slice, subjects int
	}{
		{"moves-of-10000", 10_000, 10_000, 1000},
		{"moves-of-100000-whole", 100_000, 1 << 30, 1000},
		{"moves-of-100000-in-slices-of-10000", 100_000, 10_000, 1000},
		// BenchmarkIngest's shape: 100 subjects, so a move of 10,000
		// already brings each subject 100 events, a few pages' worth.
		{"100-subjects-moves-of-10000", 10_000, 10_000, 100},
		{"100-subjects-moves-of-100000-in-slices-of-10000", 100_000, 10_000, 100},
	} {
		b.Run(v.name, func(b *testing.B) {
			stillMover(b)
			db, err := Open(context.Background(), filepath.Join(b.TempDir(), "portrait.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := db.e
			e.mover.slice = v.slice
			subs := make([]portrait.Pseudonym, v.subjects)
			for i := range subs {
				var k [16]byte
				rand.Read(k[:])
				subs[i] = portrait.Pseudonym(fmt.Sprintf("%x", k))
			}
			sealed := make([]byte, 150)
			rand.Read(sealed)
			id := 0
			appendRuns := func(runs int) {
				for range runs {
					evs := make([]portrait.StoredEvent, 1000)
					for i := range evs {
						id++
						evs[i] = portrait.StoredEvent{Pseudonym: subs[i%len(subs)], Type: "view", Time: time.Unix(int64(id), 0), Sealed: sealed,
							Expires: time.Unix(int64(id)+1e8, 0)}
					}
					if err := e.Update(context.Background(), func(tx guard.Tx) error {
						_, err := tx.InsertEvents(context.Background(), evs)
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
			}
			move := func(limit int) {
				for more := true; more; {
					if _, _, more, err = e.moveOnce(context.Background(), limit); err != nil {
						b.Fatal(err)
					}
				}
			}
			appendRuns(200) // every subject has clustered pages before the clock starts
			move(v.batch)
			var cpu time.Duration
			n := 0
			for b.Loop() {
				appendRuns(200)
				c0 := cpuTime(b)
				move(v.batch)
				cpu += cpuTime(b) - c0
				n += 200 * 1000
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "move-cpu-ns/event")
		})
	}
}

// runNumbers lists the runs of event_runs, oldest first.
func runNumbers(tx *txn) ([]int64, error) {
	rows, err := tx.tx.Query(`SELECT run FROM event_runs ORDER BY run`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []int64
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}
