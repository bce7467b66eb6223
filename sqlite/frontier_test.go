package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/guard"
	"github.com/portrait-dev/portrait/sqlite/sqlitetest"
)

// appendRecs returns an update function that appends n records through l.
func appendRecs(l *audit.Log, n int) func(guard.Tx) error {
	return func(tx guard.Tx) error {
		for range n {
			if _, err := l.Append(context.Background(), tx, audit.Record{Kind: "decision", Pseudonym: "p"}); err != nil {
				return err
			}
		}
		return nil
	}
}

// frontierIs fails t unless db keeps the frontier of a committed log of
// size n whose hashes are the ones stored in the file.
func frontierIs(t *testing.T, db *engine, n int64) {
	t.Helper()
	f := db.front.Load()
	if f == nil || f.Size != n {
		t.Fatalf("frontier in memory %v, want one of size %d", f, n)
	}
	want, err := db.LogHashes(context.Background(), audit.FrontierIndexes(n))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Hashes(audit.FrontierIndexes(n)); !ok || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frontier in memory at %d: %x, the file holds %x", n, got, want)
	}
}

// The log's frontier kept in memory (frontier.go) follows the committed
// log exactly: a rolled-back append, a rolled-back member of a group and
// a failed COMMIT leave it as it was; a reopened store and a second handle
// on the file read it from the store; a head wound back behind the
// engine's back is not appended to from memory. Every log is then
// recomputed from its records (verifyLog). That the append takes its
// hashes from memory shows when the stored frontier hash is edited: the
// next append still extends the tree that was committed (invariant 8:
// the stored hashes are not what keeps it right).
func TestLogFrontier(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close() }()
	db, log := d.e, newLog(t)
	boom := errors.New("boom")
	if f := db.front.Load(); f != nil {
		t.Fatalf("a new store keeps a frontier before any append: %v", f)
	}
	for i := 1; i <= 5; i++ {
		if err := db.Update(ctx, appendRecs(log, i)); err != nil {
			t.Fatal(err)
		}
	}
	frontierIs(t, db, 15)
	verifyLog(t, db, log, 15)

	// A lone update that appends and then fails.
	kept := db.front.Load()
	if err := db.Update(ctx, func(tx guard.Tx) error { appendRecs(log, 2)(tx); return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing update: %v", err)
	}
	if db.front.Load() != kept {
		t.Fatal("a rolled-back append moved the frontier in memory")
	}

	// A group whose middle member appends and is rolled back.
	o := groupedWith(t, db, appendRecs(log, 1), nil,
		func(tx guard.Tx) error { appendRecs(log, 3)(tx); return boom },
		appendRecs(log, 2),
	)
	if o.holder != nil || !errors.Is(o.errs[0], boom) || o.errs[1] != nil {
		t.Fatalf("errors %v (holder %v)", o.errs, o.holder)
	}
	frontierIs(t, db, 18)
	verifyLog(t, db, log, 18)

	// A COMMIT that fails, on a deferred foreign key, after appends.
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE parent (id INTEGER PRIMARY KEY);
		CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`); err != nil {
		t.Fatal(err)
	}
	kept = db.front.Load()
	o = groupedWith(t, db, appendRecs(log, 1), nil, func(tx guard.Tx) error {
		if err := appendRecs(log, 2)(tx); err != nil {
			return err
		}
		_, err := tx.(*txn).tx.ExecContext(ctx, `INSERT INTO child (parent) VALUES (42)`)
		return err
	})
	if o.holder == nil || !strings.Contains(o.holder.Error(), "FOREIGN KEY") {
		t.Fatalf("commit error %v, want the foreign key's", o.holder)
	}
	if db.front.Load() != kept {
		t.Fatal("a failed COMMIT moved the frontier in memory")
	}
	if err := db.Update(ctx, appendRecs(log, 1)); err != nil {
		t.Fatal(err)
	}
	frontierIs(t, db, 19)
	verifyLog(t, db, log, 19)

	// The last hash of the frontier edited in the file: a fresh Log
	// (nothing cached) appends over the hash the engine committed, so the
	// tree verifies once the row is put back.
	raw := sqlitetest.Raw(t, path)
	idx := audit.FrontierIndexes(19)
	rec, _ := audit.EntryForHash(idx[len(idx)-1])
	orig := raw.Bytes(t, fmt.Sprintf(`SELECT hashes FROM log_entries WHERE idx = %d`, rec))
	raw.Exec(t, fmt.Sprintf(`UPDATE log_entries SET hashes = ? WHERE idx = %d`, rec), make([]byte, len(orig)))
	if err := db.Update(ctx, appendRecs(newLog(t), 1)); err != nil {
		t.Fatal(err)
	}
	raw.Exec(t, fmt.Sprintf(`UPDATE log_entries SET hashes = ? WHERE idx = %d`, rec), orig)
	verifyLog(t, db, newLog(t), 20)

	// The head wound back behind the engine: the transaction's size is
	// not the one in memory, so the frontier is read from the file.
	raw.Exec(t, `DELETE FROM log_entries WHERE idx = 19`)
	raw.Exec(t, `UPDATE log_head SET size = 19`)
	if err := db.Update(ctx, appendRecs(newLog(t), 1)); err != nil {
		t.Fatal(err)
	}
	frontierIs(t, db, 20)
	verifyLog(t, db, newLog(t), 20)

	// Reopened: nothing in memory until an append reads it from the file.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if d, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	db, log = d.e, newLog(t)
	if f := db.front.Load(); f != nil {
		t.Fatalf("a reopened store keeps a frontier before any append: %v", f)
	}
	if err := db.Update(ctx, appendRecs(log, 1)); err != nil {
		t.Fatal(err)
	}
	frontierIs(t, db, 21)
	verifyLog(t, db, log, 21)

	// Two handles on the file, as two nodes in one process: each appends
	// after the other's commits.
	d2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	log2 := newLog(t)
	size := int64(21)
	for i := range 4 {
		if err := db.Update(ctx, appendRecs(log, 1+i%2)); err != nil {
			t.Fatal(err)
		}
		size += int64(1 + i%2)
		frontierIs(t, db, size)
		if err := d2.e.Update(ctx, appendRecs(log2, 2)); err != nil {
			t.Fatal(err)
		}
		size += 2
		frontierIs(t, d2.e, size)
		verifyLog(t, db, log, size)
	}
	verifyLog(t, d2.e, log2, size)
}
