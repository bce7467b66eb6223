package label

import (
	"cmp"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// EvalIndex gives Eval's value, facts and provenance, to the bit, for
// every aggregate, over a long random history kept as derivation keeps
// it: events arriving out of order, some read again with new values (a
// rewrite), the clock moving so that windows cross events, events in
// the future, fields absent or not covered by the grant. The index is
// both made afresh (NewIndex) and carried from one step to the next
// (With), and each is compared with Eval over the narrowed events.
func TestEvalIndexMatchesEval(t *testing.T) {
	c := testCatalog(t)
	rules := []struct {
		name, rule string
		inputs     []string
	}{
		{"count", `count("view", "30d") >= 3`, nil},
		{"count-string", `count("view", "30d", "category", "sports") >= 2`, []string{"category"}},
		{"count-double", `count("purchase", "90d", "amount", 10.0) >= 1`, []string{"amount"}},
		{"count-int", `count("purchase", "7d", "amount", 20) >= 1`, []string{"amount"}},
		{"frequency", `frequency("purchase", "14d") > 2`, nil},
		{"sum", `sum("purchase", "amount", "90d") >= 300.0`, []string{"amount"}},
		{"monetary", `monetary("purchase", "amount", "1y") >= 1000.0`, []string{"amount"}},
		{"mean", `mean("purchase", "amount", "30d") > 25.5`, []string{"amount"}},
		{"min-max", `min("purchase", "amount", "60d") < 5.0 || max("purchase", "amount", "60d") > 49.0`, []string{"amount"}},
		{"distinct", `distinct("view", "item", "30d") >= 4`, []string{"item"}},
		{"recency", `recency("purchase") < 3.0`, nil},
		{"every", `count("view", "30d", "category", "sports") >= 5 && recency("purchase") < 30.0 && ` +
			`monetary("purchase", "amount", "1y") > 100.0 && mean("purchase", "amount", "90d") > 1.0 && ` +
			`max("purchase", "amount", "90d") > 1.0 && distinct("view", "item", "30d") > 1 && ` +
			`frequency("view", "7d") >= 0 && age >= 18.0`, []string{"age", "category", "amount", "item"}},
		{"runtime-window", `sum("purchase", "amount", age >= 30.0 ? "7d" : "45d") > 50.0`, []string{"age", "amount"}},
	}
	profile := map[string]any{"age": 30.0}
	for _, rl := range rules {
		for _, narrow := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/narrow=%v", rl.name, narrow), func(t *testing.T) {
				r, err := Compile(c, ruleLabel(rl.rule, rl.inputs...))
				if err != nil {
					t.Fatal(err)
				}
				if !r.Indexed() {
					t.Fatal("rule not Indexed: the test compares nothing")
				}
				covers := func(string) bool { return true }
				if narrow {
					covers = func(f string) bool { return f != "item" && f != "category" }
				}
				indexMatchesEval(t, r, profile, covers)
			})
		}
	}
}

func indexMatchesEval(t *testing.T, r *Rule, profile map[string]any, covers func(string) bool) {
	rng := mrand.New(mrand.NewPCG(14, uint64(len(r.label.Rule))))
	type held struct {
		id int64
		e  Event
	}
	var hist []held // in (time, id) order
	clock := now
	var kept *Index
	nextID := int64(1)
	cats := []string{"sports", "books", "garden"}
	event := func() Event {
		at := clock.Add(-time.Duration(rng.IntN(120*24)) * time.Hour)
		if rng.IntN(40) == 0 {
			at = clock.Add(time.Duration(1+rng.IntN(48)) * time.Hour) // in the future
		}
		if rng.IntN(3) == 0 {
			f := map[string]any{"item": fmt.Sprint("i", rng.IntN(9))}
			switch rng.IntN(6) {
			case 0: // no amount
			case 1:
				f["amount"] = 20.0
			default:
				f["amount"] = float64(1 + rng.IntN(50))
			}
			return Event{Type: "purchase", Time: at, Fields: f}
		}
		f := map[string]any{"item": fmt.Sprint("i", rng.IntN(9))}
		if rng.IntN(5) > 0 {
			f["category"] = cats[rng.IntN(len(cats))]
		}
		return Event{Type: "view", Time: at, Fields: f}
	}
	order := func(a, b held) int {
		return cmp.Or(a.e.Time.Compare(b.e.Time), cmp.Compare(a.id, b.id))
	}
	for step := range 400 {
		var drop []int64
		var added []Event
		var addedIDs []int64
		switch r := rng.IntN(10); {
		case r < 6: // one or a few new events, in any order
			for range 1 + rng.IntN(3) {
				h := held{id: nextID, e: event()}
				nextID++
				hist = append(hist, h)
				added, addedIDs = append(added, h.e), append(addedIDs, h.id)
			}
		case r < 7 && len(hist) > 0: // a held event rewritten under its id
			i := rng.IntN(len(hist))
			h := held{id: hist[i].id, e: event()}
			hist[i] = h
			drop = append(drop, h.id)
			added, addedIDs = append(added, h.e), append(addedIDs, h.id)
		case r < 8: // a new event of a type the rule does not read
			h := held{id: nextID, e: Event{Type: "search", Time: clock, Fields: map[string]any{"q": "x"}}}
			nextID++
			hist = append(hist, h)
			added, addedIDs = append(added, h.e), append(addedIDs, h.id)
		default: // the clock moves: windows cross events
			clock = clock.Add(time.Duration(rng.IntN(5*24)) * time.Hour)
		}
		slices.SortStableFunc(hist, order)
		events, ids := make([]Event, len(hist)), make([]int64, len(hist))
		for i, h := range hist {
			events[i], ids[i] = h.e, h.id
		}
		if kept == nil {
			kept = r.NewIndex(events, ids, covers)
		} else {
			kept = kept.With(drop, added, addedIDs, covers)
		}
		fresh := r.NewIndex(events, ids, covers)
		want, err := r.Eval(clock, profile, narrowAll(events, covers))
		if err != nil {
			t.Fatal(err)
		}
		for name, x := range map[string]*Index{"kept": kept, "fresh": fresh} {
			got, err := r.EvalIndex(clock, profile, x, len(events))
			if err != nil {
				t.Fatalf("step %d, %s: %v", step, name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d, %s index:\n got %+v\nwant %+v", step, name, got, want)
			}
		}
	}
}

func narrowAll(events []Event, covers func(string) bool) []Event {
	out := make([]Event, len(events))
	for i, e := range events {
		f := map[string]any{}
		for k, v := range e.Fields {
			if covers(k) {
				f[k] = v
			}
		}
		out[i] = Event{Type: e.Type, Time: e.Time, Fields: f}
	}
	return out
}

// EvalIndex refuses what an index cannot answer, so the caller evaluates
// with Eval: a rule reading the events list or a type known only at run
// time, and a history longer than the rule's MaxEvents.
func TestEvalIndexRefuses(t *testing.T) {
	c := testCatalog(t)
	for _, tt := range []struct {
		name, rule string
		total      int
	}{
		{"events list", `events.exists(e, e.type == "view")`, 1},
		{"run-time type", `count(age > 1.0 ? "view" : "purchase", "30d") > 0`, 1},
		{"run-time field", `sum("purchase", age > 1.0 ? "amount" : "price", "30d") > 0.0`, 1},
		{"beyond MaxEvents", `count("view", "30d") > 0`, DefaultConfig.MaxEvents + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Compile(c, ruleLabel(tt.rule, "age", "amount"))
			if err != nil {
				t.Fatal(err)
			}
			x := r.NewIndex(subjectEvents(), make([]int64, len(subjectEvents())), func(string) bool { return true })
			if _, err := r.EvalIndex(now, map[string]any{"age": 30.0}, x, tt.total); err != ErrNoIndex {
				t.Errorf("EvalIndex: %v, want ErrNoIndex", err)
			}
		})
	}
}
