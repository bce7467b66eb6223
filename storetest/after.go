package storetest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// marks returns, for each subject read, the mark a reader holding its
// events up to got keeps: the newest id and the read's horizon.
func marks(prev map[portrait.Pseudonym]portrait.EventMark, got map[portrait.Pseudonym][]portrait.StoredEvent, horizon int64) map[portrait.Pseudonym]portrait.EventMark {
	out := map[portrait.Pseudonym]portrait.EventMark{}
	for ps, m := range prev {
		out[ps] = portrait.EventMark{ID: m.ID, Horizon: horizon}
	}
	for ps, evs := range got {
		m := out[ps]
		for _, e := range evs {
			m.ID = max(m.ID, e.ID)
		}
		m.Horizon = horizon
		out[ps] = m
	}
	return out
}

// unseen returns the events of got not in held, and adds them to it: an
// event read before may come again (portrait.Store.EventsAfter), and
// what counts is that every new one comes, in time order.
func unseen(held map[int64]bool, got []portrait.StoredEvent) []portrait.StoredEvent {
	var out []portrait.StoredEvent
	for _, e := range got {
		if !held[e.ID] {
			out = append(out, e)
			held[e.ID] = true
		}
	}
	return out
}

func ids(evs []portrait.StoredEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// Invariant 2 and invariant 5: EventsAfter, the read incremental
// derivation keeps its events in memory with, returns a subject's events
// as EventsFor does when it holds nothing, then every event committed
// since its mark, whichever table holds it, including one whose
// transaction took its id before a newer id committed (PostgreSQL's
// sequence); a subject not read does not come back.
func testEventsAfter(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject(hexA), subject(hexB), subject("c")})
	})
	insert(t, s, event(t, hexA, "", 30), event(t, hexB, "", 10), event(t, hexA, "", 10))
	cluster(t, s)
	insert(t, s, event(t, hexA, "", 20), event(t, "c", "", 5))
	grants := []policy.Grant{Grant(t, hexA, policy.Derive), Grant(t, hexB, policy.Derive), Grant(t, "c", policy.Derive)}
	all, horizon, err := s.EventsAfter(ctx, grants, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.EventsFor(ctx, grants, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for ps, evs := range want {
		if got := all[ps]; !slices.EqualFunc(got, evs, sameEvent) {
			t.Errorf("EventsAfter of %s from nothing = %v, EventsFor %v", ps, ids(got), ids(evs))
		}
	}
	mk := marks(nil, all, horizon)
	held := map[portrait.Pseudonym]map[int64]bool{hexA: {}, hexB: {}, "c": {}}
	for ps, evs := range all {
		unseen(held[ps], evs)
	}

	// Nothing new: nothing back, before and after the appended events move.
	for _, when := range []string{"before the move", "after the move"} {
		got, h, err := s.EventsAfter(ctx, grants, mk)
		if err != nil {
			t.Fatal(err)
		}
		for ps, evs := range got {
			if evs = unseen(held[ps], evs); len(evs) > 0 {
				t.Errorf("%s: nothing new, yet %s has %v", when, ps, ids(evs))
			}
		}
		mk = marks(mk, got, h)
		cluster(t, s)
	}

	// New events, one older in time than what is held: only they come,
	// in time order; the subject without a mark gets everything.
	insert(t, s, event(t, hexA, "", 1), event(t, hexA, "", 40), event(t, hexB, "", 50))
	withoutC := map[portrait.Pseudonym]portrait.EventMark{hexA: mk[hexA], hexB: mk[hexB]}
	got, h, err := s.EventsAfter(ctx, grants, withoutC)
	if err != nil {
		t.Fatal(err)
	}
	for ps, evs := range got {
		if !slices.IsSortedFunc(evs, func(a, b portrait.StoredEvent) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) }) {
			t.Errorf("events of %s out of time order: %+v", ps, evs)
		}
	}
	if evs := unseen(held[hexA], got[hexA]); len(evs) != 2 || !evs[0].Time.Equal(at(1)) || !evs[1].Time.Equal(at(40)) {
		t.Errorf("new events of a = %+v, want minutes 1 and 40", evs)
	}
	if evs := unseen(held[hexB], got[hexB]); len(evs) != 1 || !evs[0].Time.Equal(at(50)) {
		t.Errorf("new events of b = %+v, want minute 50", evs)
	}
	if len(got["c"]) != 1 {
		t.Errorf("c without a mark: %v, want its one event", ids(got["c"]))
	}
	mk = marks(mk, got, h)

	// A mark of a subject without a grant reads nothing of it.
	got, _, err = s.EventsAfter(ctx, grants[:1], map[portrait.Pseudonym]portrait.EventMark{hexB: {}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[hexB]) != 0 {
		t.Errorf("subject b read without a grant: %v", ids(got[hexB]))
	}

	// Out of commit order: a transaction takes an id and waits while a
	// later one commits and is read (subject a alone, so that no other
	// subject's older mark brings the event back by itself). Where writers serialise (SQLite) the
	// second cannot commit first, and this part says so and stops.
	inserted, release := make(chan int64), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // a failed check must not leave the first writer holding its transaction
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			if _, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, hexA, "", 60)}); err != nil {
				return err
			}
			inserted <- 0
			<-release
			return nil
		})
	}()
	<-inserted
	second := make(chan error, 1)
	go func() {
		second <- s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, hexA, "", 70)})
			return err
		})
	}()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(500 * time.Millisecond):
		free()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		t.Log("writers serialise: ids are committed in order")
		return
	}
	got, h, err = s.EventsAfter(ctx, grants[:1], mk)
	if err != nil {
		t.Fatal(err)
	}
	evs := unseen(held[hexA], got[hexA])
	if len(evs) != 1 || !evs[0].Time.Equal(at(70)) {
		t.Fatalf("while the first writer runs: %+v new, want minute 70 only", evs)
	}
	late := evs[0].ID
	mk = marks(mk, got, h)
	free()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	got, _, err = s.EventsAfter(ctx, grants[:1], mk)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range unseen(held[hexA], got[hexA]) {
		if e.Time.Equal(at(60)) {
			found = true
			if e.ID >= late {
				t.Errorf("the first writer's id %d is not below the one read before it, %d: the case tests nothing", e.ID, late)
			}
		}
	}
	if !found {
		t.Errorf("the event committed after a newer id was read is missed: %v", ids(got[hexA]))
	}
}
