package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/portrait-dev/portrait/guard"
)

// The governance generation is kept in memory per file and forgotten by
// every transaction of the process that bumps it, on whichever handle:
// the next read after a committed bump sees it (invariant 5), and reads
// in between do not touch the store.
func TestGenerationKeptUntilBump(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path) // a second handle in this process: a second node in tests
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gen := func(db *DB) int64 {
		t.Helper()
		n, err := db.Generation(ctx) // through the guard, as every caller reads it
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	suppress := func(db *DB, fail bool) {
		t.Helper()
		err := db.e.Update(ctx, func(tx guard.Tx) error {
			if err := tx.Suppress(ctx, "p", "x", true); err != nil {
				return err
			}
			if fail {
				return errors.New("abandon")
			}
			return nil
		})
		if (err != nil) != fail {
			t.Fatalf("suppress (fail %v): %v", fail, err)
		}
	}
	g0 := gen(a)

	// A change made behind the process's back (which the owner lock
	// forbids another process to make) is not seen: the value is memory.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE generation SET n = n + 100`); err != nil {
		t.Fatal(err)
	}
	if g := gen(a); g != g0 {
		t.Fatalf("generation %d after an outside edit, want the kept %d: not read from memory", g, g0)
	}

	// A bump on either handle is seen by both at the next read.
	suppress(b, false)
	if ga, gb := gen(a), gen(b); ga != g0+101 || gb != g0+101 {
		t.Fatalf("after a bump on the other handle: %d and %d, want %d", ga, gb, g0+101)
	}
	suppress(a, false)
	if ga, gb := gen(a), gen(b); ga != g0+102 || gb != g0+102 {
		t.Fatalf("after a bump on this handle: %d and %d, want %d", ga, gb, g0+102)
	}
	// A rolled-back bump moves nothing.
	suppress(a, true)
	if g := gen(a); g != g0+102 {
		t.Fatalf("after a rolled-back bump: %d, want %d", g, g0+102)
	}
}

// A value read before a bump's commit is not kept once the bump has been
// forgotten, so a slow reader cannot put an old generation back.
func TestGenerationFillAfterForget(t *testing.T) {
	var g generation
	_, epoch, ok := g.get()
	if ok {
		t.Fatal("a new generation is known")
	}
	g.forget() // a transaction bumped while the reader was reading
	g.fill(epoch, 7)
	if _, _, ok := g.get(); ok {
		t.Fatal("a value read before the forget was kept")
	}
	_, epoch, _ = g.get()
	g.fill(epoch, 8)
	if n, _, ok := g.get(); !ok || n != 8 {
		t.Fatalf("get = %d, %v; want 8, true", n, ok)
	}
}

// Ping, the health check's probe, reads the store (tables.DB's, not the
// kept generation): it fails once the store is closed, and the kept
// generation is no answer after Close either.
func TestPingReadsTheStore(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "portrait.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Generation(ctx); err != nil { // kept from here on
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping an open store: %v", err)
	}
	db.Close()
	if err := db.Ping(ctx); err == nil {
		t.Error("ping of a closed store succeeded: the health check would say a closed store is up")
	}
	if _, err := db.Generation(ctx); err == nil {
		t.Error("the generation of a closed store was answered from memory")
	}
}
