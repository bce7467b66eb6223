package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// testLogAppendAfterRollback: appends rolled back — a function that fails
// after appending, a batch whose second append is refused — leave nothing
// an append reads, so the next append extends the committed tree: the
// hashes a transaction reads for its append (through the Writer) are the
// committed ones, a transaction reads back the hashes it appended itself,
// and a full check recomputes the whole log from its records. On SQLite
// the append's hashes come from memory (sqlite/frontier.go), on
// PostgreSQL from the rows; the answers must be the same.
func testLogAppendAfterRollback(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	log, err := audit.New("portrait.test/frontier", key)
	if err != nil {
		t.Fatal(err)
	}
	rec := audit.Record{Kind: "decision", Pseudonym: "p"}
	appendN := func(n int) func(context.Context, portrait.Tx) error {
		return func(ctx context.Context, tx portrait.Tx) error {
			for range n {
				if _, err := log.Append(ctx, tx, rec); err != nil {
					return err
				}
			}
			return nil
		}
	}
	for _, n := range []int{1, 2, 2} {
		if err := s.Update(ctx, appendN(n)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { appendN(3)(ctx, tx); return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing update: %v", err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := appendN(1)(ctx, tx); err != nil {
			return err
		}
		return tx.AppendLog(ctx, []portrait.LogEntry{{Index: 99, Data: []byte("x"), Hashes: make([]byte, 32)}})
	})
	wantCode(t, "append out of place", err, portrait.ECONFLICT)
	if err := s.Update(ctx, appendN(2)); err != nil {
		t.Fatal(err)
	}
	const size = 7
	if n, err := s.LogSize(ctx); err != nil || n != size {
		t.Fatalf("log size %d (%v), want %d", n, err, size)
	}
	committed, err := s.LogHashes(ctx, audit.FrontierIndexes(size))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		got, err := tx.LogHashes(ctx, audit.FrontierIndexes(size))
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(committed) {
			t.Errorf("a transaction reads the frontier %x, the store committed %x", got, committed)
		}
		front := make([]tlog.Hash, len(committed))
		for i, h := range committed {
			front[i] = h
		}
		mine := audit.Entries(size, front, [][]byte{[]byte("rolled back")})
		mine[0].Kind = "decision"
		if err := tx.AppendLog(ctx, mine); err != nil {
			return err
		}
		want := audit.NewFrontier(size, committed).Next(mine)
		got, err = tx.LogHashes(ctx, audit.FrontierIndexes(size+1))
		if err != nil {
			return err
		}
		if w, _ := want.Hashes(audit.FrontierIndexes(size + 1)); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("after its append a transaction reads the frontier %x, want %x", got, w)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update rolled back on purpose: %v", err)
	}
	if err := s.Update(ctx, appendN(1)); err != nil {
		t.Fatal(err)
	}
	fresh, _ := audit.New("portrait.test/frontier", key)
	if r, err := fresh.Check(ctx, s); err != nil || r.Entries != size+1 {
		t.Fatalf("full check: %d records, %v; want %d that recompute", r.Entries, err, size+1)
	}
}
