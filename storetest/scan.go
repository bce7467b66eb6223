package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// ScanEvents reads what EventsFor reads — the same events of the same
// subjects, each once, in time and then id order — before and after the
// events move to the clustered table, with a subject's events split
// across runs and the move, into one page reused for every read; and a
// page with a refused grant reads nothing.
func testScanEvents(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	var page portrait.EventPage // reused by every read below
	check := func(when string, since time.Time) {
		t.Helper()
		// A subject twice (as a page's grants of several labels are), one
		// without events, a text pseudonym among hexadecimal ones.
		order := []portrait.Pseudonym{hexB, "c", "nobody", hexA, hexB}
		var grants []policy.Grant
		for _, p := range order {
			grants = append(grants, Grant(t, p, policy.Derive))
		}
		want, err := s.EventsFor(ctx, grants, since)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ScanEvents(ctx, grants, since, &page); err != nil {
			t.Fatalf("%s: ScanEvents: %v", when, err)
		}
		subs := page.Subjects()
		if len(subs) != 4 || subs[0] != hexB || subs[1] != "c" || subs[2] != "nobody" || subs[3] != hexA {
			t.Fatalf("%s: page subjects %v, want each once in grant order", when, subs)
		}
		n := 0
		for i, p := range subs {
			got, w := page.Of(i), want[p]
			n += len(got)
			if len(got) != len(w) {
				t.Errorf("%s: subject %s: %d events, EventsFor %d", when, p, len(got), len(w))
				continue
			}
			for k := range got {
				g := got[k]
				if g.Subject != int32(i) || g.ID != w[k].ID || g.Type != w[k].Type || g.Time != w[k].Time.UnixNano() || !bytes.Equal(g.Sealed, w[k].Sealed) {
					t.Errorf("%s: subject %s event %d = {%d %d %s %d %q}, EventsFor {%d %s %v %q}", when, p, k,
						g.Subject, g.ID, g.Type, g.Time, g.Sealed, w[k].ID, w[k].Type, w[k].Time, w[k].Sealed)
				}
			}
		}
		if n != page.Len() {
			t.Errorf("%s: page holds %d events, its subjects %d", when, page.Len(), n)
		}
	}
	both := func(when string) {
		t.Helper()
		check(when, time.Time{})
		check(when+", since minute 12", at(12))
	}
	// Arrival order is not time order; purchases beside views.
	add := func(minutes ...int) {
		t.Helper()
		var evs []portrait.StoredEvent
		for k, m := range minutes {
			for _, p := range []string{hexA, hexB, "c"} {
				e := event(t, p, "", m)
				if k%2 == 1 {
					e.Type = "purchase"
				}
				evs = append(evs, e)
			}
		}
		insert(t, s, evs...)
	}
	add(30, 5)
	add(12, 40)
	both("appended in two runs")
	cluster(t, s)
	both("moved")
	add(1, 50, 12)
	add(11)
	both("split across the move and runs")
	cluster(t, s)
	both("all moved")

	// A refused grant among good ones: nothing is read, and nothing of
	// the last read is handed back.
	var zero policy.Grant
	for name, bad := range map[string]policy.Grant{"zero": zero, "collect": Grant(t, hexA, policy.Collect)} {
		err := s.ScanEvents(ctx, []policy.Grant{Grant(t, hexB, policy.Derive), bad}, time.Time{}, &page)
		var pe *portrait.Error
		if !errors.As(err, &pe) || pe.Code != portrait.EFORBIDDEN {
			t.Errorf("%s grant: ScanEvents = %v, want a refusal", name, err)
		}
		if page.Len() != 0 || len(page.Subjects()) != 0 || page.Of(0) != nil {
			t.Errorf("%s grant: refused page holds %d events of %d subjects", name, page.Len(), len(page.Subjects()))
		}
	}
}
