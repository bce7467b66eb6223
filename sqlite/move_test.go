package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
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
