package ingest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// TestLogOutlivesRetention: the retention sweeper deletes personal data
// when its period ends, but never an audit record. Seven months and four
// years on, every record written before the sweeps is still there,
// byte for byte, provably in the newest signed tree, and that tree extends
// the one signed before (RO-2, FA-5). On both engines: each keeps the log
// in its own tables, and each sweeps in its own SQL (invariant 7).
func TestLogOutlivesRetention(t *testing.T) {
	onEachEngine(t, testLogOutlivesRetention)
}

func testLogOutlivesRetention(t *testing.T, e *env) {
	ctx := context.Background()
	e.grant(t, "u1", "personalization")
	e.ingest(t, portrait.Event{SubjectID: "u1", Type: "purchase", Time: e.now, Fields: map[string]any{"item": "a", "amount": 10.0}})
	before, err := e.log.Sign(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	old, err := audit.ParseCheckpoint(before, e.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	kept := make([][]byte, old.Size)
	for i := range kept {
		if kept[i], err = e.log.Entry(ctx, e.st, int64(i)); err != nil {
			t.Fatal(err)
		}
	}

	for _, later := range []time.Duration{7 * 30 * 24 * time.Hour, 4 * 365 * 24 * time.Hour} {
		if _, err := e.in.Sweep(ctx, e.now.Add(later)); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.events(t, "u1"); len(got) != 0 {
		t.Fatalf("the sweeper kept events past their retention: %v", got)
	}

	after, err := e.log.Sign(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := audit.ParseCheckpoint(after, e.log.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if cur.Size < old.Size {
		t.Fatalf("the log shrank from %d to %d entries", old.Size, cur.Size)
	}
	proof, err := e.log.ConsistencyProof(ctx, e.st, old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(toTlog(proof), cur.Size, cur.Hash, old.Size, old.Hash); err != nil {
		t.Fatalf("the tree after the sweeps does not extend the one before: %v", err)
	}
	for i, want := range kept {
		got, err := e.log.Entry(ctx, e.st, int64(i))
		if err != nil {
			t.Fatalf("entry %d is gone after the sweeps: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("entry %d changed after the sweeps", i)
		}
		p, err := e.log.InclusionProof(ctx, e.st, int64(i), cur.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(toTlog(p), cur.Size, cur.Hash, int64(i), tlog.RecordHash(got)); err != nil {
			t.Errorf("entry %d is not in the signed tree: %v", i, err)
		}
	}
}

func toTlog(p [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i := range p {
		out[i] = p[i]
	}
	return out
}
