package storetest

import (
	"context"
	"slices"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// testPending checks the marks of batches waiting for incremental
// derivation (derive.Queue): one row per batch naming its subjects, read
// back in id order a page at a time; PendingCommitted sees a mark once it
// commits and not after ClearPending; a pseudonym that could not be read
// back is refused.
func testPending(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	mark := func(ps ...portrait.Pseudonym) int64 {
		t.Helper()
		var id int64
		update(t, s, func(ctx context.Context, tx portrait.Tx) (err error) { id, err = tx.MarkPending(ctx, ps); return err })
		return id
	}
	all := func() []portrait.PendingMark {
		t.Helper()
		var out []portrait.PendingMark
		var after int64
		for {
			page, err := s.Pending(ctx, after, 2) // pages of two
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return out
			}
			out, after = append(out, page...), page[len(page)-1].ID
		}
	}
	a := mark("c", "a")
	b := mark("a")
	c := mark("b", "d", "e")
	got := all()
	want := []portrait.PendingMark{{ID: a, Pseudonyms: []portrait.Pseudonym{"c", "a"}}, {ID: b, Pseudonyms: []portrait.Pseudonym{"a"}},
		{ID: c, Pseudonyms: []portrait.Pseudonym{"b", "d", "e"}}}
	if !slices.EqualFunc(got, want, func(x, y portrait.PendingMark) bool { return x.ID == y.ID && slices.Equal(x.Pseudonyms, y.Pseudonyms) }) {
		t.Fatalf("marks %v, want %v", got, want)
	}
	// A mark is seen once committed: one still in its transaction is not.
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		open, err := tx.MarkPending(ctx, []portrait.Pseudonym{"f"})
		if err != nil {
			return err
		}
		seen, err := s.PendingCommitted(ctx, []int64{a, open})
		if err != nil {
			return err
		}
		if !slices.Equal(seen, []int64{a}) {
			t.Errorf("seen from outside the marking transaction: %v, want only %d", seen, a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.ClearPending(ctx, []int64{a, c}) })
	seen, err := s.PendingCommitted(ctx, []int64{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int64{b}) {
		t.Errorf("after clearing %d and %d: %v seen, want %d", a, c, seen, b)
	}
	if ms := all(); len(ms) != 2 || ms[0].ID != b {
		t.Errorf("marks after clearing: %v", ms)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := tx.MarkPending(ctx, []portrait.Pseudonym{"g h"})
		return err
	})
	if err == nil {
		t.Error("a pseudonym with a space was marked; it would be read back as two")
	}
}

// testPendingErased checks that erasure takes the subject's name out of
// every derivation mark in its own transaction (SR-3): a mark naming only
// the erased subject goes, one naming others keeps them, and a pseudonym
// that merely contains the erased one, or matches it as a LIKE pattern
// would, stays.
func testPendingErased(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	var ids []int64
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a_1"), subject("b")}); err != nil {
			return err
		}
		for _, ps := range [][]portrait.Pseudonym{{"a_1"}, {"b", "a_1", "A_1"}, {"xa_1", "a_1y", "aX1"}, {"a_1", "b"}} {
			id, err := tx.MarkPending(ctx, ps)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a_1", policy.Erase)) })
	got, err := s.Pending(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []portrait.PendingMark{{ID: ids[1], Pseudonyms: []portrait.Pseudonym{"b", "A_1"}},
		{ID: ids[2], Pseudonyms: []portrait.Pseudonym{"xa_1", "a_1y", "aX1"}}, {ID: ids[3], Pseudonyms: []portrait.Pseudonym{"b"}}}
	if !slices.EqualFunc(got, want, func(x, y portrait.PendingMark) bool { return x.ID == y.ID && slices.Equal(x.Pseudonyms, y.Pseudonyms) }) {
		t.Errorf("marks after erasing a_1: %v, want %v", got, want)
	}
}
