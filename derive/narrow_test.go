package derive

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/label"
)

// A batch page's events share decoded field maps (fieldCache) and their
// narrowed maps (narrowCache), one run's cache serving every label and
// grant: each label still sees exactly the fields its grant covers, as
// subject.view gives them, and events with the same fields share
// one map.
func TestBatchViewNarrowsShared(t *testing.T) {
	e, c := demoEngine(t)
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
	checkBatchViews(t, e, c, s, at)
	if len(nc.m) == 0 {
		t.Error("no label's view was narrowed through the run's cache")
	}
}
