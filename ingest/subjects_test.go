package ingest_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

// countingStore counts the store's subject reads.
type countingStore struct {
	portrait.Store
	reads atomic.Int64
}

func (s *countingStore) Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error) {
	s.reads.Add(1)
	return s.Store.Subjects(ctx, pseudonyms)
}

// A chunk reads its subjects' keys from the store only when the
// governance generation moved since they were last read: a second
// request at the same generation uses the keys the first read, and a
// consent change (which bumps the generation) makes the next read them
// again.
func TestSubjectKeysReadOncePerGeneration(t *testing.T) {
	onEachEngine(t, func(t *testing.T, e *env) {
		cs := &countingStore{Store: e.st}
		in := ingest.New(ingest.Deps{Store: cs, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log},
			ingest.Options{Now: func() time.Time { return e.now }})
		e.grant(t, "u1", "personalization")
		view := portrait.Event{SubjectID: "u1", Type: "view", Time: e.now.Add(-time.Hour), Fields: map[string]any{"item": "a", "category": "sports"}}
		run := func() {
			t.Helper()
			if _, sum, err := in.Ingest(context.Background(), operator, []ingest.Item{{Event: view}}); err != nil || sum.Accepted != 1 {
				t.Fatalf("ingest: %v %+v", err, sum)
			}
		}
		run() // the subject is new: read, then stored by the commit
		run() // stored now: read once more, and kept
		n := cs.reads.Load()
		run()
		if got := cs.reads.Load(); got != n {
			t.Errorf("a request at the same generation read the subjects again (%d reads, want %d)", got, n)
		}
		e.grant(t, "u1", "credit")
		run()
		if got := cs.reads.Load(); got != n+1 {
			t.Errorf("after a consent change: %d reads, want %d", got, n+1)
		}
		if got := e.events(t, "u1"); len(got) != 4 {
			t.Errorf("%d events read back, want 4", len(got))
		}
	})
}

// Invariant 4, CM-5: after a subject is erased, its next events are sealed
// under a new key that the store holds, never under the erased one: the
// keys a chunk keeps from the one before (Ingester.subjects) are dropped when
// the erasure moves the governance generation.
func TestSubjectKeysAcrossErasure(t *testing.T) {
	onEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.grant(t, "u1", "personalization")
		view := portrait.Event{SubjectID: "u1", Type: "view", Time: e.now.Add(-time.Hour), Fields: map[string]any{"item": "a", "category": "sports"}}
		for range 2 {
			if _, sum := e.ingest(t, view); sum.Accepted != 1 {
				t.Fatalf("not accepted: %+v", sum)
			}
		}
		ps := e.keys.Pseudonym("u1")
		before, err := e.st.Subjects(ctx, []portrait.Pseudonym{ps})
		if err != nil || len(before) != 1 {
			t.Fatalf("subject before erasure: %v %v", before, err)
		}
		d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Erase, Caller: policy.Caller{Role: policy.System}})
		if err := e.st.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, d.Grant) }); err != nil {
			t.Fatal(err)
		}
		e.keys.Forget(ps)
		e.grant(t, "u1", "personalization")
		if _, sum := e.ingest(t, view); sum.Accepted != 1 {
			t.Fatalf("not accepted after erasure: %+v", sum)
		}
		after, err := e.st.Subjects(ctx, []portrait.Pseudonym{ps})
		if err != nil || len(after) != 1 {
			t.Fatalf("subject after erasure: %v %v", after, err)
		}
		if bytes.Equal(after[ps].WrappedKey, before[ps].WrappedKey) {
			t.Error("the erased subject's key is back")
		}
		if got := e.events(t, "u1"); len(got) != 1 || got[0]["item"] != "a" {
			t.Errorf("read back after erasure: %v", got)
		}
	})
}
