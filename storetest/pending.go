package storetest

import (
	"context"
	"slices"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// testPending checks the record of subjects waiting for incremental
// derivation (derive.Queue): each mark is a new row, listed once per
// subject in pseudonym order; ClearPending deletes the marks read, and a
// mark made after the read stays; erasure deletes the subject's marks.
func testPending(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	mark := func(ps ...portrait.Pseudonym) {
		t.Helper()
		update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.MarkPending(ctx, ps) })
	}
	waiting := func() []portrait.Pseudonym {
		t.Helper()
		var out []portrait.Pseudonym
		var after portrait.Pseudonym
		for {
			page, err := s.Pending(ctx, after, 2) // pages of two
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				return out
			}
			out, after = append(out, page...), page[len(page)-1]
		}
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a"), subject("b"), subject("c")})
	})
	mark("c", "a")
	mark("a", "b")
	if got, want := waiting(), []portrait.Pseudonym{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("waiting %v, want %v", got, want)
	}
	ids, err := s.PendingMarks(ctx, []portrait.Pseudonym{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 {
		t.Fatalf("%d marks of a and b, want 3", len(ids))
	}
	mark("a") // after the read: stays
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.ClearPending(ctx, ids) })
	if got, want := waiting(), []portrait.Pseudonym{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("after clearing the marks read: waiting %v, want %v", got, want)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "c", policy.Erase)) })
	if got, want := waiting(), []portrait.Pseudonym{"a"}; !slices.Equal(got, want) {
		t.Errorf("after erasing c: waiting %v, want %v", got, want)
	}
	if ids, err := s.PendingMarks(ctx, nil); err != nil || len(ids) != 0 {
		t.Errorf("marks of no subject: %v, %v", ids, err)
	}
}
