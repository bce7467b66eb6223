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
	"github.com/portrait-dev/portrait/sqlite/sqlitetest"
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
	errs        []error
	panics      []any
	holder      error
	holderPanic any
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
	return groupedWith(t, db, subject("holder"), ctxs, fns...)
}

// groupedWith is groupedCtx with the holding update's function, which
// runs first in the group, once the others are queued.
func groupedWith(t *testing.T, db *engine, hold func(guard.Tx) error, ctxs []context.Context, fns ...func(guard.Tx) error) outcome {
	t.Helper()
	db.group.groupWork = time.Hour
	deadline := time.Now().Add(10 * time.Second)
	release, running := make(chan struct{}), make(chan struct{})
	holder, holderPanic := make(chan error, 1), make(chan any, 1)
	go func() {
		defer func() { holderPanic <- recover() }()
		var err error
		defer func() { holder <- err }()
		err = db.Update(context.Background(), func(tx guard.Tx) error {
			close(running)
			<-release
			return hold(tx)
		})
	}()
	<-running
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
	// On runtime.Goexit too the holder's deferred sends run.
	return outcome{errs, panics, <-holder, <-holderPanic}
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

// The first function of a transaction runs without a savepoint; the ones
// that join it each run inside one.
func TestGroupCommitFirstRunsBare(t *testing.T) {
	db := openTest(t)
	// ROLLBACK TO a savepoint that does not exist fails: it tells a bare
	// function from one inside the group's savepoint.
	inSavepoint := func(tx guard.Tx) bool {
		_, err := tx.(*txn).tx.ExecContext(context.Background(), `ROLLBACK TO member`)
		return err == nil
	}
	var lone bool
	if err := db.Update(context.Background(), func(tx guard.Tx) error { lone = inSavepoint(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	if lone {
		t.Error("a lone caller ran inside a savepoint")
	}
	var joined bool
	o := grouped(t, db, func(tx guard.Tx) error { joined = inSavepoint(tx); return subject("a")(tx) })
	if o.holder != nil || o.errs[0] != nil {
		t.Fatalf("errors %v, holder %v", o.errs, o.holder)
	}
	if !joined {
		t.Error("a caller that joined a group ran without a savepoint")
	}
}

// Invariant 3: the first function of a group runs bare, so when it fails
// or panics the whole transaction, which holds only its writes, is rolled
// back, and the callers queued behind it still commit, in a new
// transaction of the same group. A lone caller that fails stores nothing.
func TestGroupCommitFirstFails(t *testing.T) {
	boom := errors.New("boom")
	for _, tt := range []struct {
		name  string
		first func(guard.Tx) error
	}{
		{"error", func(tx guard.Tx) error { subject("first")(tx); return boom }},
		{"panic", func(tx guard.Tx) error { subject("first")(tx); panic("kaboom") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			o := groupedWith(t, db, tt.first, nil,
				subject("a"),
				func(tx guard.Tx) error { subject("failed")(tx); return boom },
				subject("b"),
			)
			if tt.name == "error" && !errors.Is(o.holder, boom) {
				t.Errorf("first update: %v, want boom", o.holder)
			}
			if tt.name == "panic" && o.holderPanic != "kaboom" {
				t.Errorf("first update: panic %v, want kaboom re-raised", o.holderPanic)
			}
			if o.errs[0] != nil || !errors.Is(o.errs[1], boom) || o.errs[2] != nil {
				t.Errorf("errors %v, want nil, boom, nil", o.errs)
			}
			for p, want := range map[string]bool{"first": false, "a": true, "failed": false, "b": true} {
				if got := stored(t, db, p); got != want {
					t.Errorf("subject %s stored = %v, want %v", p, got, want)
				}
			}
			// Alone.
			err := db.Update(context.Background(), func(tx guard.Tx) error { subject("lone")(tx); return boom })
			if !errors.Is(err, boom) || stored(t, db, "lone") {
				t.Errorf("lone failing update: %v, stored %v; want boom and nothing stored", err, stored(t, db, "lone"))
			}
		})
	}
}

// A function that exits its goroutine (runtime.Goexit, as t.FailNow
// does) stores nothing, alone or in a group; the callers of its group are
// answered, and the writer works afterwards.
func TestGroupCommitGoexit(t *testing.T) {
	db := openTest(t)
	done := make(chan error, 1)
	go func() {
		defer func() { done <- nil }()
		db.Update(context.Background(), func(tx guard.Tx) error { subject("lone")(tx); runtime.Goexit(); return nil })
	}()
	<-done
	o := grouped(t, db, subject("a"), func(tx guard.Tx) error { subject("exited")(tx); runtime.Goexit(); return nil }, subject("b"))
	// The goroutine that ran the exiting function was the holder's: its
	// Update never returns; the caller of the group before it is told
	// nothing was stored, and the one still queued commits in the next.
	if err := o.errs[0]; err == nil || !strings.Contains(err.Error(), "nothing was stored") {
		t.Errorf("update in the group: %v, want an error saying nothing was stored", err)
	}
	if o.errs[2] != nil {
		t.Errorf("update queued behind the group: %v", o.errs[2])
	}
	for p, want := range map[string]bool{"lone": false, "holder": false, "a": false, "exited": false, "b": true} {
		if got := stored(t, db, p); got != want {
			t.Errorf("subject %s stored = %v, want %v", p, got, want)
		}
	}
	if err := db.Update(context.Background(), subject("after")); err != nil || !stored(t, db, "after") {
		t.Errorf("update after a Goexit: %v", err)
	}
}

// After a group of several callers, the next leader lingers: a caller
// arriving within the linger joins its transaction (it sees the first
// caller's uncommitted write) instead of waiting for the next. After a
// lone caller's group, the next leader does not wait.
func TestGroupCommitLingers(t *testing.T) {
	ctx := context.Background()
	db := openTest(t)
	db.group.linger = time.Minute
	grouped(t, db, subject("a"), subject("b")) // the previous group had company
	db.group.linger = 300 * time.Millisecond
	joined := make(chan bool, 1)
	first := make(chan error, 1)
	running := make(chan struct{})
	go func() {
		first <- db.Update(ctx, func(tx guard.Tx) error { defer close(running); return subject("first")(tx) })
	}()
	<-running
	if err := db.Update(ctx, func(tx guard.Tx) error {
		var n int
		err := tx.(*txn).tx.QueryRowContext(ctx, `SELECT count(*) FROM subjects WHERE pseudonym = 'first'`).Scan(&n)
		joined <- n == 1
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !<-joined {
		t.Error("a caller arriving while the leader lingered did not join its transaction")
	}
	// This group had two callers, so the next lingers, alone, for the
	// full linger; the one after it had one, so the next does not wait.
	db.Update(ctx, subject("c"))
	db.group.linger = time.Hour
	start := time.Now()
	if err := db.Update(ctx, subject("d")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("a caller after a lone group waited %v", d)
	}
}

// The log head: a commit group reads it once and keeps it through its
// members, a rolled-back member's appends excluded; the committed size is
// then kept in memory (CommittedLogSize, read by no check) and equals the
// row. A head wound back behind the store's back is what LogSize reports
// and where the next transaction appends: nothing but CommittedLogSize
// trusts the value in memory, and the next commit corrects it.
func TestCommittedLogSize(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	db, log := d.e, newLog(t)
	if n, err := d.CommittedLogSize(ctx); err != nil || n != 0 {
		t.Fatalf("committed size of a new store: %d, %v; want 0", n, err)
	}
	appendRec := func(n int) func(guard.Tx) error {
		return func(tx guard.Tx) error {
			for range n {
				if _, err := log.Append(ctx, tx, audit.Record{Kind: "decision", Pseudonym: "p"}); err != nil {
					return err
				}
			}
			return nil
		}
	}
	boom := errors.New("boom")
	o := groupedWith(t, db, appendRec(2), nil,
		func(tx guard.Tx) error { appendRec(1)(tx); return boom },
		appendRec(1),
	)
	if o.holder != nil || !errors.Is(o.errs[0], boom) || o.errs[1] != nil {
		t.Fatalf("errors %v (holder %v)", o.errs, o.holder)
	}
	real := func() int64 {
		t.Helper()
		n, err := d.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n, _ := d.CommittedLogSize(ctx); n != 3 || real() != 3 {
		t.Errorf("committed size %d, log_head %d; want 3 and 3", n, real())
	}
	verifyLog(t, db, log, 3)

	raw := sqlitetest.Raw(t, path)
	raw.Exec(t, `DELETE FROM log_entries WHERE idx = 2`)
	raw.Exec(t, `UPDATE log_head SET size = 2`)
	if real() != 2 {
		t.Errorf("LogSize after the head was wound back: %d, want 2 (read from the row)", real())
	}
	if err := db.Update(ctx, appendRec(1)); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.CommittedLogSize(ctx); n != 3 || real() != 3 {
		t.Errorf("after the next commit: committed size %d, log_head %d; want 3 and 3", n, real())
	}

	// From memory: with the read pool closed, it still answers.
	db.read.Close()
	if n, err := d.CommittedLogSize(ctx); err != nil || n != 3 {
		t.Errorf("committed size without the read pool: %d, %v; want 3 from memory", n, err)
	}
}

// apply's marks read the committed size from memory on SQLite.
var _ audit.CommittedSizer = (*DB)(nil)
