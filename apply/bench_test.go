package apply_test

import (
	"fmt"
	"github.com/portrait-dev/portrait/examples/demo"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
)

// BenchmarkRecommend: n = 20 from 10,000 items, the governed path (state,
// gate, decision point, reads through grants, audit append) against the
// bare scorer in one run, and the bare scorer against the scorer it
// replaced (every item scored), also in one run.
func BenchmarkRecommend(b *testing.B) {
	e := newEnv(b)
	var items []portrait.Item
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		items = append(items, portrait.Item{ID: fmt.Sprintf("i%05d", i), Categories: []string{fmt.Sprintf("c%02d", i%20)}, Price: 1, Updated: base.Add(time.Duration(i) * time.Minute)})
	}
	if _, err := e.svc.PutItems(ctx, operator, items); err != nil {
		b.Fatal(err)
	}
	var evs []portrait.Event
	for s := range 50 {
		id := fmt.Sprintf("s%02d", s)
		e.grant(id, "personalization")
		for k := range 20 {
			it := (s*37 + k*101) % 10_000
			evs = append(evs, view(id, fmt.Sprintf("i%05d", it), fmt.Sprintf("c%02d", it%20), time.Hour))
		}
	}
	e.events(evs...)
	for s := range 10 {
		e.setLabel(fmt.Sprintf("s%02d", s), label.Value{Label: "sports_fan", Kind: catalog.KindRule, Bool: true, Version: 1})
	}
	p := e.keys.Pseudonym("s00")
	if _, err := e.svc.Recommend(ctx, operator, p, "home_feed", 20); err != nil { // learn once
		b.Fatal(err)
	}
	b.Run("governed", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			if _, err := e.svc.Recommend(ctx, operator, p, "home_feed", 20); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	hist := map[string]float64{"c01": 3, "c02": 1}
	bare := func() {
		if _, err := e.svc.Bare(ctx, "personalization", []string{"sports_fan"}, hist, 1, 20); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("bare", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			bare()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	// The scorer as it was, scoring every item: the floor to beat, in
	// the same run.
	reference := func() {
		if _, err := e.svc.BareReference(ctx, "personalization", []string{"sports_fan"}, hist, 1, 20); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("reference", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			reference()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	b.Run("bare-vs-reference", func(b *testing.B) {
		var fast, old time.Duration
		for b.Loop() {
			t0 := time.Now()
			bare()
			t1 := time.Now()
			reference()
			fast, old = fast+t1.Sub(t0), old+time.Since(t1)
		}
		b.ReportMetric(float64(fast.Nanoseconds())/float64(b.N), "bare-ns/op")
		b.ReportMetric(float64(old.Nanoseconds())/float64(b.N), "reference-ns/op")
		b.ReportMetric(float64(old)/float64(fast), "speedup")
	})
	// The cost of governance in one run: governed and bare calls
	// interleaved, so that both see the same machine, and their ratio.
	b.Run("ratio", func(b *testing.B) {
		var gov, raw time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := e.svc.Recommend(ctx, operator, p, "home_feed", 20); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			bare()
			gov, raw = gov+t1.Sub(t0), raw+time.Since(t1)
		}
		b.ReportMetric(float64(gov.Nanoseconds())/float64(b.N), "governed-ns/op")
		b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "bare-ns/op")
		b.ReportMetric(float64(gov)/float64(raw), "governed/bare")
	})
}

// cpuTime is the CPU time this process has used, user and system. On a
// machine shared with other work, CPU time per operation varies far less
// than wall time does: it leaves out the time spent waiting for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDecision: the governed decision (gate with assessment and
// notice, decision point, profile read, sealing, decision and audit write
// in one transaction) against scoring and the counterfactual alone.
func BenchmarkDecision(b *testing.B) {
	e := newEnv(b)
	if _, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
		b.Fatal(err)
	}
	e.grant("dave", "credit")
	e.events(profileEvent("dave", 30, 10000))
	p := e.keys.Pseudonym("dave")
	if _, err := e.svc.ShowNotice(ctx, operator, p, "credit_limit"); err != nil {
		b.Fatal(err)
	}
	b.Run("governed", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.svc.Determine(ctx, operator, p, "credit_limit"); err != nil {
				b.Fatal(err)
			}
		}
	})
	m := *loadCatalog(b).Label("credit_score").Model
	b.Run("bare", func(b *testing.B) {
		f := map[string]float64{"age": 30, "income": 10000}
		for b.Loop() {
			if _, _, err := label.Model(m).Score(f); err != nil {
				b.Fatal(err)
			}
			label.Counterfactual(m, f, []string{"income"})
		}
	})
}
