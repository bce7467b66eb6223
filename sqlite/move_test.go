package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
)

// count returns the number of rows q counts, read through the engine's
// read pool.
func count(t *testing.T, e *engine, q string) int {
	t.Helper()
	var n int
	if err := e.read.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func appendEvents(t *testing.T, e *engine, subject portrait.Pseudonym, n int, from int) {
	t.Helper()
	evs := make([]portrait.StoredEvent, n)
	for i := range evs {
		evs[i] = portrait.StoredEvent{Pseudonym: subject, Type: "view", Time: time.Unix(int64(from+i), 0), Sealed: []byte("x")}
		if i%3 == 0 {
			evs[i].Idem = []byte(fmt.Sprintf("k%d", from+i))
		}
	}
	err := e.Update(context.Background(), func(tx guard.Tx) error {
		_, err := tx.InsertEvents(context.Background(), evs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The engine clusters runs by itself: runs past the high-water mark move
// while ingest goes on, the rest once writing is idle; while writers
// append concurrently no event is lost or in both tables; a store opened
// later (another process, or after a crash) sees the events left in runs
// and moves them.
func TestMoverInBackground(t *testing.T) {
	defer func(b, h, r int, d time.Duration) { moveBatch, moveHigh, moveRuns, moveIdle = b, h, r, d }(moveBatch, moveHigh, moveRuns, moveIdle)
	moveBatch, moveHigh, moveRuns, moveIdle = 100, 120, 1000, 300*time.Millisecond
	path := filepath.Join(t.TempDir(), "portrait.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	e := db.e

	appendEvents(t, e, "0123456789abcdef0123456789abcdef", 150, 0)
	eventually(t, "runs past the high-water mark move without waiting for idle", func() bool {
		return count(t, e, `SELECT count(*) FROM events`) >= 100
	})
	eventually(t, "the remainder moves once idle", func() bool {
		return count(t, e, `SELECT count(*) FROM events_new`) == 0
	})
	if n := count(t, e, `SELECT count(*) FROM events`); n != 150 {
		t.Fatalf("%d events clustered, want 150", n)
	}

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 10 {
				appendEvents(t, e, portrait.Pseudonym(fmt.Sprintf("s%d", w)), 37, 1000*w+37*b)
			}
		}()
	}
	wg.Wait()
	if n := count(t, e, `SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM events_new)`); n != 150+4*10*37 {
		t.Errorf("%d events in the two tables while moving, want %d", n, 150+4*10*37)
	}
	if n := count(t, e, `SELECT count(*) FROM events JOIN events_new USING (id)`); n != 0 {
		t.Errorf("%d events in both tables", n)
	}
	if n := count(t, e, `SELECT count(*) FROM events_new LEFT JOIN event_runs USING (run) WHERE event_runs.run IS NULL`); n != 0 {
		t.Errorf("%d events in a run not listed in event_runs", n)
	}

	// Close without draining: the next Open finds what is left and moves it.
	appendEvents(t, e, "later", 20, 5000)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	e2 := db2.e
	if evs, err := e2.Events(context.Background(), "later", time.Time{}); err != nil || len(evs) != 20 {
		t.Fatalf("reopened store reads %d appended events (%v), want 20", len(evs), err)
	}
	eventually(t, "the reopened store moves what it found appended", func() bool {
		return count(t, e2, `SELECT count(*) FROM events_new`) == 0 && count(t, e2, `SELECT count(*) FROM event_runs`) == 0
	})
	if n := count(t, e2, `SELECT count(*) FROM events`); n != 150+4*10*37+20 {
		t.Errorf("%d events clustered after reopening, want %d", n, 150+4*10*37+20)
	}
}

// A move that fails leaves its events appended, and readable, and does
// not fail the writers whose transaction it shared (invariant 3: it rolls
// back to its own savepoint).
func TestMoveFailureKeepsEvents(t *testing.T) {
	e := openTest(t)
	appendEvents(t, e, "a", 10, 0)
	// An event whose id is already in the clustered table makes the copy
	// fail on the primary key.
	if _, err := e.write.Exec(`INSERT INTO events (id, pseudonym, type, time, sealed)
		SELECT id, pseudonym, type, time, sealed FROM events_new ORDER BY id LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := e.moveOnce(context.Background(), 100); err == nil {
		t.Fatal("a move that cannot copy succeeded")
	}
	if n := count(t, e, `SELECT count(*) FROM events_new`); n != 10 {
		t.Errorf("a failed move left %d appended events, want 10", n)
	}
}

// Every reader gives the same answer whichever runs have moved: before
// any move, after a move of only the oldest runs (a run is never split),
// and after all have moved.
func TestReadersMidMerge(t *testing.T) {
	stillMover(t)
	e := openTest(t)
	ctx := context.Background()
	subjects := []portrait.Pseudonym{"0123456789abcdef0123456789abcdef", "b", "fedcba9876543210fedcba9876543210"}
	for run := range 6 {
		var evs []portrait.StoredEvent
		for i := range 9 {
			evs = append(evs, portrait.StoredEvent{Pseudonym: subjects[(run+i)%3], Type: "view", Time: time.Unix(int64(100*run+i), 0),
				Sealed: []byte(fmt.Sprintf("%d/%d", run, i)), Expires: time.Unix(int64(1000+100*run+i), 0)})
		}
		if err := e.Update(ctx, func(tx guard.Tx) error { _, err := tx.InsertEvents(ctx, evs); return err }); err != nil {
			t.Fatal(err)
		}
	}
	type answer struct {
		events  map[portrait.Pseudonym][]int64
		forAll  map[portrait.Pseudonym][]int64
		after   map[portrait.Pseudonym][]int64
		expired []int64
	}
	idsOf := func(evs []portrait.StoredEvent) []int64 {
		var out []int64
		for _, ev := range evs {
			out = append(out, ev.ID)
		}
		return out
	}
	read := func() answer {
		a := answer{events: map[portrait.Pseudonym][]int64{}, forAll: map[portrait.Pseudonym][]int64{}, after: map[portrait.Pseudonym][]int64{}}
		marks := map[portrait.Pseudonym]portrait.EventMark{}
		for _, p := range subjects {
			evs, err := e.Events(ctx, p, time.Unix(150, 0))
			if err != nil {
				t.Fatal(err)
			}
			a.events[p] = idsOf(evs)
			if len(evs) > 4 {
				marks[p] = portrait.EventMark{ID: evs[4].ID}
			}
		}
		all, err := e.EventsFor(ctx, subjects, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for p, evs := range all {
			a.forAll[p] = idsOf(evs)
		}
		after, _, err := e.EventsAfter(ctx, subjects, marks)
		if err != nil {
			t.Fatal(err)
		}
		for p, evs := range after {
			a.after[p] = idsOf(evs)
		}
		exp, err := e.ExpiredEvents(ctx, time.Unix(1350, 0), 100)
		if err != nil {
			t.Fatal(err)
		}
		a.expired = idsOf(exp)
		return a
	}
	before := read()
	if len(before.expired) != 36 || len(before.forAll[subjects[1]]) != 18 {
		t.Fatalf("before any move: %d expired, %d events of b; want 36 and 18", len(before.expired), len(before.forAll[subjects[1]]))
	}
	moved, runs, more, err := e.moveOnce(ctx, 20) // two runs of 9
	if err != nil || moved != 18 || runs != 2 || !more {
		t.Fatalf("partial move = %d events in %d runs, more %v (%v); want 18 in 2, more", moved, runs, more, err)
	}
	if got := read(); !reflect.DeepEqual(got, before) {
		t.Errorf("mid-merge the readers answer %+v, want %+v", got, before)
	}
	for more {
		if _, _, more, err = e.moveOnce(ctx, 20); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, e, `SELECT count(*) FROM events_new`) + count(t, e, `SELECT count(*) FROM event_runs`); n != 0 {
		t.Errorf("%d rows left in runs after every move", n)
	}
	if got := read(); !reflect.DeepEqual(got, before) {
		t.Errorf("after every move the readers answer %+v, want %+v", got, before)
	}
}

// A move of many runs goes in slices of the subjects, one transaction
// each, so that ingest's commits queue behind a slice rather than behind
// the whole move; each slice moves every event of its subjects from all
// the chosen runs (so a subject's clustered pages are written once per
// move), the last one what is left, and the readers' answers never change
// between slices. A move cut short after a slice (a crash, a failed
// commit) is finished by the next.
func TestMoveInSlices(t *testing.T) {
	stillMover(t)
	e := openTest(t)
	e.mover.slice = 20
	ctx := context.Background()
	var subjects []portrait.Pseudonym
	for i := range 10 {
		subjects = append(subjects, portrait.Pseudonym(fmt.Sprintf("%032x", i*0x1234567)))
	}
	subjects = append(subjects, "text-subject") // not hex: stored as text, which sorts before every blob
	const runs, per = 5, 2
	for run := range runs {
		var evs []portrait.StoredEvent
		for i, p := range subjects {
			for j := range per {
				evs = append(evs, portrait.StoredEvent{Pseudonym: p, Type: "view", Time: time.Unix(int64(1000*run+10*i+j), 0),
					Sealed: []byte("x"), Expires: time.Unix(int64(5000+1000*run+10*i+j), 0)})
			}
		}
		if err := e.Update(ctx, func(tx guard.Tx) error { _, err := tx.InsertEvents(ctx, evs); return err }); err != nil {
			t.Fatal(err)
		}
	}
	total := runs * per * len(subjects)
	read := func() map[portrait.Pseudonym][]int64 {
		all, err := e.EventsFor(ctx, subjects, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[portrait.Pseudonym][]int64{}
		for p, evs := range all {
			for _, ev := range evs {
				out[p] = append(out[p], ev.ID)
			}
		}
		return out
	}
	before := read()

	last, n, bounds, err := planMove(ctx, e.read, 1000, e.mover.slice)
	if err != nil || n != runs {
		t.Fatalf("plan: %d runs (%v), want %d", n, err, runs)
	}
	if want := (total+e.mover.slice-1)/e.mover.slice - 1; len(bounds) < want-1 || len(bounds) > want {
		t.Fatalf("plan: %d slice bounds for %d events in slices of %d, want about %d", len(bounds), total, e.mover.slice, want)
	}
	moved := 0
	for i, b := range bounds {
		var got int
		if err := e.Update(ctx, func(tx guard.Tx) error {
			var err error
			got, _, err = tx.(*txn).move(ctx, last, b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		moved += got
		// Every event of a subject below the bound has moved, from every run.
		var left int
		if err := e.read.QueryRowContext(ctx, `SELECT count(*) FROM events_new WHERE pseudonym < ?`, b).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 0 || got == 0 || got%(runs*per) != 0 {
			t.Errorf("slice %d moved %d events and left %d below its bound; want whole subjects, every run", i, got, left)
		}
		if c := count(t, e, `SELECT count(*) FROM events`); c != moved {
			t.Errorf("after slice %d: %d clustered, want %d", i, c, moved)
		}
		if got := read(); !reflect.DeepEqual(got, before) {
			t.Errorf("after slice %d the readers answer %v, want %v", i, got, before)
		}
		if i == len(bounds)-2 {
			// Cut short before its last slices: the next move finishes it.
			break
		}
	}
	if _, _, more, err := e.moveOnce(ctx, 1000); err != nil || more {
		t.Fatalf("the move after one cut short: more %v, %v", more, err)
	}
	if c := count(t, e, `SELECT count(*) FROM events`); c != total {
		t.Errorf("%d events clustered, want %d", c, total)
	}
	if n := count(t, e, `SELECT count(*) FROM events_new`) + count(t, e, `SELECT count(*) FROM event_runs`); n != 0 {
		t.Errorf("%d rows left in runs after the move", n)
	}
	if got := read(); !reflect.DeepEqual(got, before) {
		t.Errorf("after the move the readers answer %v, want %v", got, before)
	}
	// Each subject's earliest clustered expiry is exact (expiry.go).
	if n := count(t, e, `SELECT count(*) FROM event_expiry x WHERE x.expires != (SELECT min(expires) FROM events WHERE pseudonym = x.pseudonym)`); n != 0 || count(t, e, `SELECT count(*) FROM event_expiry`) != len(subjects) {
		t.Errorf("event_expiry after a sliced move: %d wrong of %d rows", n, count(t, e, `SELECT count(*) FROM event_expiry`))
	}
}

// stillMover stops the background mover of the engines opened until the
// test ends: they move only when told to (Cluster, moveOnce).
func stillMover(tb testing.TB) {
	h, r, d := moveHigh, moveRuns, moveIdle
	moveHigh, moveRuns, moveIdle = 1<<30, 1<<30, time.Hour
	tb.Cleanup(func() { moveHigh, moveRuns, moveIdle = h, r, d })
}

// SR-3: a move leaves each moved event in the file once — the pages of
// events_new that held it are zeroed, not left free with a readable copy
// — whether it takes every run (the DELETE then clears the table's pages
// whole), the oldest runs only (it deletes row by row), or moves in
// slices. The events are checked in the file after a WAL truncation, so
// every page image is in it.
func TestMoveLeavesOneCopy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int // events a move may take; its oldest runs, at least one
		slice int
	}{
		{"every-run", 1 << 30, 1 << 30},
		{"oldest-runs", 200, 1 << 30},
		{"in-slices", 1 << 30, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			stillMover(t)
			path := filepath.Join(t.TempDir(), "portrait.db")
			db, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			e := db.e
			e.mover.slice = tc.slice
			marker := func(i int) []byte { return []byte(strings.Repeat(fmt.Sprintf("<moved-%04d>", i), 8)) }
			id := 0
			for range 5 { // five runs of 100 events of 10 subjects
				evs := make([]portrait.StoredEvent, 100)
				for i := range evs {
					evs[i] = portrait.StoredEvent{Pseudonym: portrait.Pseudonym(fmt.Sprintf("s%d", id%10)), Type: "view",
						Time: time.Unix(int64(id), 0), Sealed: marker(id), Expires: time.Unix(int64(id)+1e6, 0)}
					id++
				}
				if err := e.Update(ctx, func(tx guard.Tx) error { _, err := tx.InsertEvents(ctx, evs); return err }); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.TruncateWAL(ctx); err != nil {
				t.Fatal(err)
			}
			moved, _, _, err := e.moveOnce(ctx, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if want := min(tc.limit, 500); moved != want {
				t.Fatalf("moved %d events, want %d", moved, want)
			}
			if err := db.TruncateWAL(ctx); err != nil {
				t.Fatal(err)
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range id {
				if n := bytes.Count(file, marker(i)); n != 1 {
					t.Fatalf("event %d is in the file %d times after the move, want once", i, n)
				}
			}
			if n := count(t, e, `SELECT count(*) FROM events`) + count(t, e, `SELECT count(*) FROM events_new`); n != id {
				t.Fatalf("%d events in the two tables, want %d", n, id)
			}
		})
	}
}
