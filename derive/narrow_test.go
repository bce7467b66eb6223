package derive

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// A batch page's events share decoded field maps (fieldCache) and their
// narrowed maps (narrowCache), one run's cache serving every label and
// grant: each label still sees exactly the fields its grant covers, as
// subject.view gives them, and events with the same fields share
// one map.
func TestBatchViewNarrowsShared(t *testing.T) {
	yaml, err := os.ReadFile("../examples/demo/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Parse("examples/demo/catalog.yaml", yaml, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{point: policy.New(cat), caller: policy.Caller{Role: policy.System, ID: "derive"}}
	c := compileCatalog(cat)
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var fc fieldCache
	nc := &narrowCache{}
	s := &subject{ps: "p", profile: map[string]any{"age": 40.0, "city": "杭州"}, narrowed: nc}
	for i, f := range []map[string]any{
		{"item": "i-sports", "category": "sports", "price": 10.0, "device": "d"},
		{"item": "x", "amount": 41.0, "quantity": 1.0, "price": 41.0, "category": "sports"},
		{"item": "y", "amount": math.Copysign(0, -1), "quantity": 2.0},
		{"item": "z", "amount": 0.0},
		{},
		{"item": "i-sports", "category": "sports", "price": 10.0, "device": "d"}, // the first again
	} {
		plain, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		d, which, err := fc.decode(plain)
		if err != nil {
			t.Fatal(err)
		}
		s.events = append(s.events, label.Event{Type: []string{"view", "purchase", "search"}[i%3], Time: at.Add(time.Duration(i) * time.Hour), Fields: d})
		s.which = append(s.which, which)
		s.ids = append(s.ids, int64(i))
	}
	if s.which[0] != s.which[5] || reflect.ValueOf(s.events[0].Fields).Pointer() != reflect.ValueOf(s.events[5].Fields).Pointer() {
		t.Error("two events with the same fields decoded into two maps")
	}
	for _, purposes := range [][]string{{"personalization"}, {"marketing"}, {"credit"}, {"personalization", "marketing", "credit"}} {
		st := &policy.State{Pseudonym: "p", Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
		for _, p := range purposes {
			st.Consents[p] = policy.Consent{Status: policy.Granted, At: at.Add(-time.Hour), NoticeVersion: "1"}
		}
		for _, en := range c.entries {
			g, _ := e.decide(st, en)
			if !g.Valid() {
				continue
			}
			wantProf, wantEvents := s.view(en, g)
			gotProf, gotEvents := s.batchView(en, g)
			if !reflect.DeepEqual(gotProf, wantProf) || !reflect.DeepEqual(gotEvents, wantEvents) {
				t.Errorf("%v, label %s:\nbatch %v %v\nview  %v %v", purposes, en.l.ID, gotProf, gotEvents, wantProf, wantEvents)
			}
			for i, ev := range gotEvents {
				for k := range ev.Fields {
					if !g.Covers(k) {
						t.Errorf("%v, label %s sees field %s", purposes, en.l.ID, k)
					}
				}
				if a, ok := ev.Fields["amount"].(float64); ok && math.Signbit(a) != math.Signbit(s.events[i].Fields["amount"].(float64)) {
					t.Errorf("%v, label %s: event %d amount %v, stored %v", purposes, en.l.ID, i, a, s.events[i].Fields["amount"])
				}
			}
		}
	}
	if len(nc.m) == 0 {
		t.Error("no label's view was narrowed through the run's cache")
	}
}
