package sqlite

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/guard"
)

func openTest(tb testing.TB) *engine {
	tb.Helper()
	db, err := Open(context.Background(), filepath.Join(tb.TempDir(), "portrait.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db.e
}

func newLog(tb testing.TB) *audit.Log {
	tb.Helper()
	l, err := audit.New("portrait.test/log", ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// subject returns an update function that stores subject p.
func subject(p string) func(guard.Tx) error {
	return func(tx guard.Tx) error {
		return tx.EnsureSubjects(context.Background(), []portrait.SubjectKey{{Pseudonym: portrait.Pseudonym(p), WrappedKey: []byte("k")}})
	}
}

// stored reports whether subject p was committed.
func stored(t *testing.T, db *engine, p string) bool {
	t.Helper()
	var n int
	if err := db.read.QueryRow(`SELECT count(*) FROM subjects WHERE pseudonym = ?`, p).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// outcome is what the callers of grouped got: each update's error or the
// value it panicked with, and the error of the update that held the
// writer (which stores subject "holder").
type outcome struct {
	errs   []error
	panics []any
	holder error
}

// grouped runs the updates concurrently in one commit group, as far as
// the caller can arrange it: a first update holds the writer until all
// the others are queued behind it, in order, and the group has no time
// bound, so that they all join its group (up to maxGroup).
func grouped(t *testing.T, db *engine, fns ...func(guard.Tx) error) outcome {
	t.Helper()
	return groupedCtx(t, db, nil, fns...)
}

// groupedCtx is grouped with a ctx per update (nil: Background).
func groupedCtx(t *testing.T, db *engine, ctxs []context.Context, fns ...func(guard.Tx) error) outcome {
	t.Helper()
	db.group.groupWork = time.Hour
	deadline := time.Now().Add(10 * time.Second)
	release := make(chan struct{})
	holder := make(chan error, 1)
	go func() {
		holder <- db.Update(context.Background(), func(tx guard.Tx) error {
			<-release
			return subject("holder")(tx)
		})
	}()
	for waitFor(t, db, deadline, func(c *committer) bool { return c.runner.Load() == 0 }) {
	}
	errs, panics := make([]error, len(fns)), make([]any, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		ctx := context.Background()
		if ctxs != nil && ctxs[i] != nil {
			ctx = ctxs[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = db.Update(ctx, fn)
		}()
		// Queue them in order, so the test knows which runs first.
		for waitFor(t, db, deadline, func(c *committer) bool { return len(c.queue) < i+1 }) {
		}
	}
	close(release)
	wg.Wait()
	return outcome{errs, panics, <-holder}
}

// waitFor reports whether still(c) holds, after a short sleep; it fails
// the test once the deadline has passed.
func waitFor(t *testing.T, db *engine, deadline time.Time, still func(*committer) bool) bool {
	t.Helper()
	db.group.mu.Lock()
	s := still(&db.group)
	db.group.mu.Unlock()
	if !s {
		return false
	}
	if time.Now().After(deadline) {
		t.Fatal("timed out waiting for the commit group to form")
	}
	time.Sleep(time.Millisecond)
	return true
}

// Invariant 3: many concurrent updates, each storing a row and an audit
// record, are all committed, and the log they built verifies.
func TestGroupCommitConcurrent(t *testing.T) {
	ctx := context.Background()
	db, log := openTest(t), newLog(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("s%03d", i)
			errs[i] = db.Update(ctx, func(tx guard.Tx) error {
				if err := subject(p)(tx); err != nil {
					return err
				}
				_, err := log.Append(ctx, tx, audit.Record{Kind: "test", Pseudonym: portrait.Pseudonym(p)})
				return err
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	var subjects int
	if err := db.read.QueryRow(`SELECT count(*) FROM subjects`).Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if subjects != n {
		t.Errorf("%d subjects stored, want %d", subjects, n)
	}
	verifyLog(t, db, log, n)
}

// verifyLog checks that the log has size entries, that every stored hash
// is the one tlog computes from the entries, and that every entry's
// inclusion proof holds against the signed checkpoint.
func verifyLog(t *testing.T, db *engine, log *audit.Log, size int64) [][]byte {
	t.Helper()
	ctx := context.Background()
	if n, err := db.LogSize(ctx); err != nil || n != size {
		t.Fatalf("log size %d (%v), want %d", n, err, size)
	}
	entries, err := db.LogEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	// Recompute every stored hash from the data alone.
	var want []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = want[x]
		}
		return out, nil
	})
	datas := make([][]byte, len(entries))
	for n, e := range entries {
		hs, err := tlog.StoredHashes(int64(n), e.Data, hr)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, hs...)
		var got []byte
		for _, h := range hs {
			got = append(got, h[:]...)
		}
		if string(got) != string(e.Hashes) {
			t.Fatalf("entry %d: stored hashes differ from those tlog computes", n)
		}
		datas[n] = e.Data
	}
	note, err := log.Sign(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.ParseCheckpoint(note, log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != size {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, size)
	}
	if root, err := tlog.TreeHash(size, hr); err != nil || root != tlog.Hash(cp.Hash) {
		t.Fatalf("checkpoint root differs from the recomputed tree hash (%v)", err)
	}
	for n, data := range datas {
		p, err := log.InclusionProof(ctx, db, int64(n), size)
		if err != nil {
			t.Fatal(err)
		}
		proof := make(tlog.RecordProof, len(p))
		for i, h := range p {
			proof[i] = h
		}
		if err := tlog.CheckRecord(proof, size, cp.Hash, int64(n), tlog.RecordHash(data)); err != nil {
			t.Fatalf("inclusion proof of entry %d: %v", n, err)
		}
	}
	return datas
}

// Invariant 3: in one commit group, a function that fails or panics is
// rolled back to its savepoint and only its caller sees it; the others
// commit.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	boom := errors.New("boom")
	db := openTest(t)
	o := grouped(t, db,
		subject("a"),
		func(tx guard.Tx) error {
			if err := subject("failed")(tx); err != nil {
				return err
			}
			return boom
		},
		subject("b"),
		func(tx guard.Tx) error {
			if err := subject("panicked")(tx); err != nil {
				return err
			}
			panic("kaboom")
		},
		subject("c"),
	)
	wantErr := []error{nil, boom, nil, nil, nil}
	wantPanic := []any{nil, nil, nil, "kaboom", nil}
	if o.holder != nil {
		t.Errorf("holding update: %v", o.holder)
	}
	for i := range o.errs {
		if !errors.Is(o.errs[i], wantErr[i]) || (wantErr[i] == nil && o.errs[i] != nil) {
			t.Errorf("update %d: error %v, want %v", i, o.errs[i], wantErr[i])
		}
		if o.panics[i] != wantPanic[i] {
			t.Errorf("update %d: panic %v, want %v", i, o.panics[i], wantPanic[i])
		}
	}
	for p, want := range map[string]bool{"holder": true, "a": true, "b": true, "c": true, "failed": false, "panicked": false} {
		if got := stored(t, db, p); got != want {
			t.Errorf("subject %s stored = %v, want %v", p, got, want)
		}
	}
}

// A caller whose ctx is done before its function runs gets ctx.Err() and
// its function does not run; the group goes on.
func TestGroupCommitCancelledCaller(t *testing.T) {
	db := openTest(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Update(cancelled, subject("early")); !errors.Is(err, context.Canceled) {
		t.Errorf("update with a done ctx: %v, want context.Canceled", err)
	}
	// Cancelled while queued: the function before it in the group
	// cancels its ctx.
	queued, cancelQueued := context.WithCancel(context.Background())
	var ran atomic.Bool
	o := groupedCtx(t, db, []context.Context{nil, queued, nil},
		func(tx guard.Tx) error { cancelQueued(); return subject("a")(tx) },
		func(tx guard.Tx) error { ran.Store(true); return subject("late")(tx) },
		subject("b"),
	)
	if o.holder != nil || o.errs[0] != nil || !errors.Is(o.errs[1], context.Canceled) || o.errs[2] != nil {
		t.Errorf("errors %v (holder %v), want nil, context.Canceled, nil", o.errs, o.holder)
	}
	if ran.Load() || stored(t, db, "late") || stored(t, db, "early") {
		t.Error("the function of a cancelled caller ran")
	}
	for _, p := range []string{"holder", "a", "b"} {
		if !stored(t, db, p) {
			t.Errorf("subject %s not stored", p)
		}
	}
}

// BenchmarkConcurrentUpdates: 8 goroutines, each Update a small insert
// (one subject) and one audit record, the shape of a decision's write.
func BenchmarkConcurrentUpdates(b *testing.B) {
	ctx := context.Background()
	db, log := openTest(b), newLog(b)
	var n atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			err := db.Update(ctx, func(tx guard.Tx) error {
				p := fmt.Sprintf("s%d", i)
				if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: portrait.Pseudonym(p), WrappedKey: []byte("k")}}); err != nil {
					return err
				}
				_, err := log.Append(ctx, tx, audit.Record{Kind: "decision", Pseudonym: portrait.Pseudonym(p)})
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// Invariant 3: when the group's COMMIT fails, every caller whose function
// succeeded gets the error and nothing of theirs is stored; the writer
// works again afterwards. The COMMIT fails for real, on a deferred foreign
// key one function leaves violated.
func TestGroupCommitFailureFailsAll(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE parent (id INTEGER PRIMARY KEY);
		CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	o := grouped(t, db,
		subject("a"),
		func(tx guard.Tx) error {
			_, err := tx.(*txn).tx.ExecContext(ctx, `INSERT INTO child (parent) VALUES (42)`)
			return err
		},
		func(tx guard.Tx) error { return boom },
		subject("b"),
	)
	for i, err := range append(o.errs, o.holder) {
		want := "FOREIGN KEY constraint failed"
		if i == 2 {
			want = "boom"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("update %d: %v, want an error containing %q", i, err, want)
		}
	}
	for _, p := range []string{"holder", "a", "b"} {
		if stored(t, db, p) {
			t.Errorf("subject %s stored though the commit failed", p)
		}
	}
	if err := db.Update(ctx, subject("after")); err != nil {
		t.Fatalf("update after a failed commit: %v", err)
	}
	if !stored(t, db, "after") {
		t.Error("update after a failed commit not stored")
	}
}

// Invariant 3: when SQLite rolls back the whole transaction under one
// function (here a write interrupted by its caller's cancelled ctx), the
// functions already released into it fail too, nothing of theirs is
// stored, and callers still queued commit in a new group.
func TestGroupCommitTransactionLost(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE big (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	db.group.maxGroup = 3 // holder, a, interrupted: b starts the next group
	interrupted, cancel := context.WithCancel(ctx)
	defer cancel()
	o := groupedCtx(t, db, []context.Context{nil, interrupted, nil},
		subject("a"),
		func(tx guard.Tx) error {
			time.AfterFunc(20*time.Millisecond, cancel)
			_, err := tx.(*txn).tx.ExecContext(interrupted, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)
				INSERT INTO big SELECT x FROM c`)
			return err
		},
		subject("b"),
	)
	for i, err := range []error{o.holder, o.errs[0]} {
		if err == nil || !strings.Contains(err.Error(), "nothing was stored") {
			t.Errorf("update %d, released before the lost one: %v, want an error saying nothing was stored", i, err)
		}
	}
	if o.errs[1] == nil {
		t.Error("interrupted update: nil error")
	}
	if o.errs[2] != nil {
		t.Errorf("update in the next group: %v", o.errs[2])
	}
	for p, want := range map[string]bool{"holder": false, "a": false, "b": true} {
		if got := stored(t, db, p); got != want {
			t.Errorf("subject %s stored = %v, want %v", p, got, want)
		}
	}
}

// A nested Update is refused with ErrNestedUpdate, not deadlocked; the
// outer one decides what to do with the error.
func TestNestedUpdateRefused(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	var inner error
	err := db.Update(ctx, func(tx guard.Tx) error {
		inner = db.Update(ctx, subject("inner"))
		return subject("outer")(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inner, ErrNestedUpdate) {
		t.Errorf("nested update: %v, want ErrNestedUpdate", inner)
	}
	if !stored(t, db, "outer") || stored(t, db, "inner") {
		t.Error("want the outer subject stored and the inner one not")
	}
	// Nesting inside a follower's function, run by another goroutine's
	// group, is refused too.
	o := grouped(t, db, func(tx guard.Tx) error {
		return db.Update(ctx, subject("inner2"))
	})
	if !errors.Is(o.errs[0], ErrNestedUpdate) || o.holder != nil {
		t.Errorf("nested update in a group: %v (holder %v), want ErrNestedUpdate", o.errs[0], o.holder)
	}
}

// Invariant 3 with a real audit.Log: two functions in one group append,
// the first is rolled back to its savepoint after appending, the second's
// records take its indexes; the log verifies with tlog and the second's
// inclusion proofs hold. The Log's hash cache keeps only hashes below a
// size a Reader reported, so the rolled-back hashes were never cached.
func TestGroupCommitAuditRollback(t *testing.T) {
	ctx := context.Background()
	db, log := openTest(t), newLog(t)
	// A committed prefix, and a Reader reporting it, so the cache is in use.
	for i := range 5 {
		if err := db.Update(ctx, func(tx guard.Tx) error {
			_, err := log.Append(ctx, tx, audit.Record{Kind: "test", Pseudonym: portrait.Pseudonym(fmt.Sprint("pre", i))})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	verifyLog(t, db, log, 5)
	boom := errors.New("boom")
	var firstA, firstB int64
	o := grouped(t, db,
		func(tx guard.Tx) error {
			var err error
			if firstA, err = log.Append(ctx, tx, audit.Record{Kind: "test", Pseudonym: "rolled-back-1"}, audit.Record{Kind: "test", Pseudonym: "rolled-back-2"}, audit.Record{Kind: "test", Pseudonym: "rolled-back-3"}); err != nil {
				return err
			}
			return boom
		},
		func(tx guard.Tx) error {
			var err error
			firstB, err = log.Append(ctx, tx, audit.Record{Kind: "test", Pseudonym: "kept-1"}, audit.Record{Kind: "test", Pseudonym: "kept-2"})
			return err
		},
	)
	if !errors.Is(o.errs[0], boom) || o.errs[1] != nil || o.holder != nil {
		t.Fatalf("errors %v (holder %v), want boom, nil", o.errs, o.holder)
	}
	if firstA != 5 || firstB != 5 {
		t.Errorf("first indexes %d and %d, want both 5: the rolled-back entries must free theirs", firstA, firstB)
	}
	datas := verifyLog(t, db, log, 7)
	for i, want := range []string{"kept-1", "kept-2"} {
		if !strings.Contains(string(datas[5+i]), want) {
			t.Errorf("entry %d is %s, want %s", 5+i, datas[5+i], want)
		}
	}
	// Appends after the rollback still build on the right hashes.
	if err := db.Update(ctx, func(tx guard.Tx) error {
		_, err := log.Append(ctx, tx, audit.Record{Kind: "test", Pseudonym: "after"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	verifyLog(t, db, log, 8)
}
