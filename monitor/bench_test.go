package monitor_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/monitor"
)

var decisionSubjects = flag.Int("monitor.subjects", 10_000, "subjects, one stored decision each, in BenchmarkRunDecisions")

// BenchmarkRun runs every monitor over the 121-subject test population in
// SQLite: reads, decryption, the four monitors and the audit appends.
func BenchmarkRun(b *testing.B) {
	e := newEnv(b, monitor.Options{})
	e.population()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.mon.Run(ctx, e.now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunDecisions is the monitor path from stored decisions:
// -monitor.subjects subjects, seeded through ingest, each with three
// protected attributes and one stored loan decision, then one full run
// (every subject read and opened, the fairness audit with its flip tests,
// the proxy scan). Seeding is not timed. It reports subjects per second,
// from which the time for 10⁶ decisions is extrapolated (docs/BENCHMARKS.md).
func BenchmarkRunDecisions(b *testing.B) {
	n := *decisionSubjects
	e := newEnv(b, monitor.Options{})
	ctx := context.Background()
	start := time.Now()
	const batch = 1000
	for from := 0; from < n; from += batch {
		items := make([]ingest.Item, 0, batch)
		for i := from; i < min(from+batch, n); i++ {
			items = append(items, ingest.Item{Event: portrait.Event{SubjectID: fmt.Sprintf("s%07d", i), Type: "profile", Time: e.now.Add(-time.Hour),
				Fields: map[string]any{"postcode_income": income(i), "shoe_colour": []string{"red", "blue", "green"}[i%3]}}})
		}
		if _, _, err := e.in.Ingest(ctx, operator, items); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("s%07d", i)
		if err := e.mon.PutProtected(ctx, operator, id, map[string]string{"sex": []string{"F", "M"}[i%2],
			"age_band": []string{"18-34", "35-54", "55+"}[i%5%3], "native_language": []string{"zh", "en", "ug", "bo"}[i%7%4]}); err != nil {
			b.Fatal(err)
		}
		e.putDecision(id, 0, approved(i))
	}
	b.Logf("seeded %d subjects in %v", n, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	for b.Loop() {
		rep, err := e.mon.Run(ctx, e.now)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Fairness.UseCases[0].Audit == nil || rep.Fairness.UseCases[0].Audit.N != n {
			b.Fatalf("audited %+v", rep.Fairness.UseCases[0])
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
