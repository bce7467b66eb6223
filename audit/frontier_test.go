package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// A frontier advanced by the entries a Log appends holds, at every size,
// the stored hashes an append at that size reads from the store.
func TestFrontierNext(t *testing.T) {
	ctx := context.Background()
	l, err := audit.New("portrait.test/log", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	m := new(audit.Memory)
	f := audit.NewFrontier(0, nil)
	for batch := 1; f.Size < 200; batch = batch%7 + 1 {
		recs := make([]audit.Record, batch)
		for i := range recs {
			recs[i] = audit.Record{Kind: "decision", Pseudonym: portrait.Pseudonym(fmt.Sprint("p", f.Size+int64(i)))}
		}
		first, err := l.Append(ctx, m, recs...)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := m.LogEntries(ctx, first, first+int64(batch))
		if err != nil {
			t.Fatal(err)
		}
		if f = f.Next(entries); f == nil || f.Size != first+int64(batch) {
			t.Fatalf("after appending %d at %d: frontier %v", batch, first, f)
		}
		want, err := m.LogHashes(ctx, audit.FrontierIndexes(f.Size))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := f.Hashes(audit.FrontierIndexes(f.Size))
		if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("frontier at %d: %x (%v), want the stored %x", f.Size, got, ok, want)
		}
		if again := audit.NewFrontier(f.Size, want); fmt.Sprint(again) != fmt.Sprint(f) {
			t.Fatalf("NewFrontier(%d, stored hashes) = %v, want %v", f.Size, again, f)
		}
	}
}

// What does not continue a frontier is refused, never half-applied.
func TestFrontierRefuses(t *testing.T) {
	h := func(n int) []byte { return bytes.Repeat([]byte{1}, n*audit.HashSize) }
	f := audit.NewFrontier(3, make([][32]byte, 2)) // subtrees of 2 and 1
	if f == nil {
		t.Fatal("NewFrontier(3, two hashes) = nil")
	}
	for _, tt := range []struct {
		name    string
		entries []portrait.LogEntry
	}{
		{"gap", []portrait.LogEntry{{Index: 4, Hashes: h(1)}}},
		{"behind", []portrait.LogEntry{{Index: 2, Hashes: h(2)}}},
		// Record 3 finishes the subtrees of 1 and 2: three hashes.
		{"too few hashes", []portrait.LogEntry{{Index: 3, Hashes: h(2)}}},
		{"too many hashes", []portrait.LogEntry{{Index: 3, Hashes: h(4)}}},
		{"second out of place", []portrait.LogEntry{{Index: 3, Hashes: h(3)}, {Index: 5, Hashes: h(1)}}},
	} {
		if got := f.Next(tt.entries); got != nil {
			t.Errorf("%s: Next = %v, want nil", tt.name, got)
		}
	}
	if f.Size != 3 {
		t.Errorf("a refused Next changed the frontier: size %d", f.Size)
	}
	if _, ok := f.Hashes([]int64{audit.FrontierIndexes(3)[0], 99}); ok {
		t.Error("Hashes answered for an index outside the frontier")
	}
	if audit.NewFrontier(3, make([][32]byte, 1)) != nil {
		t.Error("NewFrontier took one hash for a frontier of two")
	}
}
