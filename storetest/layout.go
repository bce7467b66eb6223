package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// Clusterer is a store that appends events and clusters them by subject
// later (SQLite, migration 0040): Cluster moves every appended event now
// and says how many moved. The layout cases below run on every store;
// where the store is a Clusterer they put events on both sides of a move.
type Clusterer interface {
	Cluster(ctx context.Context) (int, error)
}

// cluster moves the store's appended events, if it appends, and reports
// how many moved (0 on a store that does not).
func cluster(t *testing.T, s portrait.Store) int {
	t.Helper()
	c, ok := s.(Clusterer)
	if !ok {
		return 0
	}
	n, err := c.Cluster(context.Background())
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	return n
}

// Hexadecimal pseudonyms, as keys.Pseudonym makes them (SQLite stores
// them in its event tables as bytes), beside a short one stored as text.
const (
	hexA = "0123456789abcdef0123456789abcdef"
	hexB = "fedcba9876543210fedcba9876543210"
)

// Events stay visible, once each and in time order, before and after
// they move to the clustered table, and a subject's events may be split
// across the two.
func testEventsAcrossMove(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	var want = map[portrait.Pseudonym][]portrait.StoredEvent{}
	add := func(evs ...portrait.StoredEvent) {
		t.Helper()
		insert(t, s, evs...)
		for _, e := range evs {
			want[e.Pseudonym] = append(want[e.Pseudonym], e)
		}
	}
	check := func(when string) {
		t.Helper()
		for _, p := range []portrait.Pseudonym{hexA, hexB, "c"} {
			got := events(t, s, string(p))
			if len(got) != len(want[p]) {
				t.Fatalf("%s: subject %s has %d events, want %d", when, p, len(got), len(want[p]))
			}
			for i := range got {
				// want is in time order: every batch below is later than the last.
				if !sameEvent(got[i], want[p][i]) {
					t.Errorf("%s: subject %s event %d = %+v, want %+v", when, p, i, got[i], want[p][i])
				}
			}
		}
		var grants []policy.Grant
		for _, p := range []portrait.Pseudonym{hexA, hexB, "c", "nobody"} {
			grants = append(grants, Grant(t, p, policy.Derive))
		}
		all, err := s.EventsFor(ctx, grants, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []portrait.Pseudonym{hexA, hexB, "c"} {
			if len(all[p]) != len(want[p]) {
				t.Errorf("%s: EventsFor gave subject %s %d events, want %d", when, p, len(all[p]), len(want[p]))
			}
			for i := 1; i < len(all[p]); i++ {
				if all[p][i].Time.Before(all[p][i-1].Time) {
					t.Errorf("%s: EventsFor of %s out of time order at %d", when, p, i)
				}
			}
		}
		if len(all["nobody"]) != 0 {
			t.Errorf("%s: EventsFor gave a subject without events %d", when, len(all["nobody"]))
		}
		since, err := s.Events(ctx, Grant(t, hexA, policy.Read), at(20))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range want[hexA] {
			if !e.Time.Before(at(20)) {
				n++
			}
		}
		if len(since) != n {
			t.Errorf("%s: %d events of %s since minute 20, want %d", when, len(since), hexA, n)
		}
	}
	add(event(t, hexA, "", 0), event(t, hexB, "k1", 1), event(t, "c", "", 2), event(t, hexA, "k1", 3))
	check("appended")
	moved := cluster(t, s)
	if _, ok := s.(Clusterer); ok && moved != 4 {
		t.Errorf("cluster moved %d events, want 4", moved)
	}
	check("moved")
	add(event(t, hexA, "", 20), event(t, hexB, "", 21), event(t, hexA, "k2", 22))
	check("split across the move")
	cluster(t, s)
	check("all moved")
	if n := cluster(t, s); n != 0 {
		t.Errorf("a second cluster moved %d events, want 0", n)
	}
}

// Invariant 4, SR-3: erasure removes a subject's events whether they have
// moved or not, in the transaction that removes the key; a later move
// brings nothing back.
func testEraseAcrossMove(t *testing.T, s portrait.Store) {
	for _, p := range []string{hexA, hexB} {
		update(t, s, func(ctx context.Context, tx portrait.Tx) error {
			if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject(p)}); err != nil {
				return err
			}
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, p, "k", 0), event(t, p, "", 1)})
			return err
		})
	}
	cluster(t, s)
	insert(t, s, event(t, hexA, "k2", 2), event(t, hexA, "", 3), event(t, hexB, "", 4)) // not moved
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, hexA, policy.Erase)) })
	if evs := events(t, s, hexA); len(evs) != 0 {
		t.Errorf("erased subject still has %d events (moved or appended)", len(evs))
	}
	cluster(t, s)
	if evs := events(t, s, hexA); len(evs) != 0 {
		t.Errorf("after a move the erased subject has %d events", len(evs))
	}
	if n := len(events(t, s, hexB)); n != 3 {
		t.Errorf("erasing %s left the other subject %d events, want 3", hexA, n)
	}
	// Keys on both sides of the move are gone with the events.
	if got := insert(t, s, event(t, hexA, "k", 5), event(t, hexA, "k2", 6)); !reflect.DeepEqual(got, []bool{true, true}) {
		t.Errorf("after erasure, events with the erased keys inserted %v, want both new", got)
	}
}

// Idempotency holds across the move: a key is a duplicate whether its
// first event has moved or not, and whether the replay arrives before or
// after the move.
func testIdempotentAcrossMove(t *testing.T, s portrait.Store) {
	first := insert(t, s, event(t, hexA, "k1", 0), event(t, "c", "k1", 1))
	if !reflect.DeepEqual(first, []bool{true, true}) {
		t.Fatalf("first batch inserted %v", first)
	}
	cluster(t, s)
	steps := []struct {
		name string
		in   []portrait.StoredEvent
		want []bool
	}{
		{"replay of moved keys", []portrait.StoredEvent{event(t, hexA, "k1", 2), event(t, "c", "k1", 3), event(t, hexA, "k2", 4)}, []bool{false, false, true}},
		{"replay of an appended key", []portrait.StoredEvent{event(t, hexA, "k2", 5), event(t, hexB, "k2", 6)}, []bool{false, true}},
	}
	for _, st := range steps {
		if got := insert(t, s, st.in...); !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: inserted %v, want %v", st.name, got, st.want)
		}
	}
	cluster(t, s)
	if got := insert(t, s, event(t, hexA, "k1", 7), event(t, hexA, "k2", 8), event(t, hexB, "k2", 9), event(t, hexB, "k3", 10)); !reflect.DeepEqual(got, []bool{false, false, false, true}) {
		t.Errorf("replay after everything moved: inserted %v, want only k3 of %s", got, hexB)
	}
	for p, n := range map[string]int{hexA: 2, hexB: 2, "c": 1} {
		if got := len(events(t, s, p)); got != n {
			t.Errorf("subject %s has %d events, want %d", p, got, n)
		}
	}
}

// CM-3: the retention sweep finds expired events on both sides of the
// move, in order of expiry, and rewrites or deletes either.
func testRetentionAcrossMove(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	mk := func(p string, minute, expires int) portrait.StoredEvent {
		e := event(t, p, "", minute)
		e.Expires = at(expires)
		return e
	}
	insert(t, s, mk(hexA, 0, 60), mk(hexA, 1, 80), mk(hexB, 2, 500))
	cluster(t, s)
	insert(t, s, mk(hexA, 3, 70), mk(hexB, 4, 90), mk(hexB, 5, 600))
	got, err := s.ExpiredEvents(ctx, at(100), 10)
	if err != nil {
		t.Fatal(err)
	}
	var exp []time.Time
	for _, e := range got {
		exp = append(exp, e.Expires)
	}
	if want := []time.Time{at(60), at(70), at(80), at(90)}; !reflect.DeepEqual(exp, want) {
		t.Fatalf("expired by minute 100: expiries %v, want %v", exp, want)
	}
	if lim, err := s.ExpiredEvents(ctx, at(100), 2); err != nil || len(lim) != 2 || !lim[1].Expires.Equal(at(70)) {
		t.Errorf("limit 2 across both tables = %+v, %v; want expiries 60, 70", lim, err)
	}
	// Trim the moved and the appended event of a; delete b's appended one.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		for _, e := range got {
			g := Grant(t, e.Pseudonym, policy.Sweep)
			var err error
			if e.Pseudonym == hexA {
				err = tx.RewriteEvent(ctx, g, e.ID, []byte("trimmed"), at(1000))
			} else {
				err = tx.RewriteEvent(ctx, g, e.ID, nil, time.Time{})
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if left, err := s.ExpiredEvents(ctx, at(100), 10); err != nil || len(left) != 0 {
		t.Errorf("after the sweep %d events are still expired (%v)", len(left), err)
	}
	cluster(t, s)
	a := events(t, s, hexA)
	if len(a) != 3 {
		t.Fatalf("subject %s has %d events after the sweep, want 3", hexA, len(a))
	}
	for _, e := range a {
		if string(e.Sealed) != "trimmed" || !e.Expires.Equal(at(1000)) {
			t.Errorf("event %d of %s = %q expiring %v, want trimmed, minute 1000", e.ID, hexA, e.Sealed, e.Expires)
		}
	}
	if b := events(t, s, hexB); len(b) != 2 {
		t.Errorf("subject %s has %d events after the sweep, want 2", hexB, len(b))
	}
}

// Events written in many transactions, each a run of its own on a store
// that writes sorted runs (SQLite, migration 0060), are read by every
// reader, once each, before and after they are clustered: a subject's
// events in several runs, a batch whose subjects arrive out of key order
// (text and hexadecimal pseudonyms mixed), EventsAfter from a mark inside
// the runs, a key refused in a later run, an expiry rewritten earlier than
// any other of its run still found by the sweep, and erasure across runs.
func testEventsAcrossRuns(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	subjects := []string{hexB, "c", hexA, "b"}
	var all []portrait.StoredEvent
	for batch := range 5 {
		var evs []portrait.StoredEvent
		for i, p := range subjects {
			idem := ""
			if i%2 == 0 {
				idem = fmt.Sprintf("k%d", batch)
			}
			e := event(t, p, idem, 10*batch+i)
			e.Expires = at(1000 + 10*batch + i)
			evs = append(evs, e)
		}
		// A replay of the first batch's key in every later batch.
		if batch > 0 {
			evs = append(evs, event(t, hexB, "k0", 10*batch+9))
		}
		got := insert(t, s, evs...)
		for i, ok := range got {
			if i < len(subjects) && !ok {
				t.Fatalf("batch %d: event %d of %s refused", batch, i, subjects[i])
			}
			if i == len(subjects) && ok {
				t.Errorf("batch %d: a replay of key k0 of %s in a later run was stored", batch, hexB)
			}
		}
		all = append(all, evs[:len(subjects)]...)
	}
	seen := map[string][]int64{}
	check := func(when string) {
		t.Helper()
		for _, p := range subjects {
			got := events(t, s, p)
			if len(got) != 5 {
				t.Fatalf("%s: subject %s has %d events, want 5", when, p, len(got))
			}
			var these []int64
			for i, e := range got {
				if e.Pseudonym != portrait.Pseudonym(p) || !e.Time.Equal(at(10*i+slices.Index(subjects, p))) {
					t.Errorf("%s: subject %s event %d = %s at %v", when, p, i, e.Pseudonym, e.Time)
				}
				these = append(these, e.ID)
			}
			if old := seen[p]; old != nil && !slices.Equal(old, these) {
				t.Errorf("%s: ids of %s changed from %v to %v", when, p, old, these)
			}
			seen[p] = these
		}
		var grants []policy.Grant
		for _, p := range subjects {
			grants = append(grants, Grant(t, portrait.Pseudonym(p), policy.Derive))
		}
		fr, err := s.EventsFor(ctx, grants, at(20))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range subjects {
			if len(fr[portrait.Pseudonym(p)]) != 3 {
				t.Errorf("%s: EventsFor since minute 20 gave %s %d events, want 3", when, p, len(fr[portrait.Pseudonym(p)]))
			}
		}
		// From a mark at each subject's third event: the last two.
		marks := map[portrait.Pseudonym]portrait.EventMark{}
		for _, p := range subjects {
			marks[portrait.Pseudonym(p)] = portrait.EventMark{ID: seen[p][2]}
		}
		after, _, err := s.EventsAfter(ctx, grants, marks)
		if err != nil {
			t.Fatal(err)
		}
		one, _, err := s.EventsAfter(ctx, grants[2:3], marks)
		if err != nil {
			t.Fatal(err)
		}
		// Every event after the mark comes; one read before may come
		// again (portrait.Store.EventsAfter), nothing older than the mark.
		newer := func(got []portrait.StoredEvent, p string) bool {
			held := map[int64]bool{seen[p][2]: true}
			for _, e := range got {
				if e.ID < seen[p][2] {
					return false
				}
			}
			return slices.Equal(ids(unseen(held, got)), seen[p][3:])
		}
		for _, p := range subjects {
			if got := after[portrait.Pseudonym(p)]; !newer(got, p) {
				t.Errorf("%s: EventsAfter %s from its third event = %v, want ids %v", when, p, ids(got), seen[p][3:])
			}
		}
		if got := one[hexA]; !newer(got, hexA) {
			t.Errorf("%s: EventsAfter of %s alone = %v, want ids %v", when, hexA, ids(got), seen[hexA][3:])
		}
	}
	check("in runs")
	// Rewrite c's last event, in the newest run, to expire before every
	// other event: the sweep must find it there.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.RewriteEvent(ctx, Grant(t, "c", policy.Sweep), seen["c"][4], []byte("trimmed"), at(500))
	})
	exp, err := s.ExpiredEvents(ctx, at(600), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp) != 1 || exp[0].ID != seen["c"][4] || string(exp[0].Sealed) != "trimmed" {
		t.Fatalf("expired by minute 600 = %+v, want c's rewritten event %d", exp, seen["c"][4])
	}
	if exp, err := s.ExpiredEvents(ctx, at(1021), 100); err != nil || len(exp) != 11 {
		t.Errorf("expired by minute 1021: %d events (%v), want 11", len(exp), err)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.RewriteEvent(ctx, Grant(t, "c", policy.Sweep), seen["c"][4], []byte("sealed c 41"), at(1041))
	})
	cluster(t, s)
	check("clustered")
	// Erasure across runs, some clustered and some not.
	insert(t, s, event(t, hexA, "", 60), event(t, "b", "", 61))
	insert(t, s, event(t, hexA, "k9", 62))
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, hexA, policy.Erase)) })
	if n := len(events(t, s, hexA)); n != 0 {
		t.Errorf("erased subject still has %d events", n)
	}
	if n := len(events(t, s, "b")); n != 6 {
		t.Errorf("erasing %s left b %d events, want 6", hexA, n)
	}
	cluster(t, s)
	if n := len(events(t, s, hexA)); n != 0 {
		t.Errorf("after clustering the erased subject has %d events", n)
	}
}

// CM-3: once events are clustered (on SQLite the clustered table has no
// index on expiry, migration 0070: each subject's earliest expiry is kept
// instead), the sweep still finds the earliest expired events across
// subjects under a limit; a clustered event rewritten to expire earlier
// than its subject's others is found at once; a subject whose earliest
// event was deleted or rewritten to a later expiry is found by its next
// one and no sooner; an erased subject's events are no longer listed.
func testRetentionClustered(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	mk := func(p string, minute, expires int) portrait.StoredEvent {
		e := event(t, p, "", minute)
		e.Expires = at(expires)
		return e
	}
	never := event(t, "c", "", 9)
	never.Expires = time.Time{}
	insert(t, s, mk(hexA, 0, 300), mk(hexA, 1, 100), mk(hexB, 2, 200), mk(hexB, 3, 400), mk("c", 4, 150), never)
	cluster(t, s)
	expiries := func(now, limit int) []int {
		t.Helper()
		got, err := s.ExpiredEvents(ctx, at(now), limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, e := range got {
			out = append(out, int(e.Expires.Sub(at(0))/time.Minute))
		}
		return out
	}
	idOf := func(p string, expires int) int64 {
		t.Helper()
		for _, e := range events(t, s, p) {
			if e.Expires.Equal(at(expires)) {
				return e.ID
			}
		}
		t.Fatalf("no event of %s expiring at minute %d", p, expires)
		return 0
	}
	rewrite := func(p string, id int64, sealed []byte, expires time.Time) {
		t.Helper()
		update(t, s, func(ctx context.Context, tx portrait.Tx) error {
			return tx.RewriteEvent(ctx, Grant(t, portrait.Pseudonym(p), policy.Sweep), id, sealed, expires)
		})
	}
	steps := []struct {
		name  string
		do    func()
		now   int
		limit int
		want  []int
	}{
		{"clustered, all", func() {}, 1000, 10, []int{100, 150, 200, 300, 400}},
		{"clustered, limit 2", func() {}, 1000, 2, []int{100, 150}},
		{"clustered, by minute 160", func() {}, 160, 10, []int{100, 150}},
		{"b's latest rewritten to expire first", func() { rewrite(hexB, idOf(hexB, 400), []byte("t"), at(50)) }, 160, 10, []int{50, 100, 150}},
		{"a's earliest deleted", func() { rewrite(hexA, idOf(hexA, 100), nil, time.Time{}) }, 160, 10, []int{50, 150}},
		{"c's earliest rewritten later", func() { rewrite("c", idOf("c", 150), []byte("t"), at(250)) }, 160, 10, []int{50}},
		{"after both", func() {}, 1000, 3, []int{50, 200, 250}},
		{"b erased", func() {
			update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, hexB, policy.Erase)) })
		}, 1000, 10, []int{250, 300}},
	}
	for _, st := range steps {
		st.do()
		if got := expiries(st.now, st.limit); !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: expired by minute %d, limit %d: expiries %v, want %v", st.name, st.now, st.limit, got, st.want)
		}
	}
}
