package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// pageRead is one page read (EventsFor, ProfilesFor …) next to the
// per-subject method it batches.
type pageRead[T any] struct {
	name string
	page func(context.Context, []policy.Grant) (map[portrait.Pseudonym][]T, error)
	one  func(context.Context, policy.Grant) ([]T, error)
}

// check asserts that the page read of grants returns, for every subject
// with something stored, exactly what the per-subject method returns
// under that subject's grant, in the same order, and nothing for the
// others (absent, not empty).
func (r pageRead[T]) check(t *testing.T, grants []policy.Grant) {
	t.Helper()
	ctx := context.Background()
	got, err := r.page(ctx, grants)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	want := map[portrait.Pseudonym][]T{}
	for _, g := range grants {
		if _, done := want[g.Pseudonym()]; done {
			continue
		}
		one, err := r.one(ctx, g)
		if err != nil {
			t.Fatalf("%s: per-subject read of %s: %v", r.name, g.Pseudonym(), err)
		}
		want[g.Pseudonym()] = one
	}
	for p, w := range want {
		if len(w) == 0 {
			if g, ok := got[p]; ok {
				t.Errorf("%s: subject %s has nothing stored but the page holds %+v", r.name, p, g)
			}
			continue
		}
		if !reflect.DeepEqual(got[p], w) {
			t.Errorf("%s: subject %s\n got %+v\nwant %+v", r.name, p, got[p], w)
		}
	}
	for p := range got {
		if _, asked := want[p]; !asked {
			t.Errorf("%s: the page holds subject %s, for which no grant was given", r.name, p)
		}
	}
}

// refused asserts that the page read refuses grants, returning nothing.
func (r pageRead[T]) refused(t *testing.T, what string, grants []policy.Grant) {
	t.Helper()
	got, err := r.page(context.Background(), grants)
	wantNoGrant(t, r.name+" "+what, err)
	if got != nil {
		t.Errorf("%s %s: refused, yet returned %+v", r.name, what, got)
	}
}

// Invariant 2 and invariant 7: the page reads (EventsFor, ProfilesFor,
// LabelsFor, DeterminationsFor, ProtectedFor) that batch derivation and
// monitor runs use refuse the whole page when any grant is zero or for an
// action that may not read, and otherwise return per subject exactly what
// the per-subject method returns, in its order.
func testPageReads(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	subjects := []string{"a", "b", "c", "d"} // d has nothing stored
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		var subs []portrait.SubjectKey
		for _, p := range subjects {
			subs = append(subs, subject(p))
		}
		return tx.EnsureSubjects(ctx, subs)
	})
	// Out of time order, with a tie on time, so that order is tested.
	insert(t, s, event(t, "b", "", 30), event(t, "a", "k1", 20), event(t, "c", "", 5), event(t, "a", "", 0),
		event(t, "b", "", 10), event(t, "a", "k2", 20), event(t, "a", "", 10))
	for _, p := range []string{"b", "a", "c"} {
		update(t, s, func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProfile(ctx, Grant(t, portrait.Pseudonym(p), policy.Collect), []portrait.ProfileValue{
				{Field: "city", Sealed: []byte("city of " + p), Source: "event", Updated: at(1), Expires: at(100)},
				{Field: "age", Sealed: []byte("age of " + p), Source: "import", Updated: at(2)},
			})
		})
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		var lvs []portrait.LabelValue
		for _, p := range []string{"c", "a"} {
			for i, l := range []string{"saver", "fan"} {
				lvs = append(lvs, portrait.LabelValue{Grant: Grant(t, portrait.Pseudonym(p), policy.Derive), Pseudonym: portrait.Pseudonym(p), Label: l, Version: i + 1,
					Sealed: []byte(p + "/" + l), Computed: at(i), Expires: at(60 + i)})
			}
		}
		return tx.PutLabels(ctx, lvs)
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		for i, p := range []string{"a", "b", "a", "c"} {
			err := tx.PutDetermination(ctx, portrait.StoredDetermination{Grant: Grant(t, portrait.Pseudonym(p), policy.Use), ID: fmt.Sprintf("d%d", 9-i), Pseudonym: portrait.Pseudonym(p),
				UseCase: "credit", Model: "risk", ModelVersion: 1, Outcome: i%2 == 0, Score: float64(i) / 4, InputHash: "h",
				Sealed: []byte("why " + p), Status: "automated", Created: at(10 - i), LogIndex: int64(i)})
			if err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		for _, p := range []string{"b", "a"} {
			err := tx.PutProtected(ctx, Grant(t, portrait.Pseudonym(p), policy.Collect), []portrait.ProtectedValue{
				{Pseudonym: portrait.Pseudonym(p), Attribute: "sex", Sealed: []byte("sex of " + p)}, {Pseudonym: portrait.Pseudonym(p), Attribute: "age_band", Sealed: []byte("band of " + p)}})
			if err != nil {
				return err
			}
		}
		return nil
	})

	events := pageRead[portrait.StoredEvent]{"EventsFor",
		func(ctx context.Context, gs []policy.Grant) (map[portrait.Pseudonym][]portrait.StoredEvent, error) {
			return s.EventsFor(ctx, gs, time.Time{})
		},
		func(ctx context.Context, g policy.Grant) ([]portrait.StoredEvent, error) {
			return s.Events(ctx, g, time.Time{})
		}}
	eventsSince := pageRead[portrait.StoredEvent]{"EventsFor since minute 10",
		func(ctx context.Context, gs []policy.Grant) (map[portrait.Pseudonym][]portrait.StoredEvent, error) {
			return s.EventsFor(ctx, gs, at(10))
		},
		func(ctx context.Context, g policy.Grant) ([]portrait.StoredEvent, error) {
			return s.Events(ctx, g, at(10))
		}}
	profiles := pageRead[portrait.ProfileValue]{"ProfilesFor", s.ProfilesFor, s.Profile}
	labels := pageRead[portrait.LabelValue]{"LabelsFor", s.LabelsFor, s.Labels}
	decisions := pageRead[portrait.StoredDetermination]{"DeterminationsFor", s.DeterminationsFor, s.Determinations}
	protected := pageRead[portrait.ProtectedValue]{"ProtectedFor", s.ProtectedFor, s.Protected}

	// Every action the per-subject reads accept, mixed within one page.
	actions := []policy.Action{policy.Read, policy.Derive, policy.Use, policy.Access, policy.Sweep, policy.Correct}
	var grants []policy.Grant
	for i, p := range subjects {
		grants = append(grants, Grant(t, portrait.Pseudonym(p), actions[i%len(actions)]))
	}
	grants = append(grants, Grant(t, "a", policy.Access)) // a subject twice is read once
	events.check(t, grants)
	eventsSince.check(t, grants)
	profiles.check(t, grants)
	labels.check(t, grants)
	decisions.check(t, grants)
	protected.check(t, grants)

	// The order within a subject is the per-subject method's; spell it
	// out once so that an engine and its per-subject method cannot agree
	// on a wrong one.
	got, err := s.EventsFor(ctx, grants, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if ts := got["a"]; len(ts) != 4 || !sort.SliceIsSorted(ts, func(i, j int) bool {
		return ts[i].Time.Before(ts[j].Time) || ts[i].Time.Equal(ts[j].Time) && ts[i].ID < ts[j].ID
	}) || ts[2].ID > ts[3].ID {
		t.Errorf("events of a = %+v, want four by time, then id", ts)
	}
	if len(got["d"]) != 0 || len(got) != 3 {
		t.Errorf("EventsFor holds %d subjects, want a, b, c", len(got))
	}

	// A grant for some fields reads only those; two grants of one subject
	// read what either covers.
	narrow := []policy.Grant{Grant(t, "a", policy.Read, "age"), Grant(t, "b", policy.Read, "age"), Grant(t, "b", policy.Derive, "city")}
	ps, err := s.ProfilesFor(ctx, narrow)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps["a"]) != 1 || ps["a"][0].Field != "age" || len(ps["b"]) != 2 {
		t.Errorf("profiles under narrow grants = %+v, want age of a, age and city of b", ps)
	}

	// No grants, no subjects: an empty page.
	if got, err := s.EventsFor(ctx, nil, time.Time{}); err != nil || len(got) != 0 {
		t.Errorf("EventsFor of no grants = %+v, %v; want empty", got, err)
	}

	// One bad grant refuses the whole page.
	ok := Grant(t, "a", policy.Access)
	bad := []struct {
		what   string
		grants []policy.Grant
	}{
		{"zero grant", []policy.Grant{ok, {}}},
		{"collect grant", []policy.Grant{Grant(t, "b", policy.Collect), ok}},
		{"erase grant", []policy.Grant{ok, Grant(t, "b", policy.Erase)}},
	}
	for _, b := range bad {
		events.refused(t, b.what, b.grants)
		profiles.refused(t, b.what, b.grants)
		labels.refused(t, b.what, b.grants)
		decisions.refused(t, b.what, b.grants)
		protected.refused(t, b.what, b.grants)
	}
	if _, err := s.LabelsFor(ctx, []policy.Grant{{}}); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
		t.Errorf("LabelsFor of a zero grant: %v, want code %q", err, portrait.EFORBIDDEN)
	}

	// SR-3: after erasure a page read finds nothing of the subject.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a", policy.Erase)) })
	erased := []policy.Grant{Grant(t, "a", policy.Access), Grant(t, "b", policy.Access)}
	events.check(t, erased)
	profiles.check(t, erased)
	labels.check(t, erased)
	decisions.check(t, erased)
	protected.check(t, erased)
	if got, _ := s.DeterminationsFor(ctx, erased); len(got["a"]) != 0 || len(got["b"]) != 1 {
		t.Errorf("decisions after erasing a = %+v, want only b's", got)
	}
}
