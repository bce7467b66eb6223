package label

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	cdnowlog "github.com/portrait-dev/portrait/examples/cdnow"
)

// Three well-separated blobs are found exactly, whatever the seed.
func TestKMeansBlobs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	centres := [][]float64{{0, 0}, {10, 10}, {-10, 10}}
	var pts [][]float64
	var truth []int
	for i := 0; i < 300; i++ {
		c := i % 3
		pts = append(pts, []float64{centres[c][0] + rng.NormFloat64(), centres[c][1] + rng.NormFloat64()})
		truth = append(truth, c)
	}
	for seed := int64(1); seed <= 5; seed++ {
		cl, err := KMeans(pts, 3, seed, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !cl.Converged {
			t.Errorf("seed %d did not converge in %d iterations", seed, cl.Iterations)
		}
		// Each true blob maps to one cluster and back.
		m := map[int]int{}
		for i, a := range cl.Assign {
			if prev, ok := m[truth[i]]; ok && prev != a {
				t.Fatalf("seed %d: blob %d split", seed, truth[i])
			}
			m[truth[i]] = a
		}
		if len(m) != 3 || cl.Sizes[0]+cl.Sizes[1]+cl.Sizes[2] != 300 {
			t.Errorf("seed %d: blobs merged %v sizes %v", seed, m, cl.Sizes)
		}
	}
}

func TestKMeansErrors(t *testing.T) {
	pts := [][]float64{{1, 2}, {3, 4}}
	tests := []struct {
		pts  [][]float64
		k    int
		want string
	}{
		{pts, 3, "larger than the population of 2"},
		{pts, 0, "at least 1"},
		{[][]float64{{1, 2}, {3}}, 1, "point 1 has 1 features"},
		{[][]float64{{1, math.NaN()}}, 1, "finite"},
		{nil, 2, "larger than the population of 0"},
	}
	for _, tt := range tests {
		if _, err := KMeans(tt.pts, tt.k, 1, 10); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("k=%d %v: got %v, want %q", tt.k, tt.pts, err, tt.want)
		}
	}
	// Identical points: clusters beyond the first stay empty rather than panic.
	same := [][]float64{{1, 1}, {1, 1}, {1, 1}, {2, 2}}
	cl, err := KMeans(same, 3, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if n := cl.Sizes[0] + cl.Sizes[1] + cl.Sizes[2]; n != 4 {
		t.Errorf("sizes %v", cl.Sizes)
	}
	l := &catalog.Label{ID: "seg", Kind: "segment", Features: []string{"a"}, K: 5}
	if _, err := Segment(l, map[string]map[string]float64{"x": {"a": 1}, "y": {"a": 2}}); err == nil || !strings.Contains(err.Error(), "larger than the population") {
		t.Errorf("k > population: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	feats := []string{"recency", "frequency", "monetary", "visits"}
	got := Describe([][]float64{{-1, 2, -0.7, 0}, {2, -0.6, -0.6, 0}, {0, 0.1, 0.1, 0.9}, {0, 0.1, 0.1, 0.05}}, feats)
	if !strings.Contains(got[0]["en"], "buys very often") || !strings.Contains(got[0]["zh-CN"], "购买非常频繁") {
		t.Errorf("segment 0: %v", got[0])
	}
	if !strings.Contains(got[1]["en"], "has not bought for a very long time") {
		t.Errorf("segment 1: %v", got[1])
	}
	if !strings.Contains(got[2]["en"], "high visits") || !strings.Contains(got[2]["zh-CN"], "visits较高") {
		t.Errorf("segment 2: %v", got[2])
	}
	seen := map[string]bool{}
	for _, d := range got {
		if d["en"] == "" || d["zh-CN"] == "" || seen[d["en"]] {
			t.Errorf("empty or repeated description in %v", got)
		}
		seen[d["en"]] = true
	}
}

type cdnow struct {
	subjects map[string][]Event
	rows     int
	end      time.Time
}

// loadCDNOW parses the real CDNOW purchase log, shipped in
// examples/cdnow, into purchase events.
func loadCDNOW(tb testing.TB) cdnow {
	tb.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(cdnowlog.Log))
	if err != nil {
		tb.Fatal(err)
	}
	d := cdnow{subjects: map[string][]Event{}}
	sc := bufio.NewScanner(zr)
	for line := 1; sc.Scan(); line++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || fs[0] == "customer_id" {
			continue
		}
		if len(fs) != 4 {
			tb.Fatalf("line %d: %d columns", line, len(fs))
		}
		day, err := time.Parse("20060102", fs[1])
		if err != nil {
			tb.Fatalf("line %d: %v", line, err)
		}
		cds, err1 := strconv.ParseFloat(fs[2], 64)
		amount, err2 := strconv.ParseFloat(fs[3], 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("line %d: %v %v", line, err1, err2)
		}
		d.subjects[fs[0]] = append(d.subjects[fs[0]], Event{Type: "purchase", Time: day,
			Fields: map[string]any{"cds": cds, "amount": amount}})
		d.rows++
		if day.After(d.end) {
			d.end = day
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return d
}

// The real CDNOW log: RFM quintiles, classes and k-means segments.
func TestCDNOW(t *testing.T) {
	d := loadCDNOW(t)
	if d.rows != 69659 || len(d.subjects) != 23570 {
		t.Fatalf("parsed %d rows and %d customers, want 69,659 and 23,570", d.rows, len(d.subjects))
	}
	now := d.end.AddDate(0, 0, 1)
	scores := RFM(now, d.subjects, "purchase", "amount")
	if len(scores) != len(d.subjects) {
		t.Fatalf("%d scores for %d customers", len(scores), len(d.subjects))
	}
	n := float64(len(scores))
	// Independent check: each quintile holds 20% of customers, give or take
	// the largest group of customers tied on that measure.
	for _, m := range []struct {
		name  string
		score func(RFMScore) int
		value func(RFMScore) float64
	}{
		{"R", func(s RFMScore) int { return s.R }, func(s RFMScore) float64 { return s.Recency }},
		{"F", func(s RFMScore) int { return s.F }, func(s RFMScore) float64 { return float64(s.Frequency) }},
		{"M", func(s RFMScore) int { return s.M }, func(s RFMScore) float64 { return s.Monetary }},
	} {
		sizes := make([]float64, 6)
		ties := map[float64]int{}
		maxTie := 0
		for _, s := range scores {
			sizes[m.score(s)]++
			ties[m.value(s)]++
			maxTie = max(maxTie, ties[m.value(s)])
		}
		tol := 0.01 + float64(maxTie)/n
		for q := 1; q <= 5; q++ {
			if math.Abs(sizes[q]/n-0.2) > tol {
				t.Errorf("%s quintile %d holds %.1f%%, want 20%% ± %.1f%%", m.name, q, 100*sizes[q]/n, 100*tol)
			}
		}
		t.Logf("%s quintile shares %.3f (largest tie %.3f)", m.name, []float64{sizes[1] / n, sizes[2] / n, sizes[3] / n, sizes[4] / n, sizes[5] / n}, float64(maxTie)/n)
	}
	// Recomputed by hand for one customer.
	first := d.subjects["00001"]
	if s := scores["00001"]; s.Frequency != len(first) || s.Monetary != sumAmount(first) {
		t.Errorf("customer 00001: %+v, events %v", s, first)
	}
	// Scores order customers: a higher R is more recent, a higher M spent more.
	lo, hi := map[int]float64{}, map[int]float64{}
	loM, hiM := map[int]float64{}, map[int]float64{}
	for _, s := range scores {
		if v, ok := lo[s.R]; !ok || s.Recency < v {
			lo[s.R] = s.Recency
		}
		hi[s.R] = max(hi[s.R], s.Recency)
		if v, ok := loM[s.M]; !ok || s.Monetary < v {
			loM[s.M] = s.Monetary
		}
		hiM[s.M] = max(hiM[s.M], s.Monetary)
	}
	for q := 1; q < 5; q++ {
		if hi[q+1] > lo[q] || hiM[q] > loM[q+1] {
			t.Errorf("quintile %d and %d overlap: recency %v–%v vs %v–%v, monetary %v–%v vs %v–%v", q, q+1, lo[q], hi[q], lo[q+1], hi[q+1], loM[q], hiM[q], loM[q+1], hiM[q+1])
		}
	}
	mean := map[string][2]float64{}
	for _, s := range scores {
		m := mean[s.Class]
		mean[s.Class] = [2]float64{m[0] + s.Monetary, m[1] + 1}
		if s.Name["zh-CN"] == "" || s.Name["en"] == "" {
			t.Fatalf("class %q has no name", s.Class)
		}
	}
	champ, hib := mean["champions"], mean["hibernating"]
	if champ[1] == 0 || hib[1] == 0 || champ[0]/champ[1] <= hib[0]/hib[1] {
		t.Errorf("champions spend %.2f on average, hibernating %.2f; want champions higher", champ[0]/champ[1], hib[0]/hib[1])
	}
	t.Logf("classes: %v", mean)

	// Segments over recency, frequency and log monetary.
	feats := map[string]map[string]float64{}
	for id, s := range scores {
		feats[id] = map[string]float64{"recency": s.Recency, "frequency": float64(s.Frequency), "log_monetary": math.Log1p(s.Monetary)}
	}
	l := &catalog.Label{ID: "cdnow_segments", Kind: "segment", Version: 1, Features: []string{"recency", "frequency", "log_monetary"}, K: 4, Seed: 42,
		Name: catalog.Text{"en": "customer segment", "zh-CN": "客户分群"}}
	a, err := Segment(l, feats)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Segment(l, feats)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Assign, b.Assign) || !slices.EqualFunc(a.Centroids, b.Centroids, slices.Equal) {
		t.Error("same data and seed gave different segments")
	}
	l2 := *l
	l2.Seed = 7
	c1, _ := Segment(&l2, feats)
	c2, _ := Segment(&l2, feats)
	if !slices.Equal(c1.Assign, c2.Assign) {
		t.Error("seed 7 is not deterministic")
	}
	seen := map[string]bool{}
	for j, desc := range a.Descriptions {
		if desc["en"] == "" || desc["zh-CN"] == "" || seen[desc["en"]] || seen[desc["zh-CN"]] {
			t.Errorf("segment %d description %v empty or repeated", j, desc)
		}
		seen[desc["en"]], seen[desc["zh-CN"]] = true, true
		t.Logf("segment %d (%d customers): %s / %s", j, a.Sizes[j], desc["en"], desc["zh-CN"])
	}
	v := a.Value(0, now)
	if v.Kind != "segment" || v.Confidence < 0.5 || v.Confidence > 1 || !strings.Contains(v.Explain("en", l), a.Descriptions[v.Segment]["en"]) {
		t.Errorf("segment value %+v: %s", v, v.Explain("en", l))
	}
}

func sumAmount(evs []Event) float64 {
	var s float64
	for _, e := range evs {
		s += e.Fields["amount"].(float64)
	}
	return s
}

func BenchmarkRFMCDNOW(b *testing.B) {
	d := loadCDNOW(b)
	now := d.end.AddDate(0, 0, 1)
	b.ResetTimer()
	for b.Loop() {
		RFM(now, d.subjects, "purchase", "amount")
	}
	b.ReportMetric(float64(d.rows)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkKMeans1e6x8 clusters 10⁶ points of 8 features into 8 clusters.
func BenchmarkKMeans1e6x8(b *testing.B) {
	const n, d = 1_000_000, 8
	rng := rand.New(rand.NewPCG(3, 4))
	flat := make([]float64, n*d)
	pts := make([][]float64, n)
	for i := range pts {
		c := float64(i % 8)
		row := flat[i*d : i*d+d]
		for f := range row {
			row[f] = rng.NormFloat64() + c*float64(f%3)
		}
		pts[i] = row
	}
	b.ResetTimer()
	for b.Loop() {
		cl, err := KMeans(pts, 8, 1, 50)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(cl.Iterations), "iterations")
	}
}
