package fairness

import (
	"bufio"
	"flag"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	proxySubjects = flag.Int("proxy.subjects", 1_000_000, "subjects in BenchmarkProxyScan")
	priceEvents   = flag.Int("price.events", 10_000_000, "events in BenchmarkPriceScan")
)

// BenchmarkReport1e6 is the target: a full report over 10⁶
// decisions with 3 protected attributes, outcomes and scores, ≤ 5 s.
func BenchmarkReport1e6(b *testing.B) {
	races := []string{"A", "B", "C", "D", "E", "F"}
	sexes := []string{"F", "M"}
	ages := []string{"<25", "25-45", ">45"}
	r := rand.New(rand.NewPCG(1, 2))
	rows := make([]Observation, 1_000_000)
	for i := range rows {
		score := float64(1 + r.IntN(10))
		rows[i] = Observation{
			Groups:   []string{races[r.IntN(len(races))], sexes[r.IntN(2)], ages[r.IntN(3)]},
			Selected: score >= 5, HasOutcome: true, Outcome: r.Float64() < score/12,
			HasScore: true, Score: score,
		}
	}
	cfg := Config{Attributes: []string{"race", "sex", "age"}, MinShare: DefaultMinShare}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Audit(cfg, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProxyScan: 50 features (25 categorical, 25 numeric) × 3
// protected attributes over -proxy.subjects subjects, generated on the fly.
func BenchmarkProxyScan(b *testing.B) {
	const nCat, nNum = 25, 25
	opts := ProxyOptions{Protected: []string{"sex", "race", "age"}}
	for i := range nCat {
		opts.Categorical = append(opts.Categorical, "c"+strconv.Itoa(i))
	}
	for i := range nNum {
		opts.Numeric = append(opts.Numeric, "n"+strconv.Itoa(i))
	}
	levels := make([]string, 20)
	for i := range levels {
		levels[i] = "v" + strconv.Itoa(i)
	}
	prot := [][]string{{"F", "M"}, {"A", "B", "C", "D", "E"}, {"young", "mid", "old"}}
	for b.Loop() {
		s, err := NewProxyScanner(opts)
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 4))
		p := make([]string, 3)
		c := make([]string, nCat)
		x := make([]float64, nNum)
		for range *proxySubjects {
			for j := range p {
				p[j] = prot[j][r.IntN(len(prot[j]))]
			}
			for j := range c {
				c[j] = levels[r.IntN(len(levels))]
			}
			for j := range x {
				x[j] = r.NormFloat64()
			}
			if err := s.Add(p, c, x); err != nil {
				b.Fatal(err)
			}
		}
		_ = s.Findings()
	}
	b.ReportMetric(float64(*proxySubjects), "subjects/op")
}

// BenchmarkPriceScan streams -price.events events (1 000 items × 4
// contexts × 5 segments over 30 days) through the scanner; memory stays
// with the cells, not the events (see allocs and B/op).
func BenchmarkPriceScan(b *testing.B) {
	items := make([]string, 1000)
	for i := range items {
		items[i] = "item" + strconv.Itoa(i)
	}
	contexts := []string{"web", "app", "store", "phone"}
	segments := []string{"new", "loyal", "vip", "lapsed", "student"}
	labels := [][]string{nil, {"iphone_user"}, {"night_owl"}, {"iphone_user", "night_owl"}}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		s, err := NewPriceScanner(PriceOptions{})
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		for range *priceEvents {
			seg := r.IntN(len(segments))
			price := 100 + float64(seg%2)*7 + r.Float64()
			e := PriceEvent{Item: items[r.IntN(len(items))], Context: contexts[r.IntN(4)], Segment: segments[seg],
				Labels: labels[r.IntN(4)], Price: price, Time: start.Add(time.Duration(r.Int64N(30*24*3600)) * time.Second)}
			if err := s.Add(e); err != nil {
				b.Fatal(err)
			}
		}
		_ = s.Report()
	}
	b.ReportMetric(float64(*priceEvents), "events/op")
	if mb, ok := peakRSS(); ok {
		b.ReportMetric(mb, "peak-RSS-MB")
	}
}

// peakRSS is the process's peak resident set (VmHWM) in MiB, on Linux.
// Events are generated on the fly, so it is the scanner's footprint plus
// the test binary's.
func peakRSS() (float64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}
