package label

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

// benchEvents is a demo-shop subject: n events over the last 200 days,
// four views (category, item) to one purchase (item, amount), in the order
// derivation hands them over (ingest order, mostly oldest first, with
// every seventh event arriving late).
func benchEvents(n int) []Event {
	cats := []string{"sports", "books", "music", "home"}
	events := make([]Event, n)
	for i := range events {
		age := float64(n-i) * 200 / float64(n)
		if i%7 == 0 {
			age += 3 // late arrival: not time-ordered
		}
		if i%5 == 0 {
			events[i] = Event{Type: "purchase", Time: daysAgo(age), Fields: map[string]any{"item": fmt.Sprint("i", i%13), "amount": float64(10 + i%90)}}
		} else {
			events[i] = Event{Type: "view", Time: daysAgo(age), Fields: map[string]any{"item": fmt.Sprint("i", i%13), "category": cats[i%len(cats)]}}
		}
	}
	return events
}

// BenchmarkEval: one rule label evaluated for one subject, as derivation
// calls it (label.Rule.Eval), for the demo catalog's rule and score labels
// and for a rule using every aggregate, over 50 and 500 events.
func BenchmarkEval(b *testing.B) {
	demo, err := catalog.Load("../examples/demo/catalog.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c := testCatalog(b)
	rules := []struct {
		name string
		c    *catalog.Catalog
		l    *catalog.Label
	}{
		{"sports_fan", demo, demo.Label("sports_fan")},
		{"big_spender", demo, demo.Label("big_spender")},
		{"credit_score", demo, demo.Label("credit_score")},
		{"every", c, ruleLabel(`count("view", "30d", "category", "sports") >= 5 && recency("purchase") < 30.0 && `+
			`monetary("purchase", "amount", "1y") > 100.0 && mean("purchase", "amount", "90d") > 1.0 && `+
			`max("purchase", "amount", "90d") > 1.0 && distinct("view", "item", "30d") > 1 && `+
			`frequency("view", "7d") >= 0 && age >= 18.0`, "age")},
	}
	profile := map[string]any{"age": 30.0, "income": 12000.0, "city": "Shanghai"}
	for _, n := range []int{50, 500} {
		events := benchEvents(n)
		for _, rl := range rules {
			if rl.l == nil {
				b.Fatalf("%s: no such label in the demo catalog", rl.name)
			}
			r, err := Compile(rl.c, rl.l)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/events=%d", rl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					if _, err := r.Eval(now, profile, events); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
			if !r.Indexed() {
				continue
			}
			// The same evaluation from an index (EvalIndex), and what a
			// derivation pays to fold one more event into it (With).
			sorted, ids := inOrder(events)
			x := r.NewIndex(sorted, ids, func(string) bool { return true })
			b.Run(fmt.Sprintf("%s/index/events=%d", rl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					if _, err := r.EvalIndex(now, profile, x, len(events)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
			b.Run(fmt.Sprintf("%s/fold/events=%d", rl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				one := []Event{{Type: "purchase", Time: daysAgo(1.5), Fields: map[string]any{"item": "i1", "amount": 42.0}}}
				cpu := cpuTime()
				for b.Loop() {
					y := x.With(nil, one, []int64{int64(n + 1)}, func(string) bool { return true })
					if _, err := r.EvalIndex(now, profile, y, len(events)+1); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// inOrder returns events sorted by time, as derivation holds them, with
// ids in arrival order.
func inOrder(events []Event) ([]Event, []int64) {
	type held struct {
		e  Event
		id int64
	}
	hs := make([]held, len(events))
	for i, e := range events {
		hs[i] = held{e, int64(i + 1)}
	}
	slices.SortStableFunc(hs, func(a, b held) int { return a.e.Time.Compare(b.e.Time) })
	out, ids := make([]Event, len(hs)), make([]int64, len(hs))
	for i, h := range hs {
		out[i], ids[i] = h.e, h.id
	}
	return out, ids
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
