package fairness

import (
	"math"
	"testing"
)

func TestEntropy(t *testing.T) {
	cases := []struct {
		counts     []float64
		categories int
		bits, norm float64
		ok         bool
	}{
		{[]float64{1, 1, 1, 1}, 0, 2, 1, true},
		{[]float64{1, 1, 1, 1}, 8, 2, 2.0 / 3, true},
		{[]float64{5}, 0, 0, 0, true},
		{[]float64{3, 0, 1}, 0, -(0.75*math.Log2(0.75) + 0.25*math.Log2(0.25)), 0.8112781244591328, true},
		{[]float64{0, 0}, 0, 0, 0, false},
		{[]float64{1, -1}, 0, 0, 0, false},
	}
	for _, tc := range cases {
		b, n, ok := Entropy(tc.counts, tc.categories)
		if ok != tc.ok || math.Abs(b-tc.bits) > 1e-12 || math.Abs(n-tc.norm) > 1e-12 {
			t.Errorf("Entropy(%v, %d) = %v %v %v; want %v %v %v", tc.counts, tc.categories, b, n, ok, tc.bits, tc.norm, tc.ok)
		}
	}
}

func TestIntraListDiversity(t *testing.T) {
	cats := []string{"a", "a", "b", "b"}
	// 6 pairs, 2 of them same-category.
	if v, ok := IntraListDiversity(cats); !ok || math.Abs(v-4.0/6) > 1e-12 {
		t.Errorf("ILD = %v", v)
	}
	sim := func(i, j int) float64 {
		if cats[i] == cats[j] {
			return 1
		}
		return 0
	}
	if v, err := IntraListDiversityFunc(len(cats), sim); err != nil || math.Abs(v-4.0/6) > 1e-12 {
		t.Errorf("ILD by similarity = %v %v", v, err)
	}
	if _, ok := IntraListDiversity([]string{"a"}); ok {
		t.Error("one-item list has a diversity")
	}
	if _, err := IntraListDiversityFunc(3, func(int, int) float64 { return 2 }); err == nil {
		t.Error("similarity 2 accepted")
	}
}

func TestCoverageGiniSlope(t *testing.T) {
	if c, ok := Coverage(25, 100); !ok || c != 0.25 {
		t.Errorf("coverage %v", c)
	}
	if _, ok := Coverage(1, 0); ok {
		t.Error("coverage of an empty catalogue")
	}
	gini := []struct {
		counts    []float64
		catalogue int
		want      float64
		ok        bool
	}{
		{[]float64{1, 1, 1, 1}, 0, 0, true},
		{[]float64{0, 0, 0, 10}, 0, 0.75, true}, // (2·4 − 5)·10 / (4·10)
		{[]float64{10}, 4, 0.75, true},          // the same, unseen items as zeros
		{[]float64{1, 2, 3, 4}, 0, 0.25, true},  // Σ(2i − 5)xᵢ = 10, / (4·10)
		{nil, 0, 0, false},
		{[]float64{0, 0}, 0, 0, false},
	}
	for _, tc := range gini {
		if g, ok := Gini(tc.counts, tc.catalogue); ok != tc.ok || math.Abs(g-tc.want) > 1e-12 {
			t.Errorf("Gini(%v, %d) = %v %v, want %v", tc.counts, tc.catalogue, g, ok, tc.want)
		}
	}
	if s, ok := Slope([]float64{1, 2, 3}); !ok || math.Abs(s-1) > 1e-12 {
		t.Errorf("slope %v", s)
	}
	if s, ok := Slope([]float64{0.9, 0.7, 0.5, 0.3}); !ok || math.Abs(s+0.2) > 1e-12 {
		t.Errorf("slope %v", s)
	}
	if _, ok := Slope([]float64{1}); ok {
		t.Error("slope of one point")
	}
}

// FB-1, FB-2: a subject whose recommendations narrow to one category
// falls below the floor and raises an alert; a varied one does not.
func TestExposureLogTrend(t *testing.T) {
	l, err := NewExposureLog(100, 4)
	if err != nil {
		t.Fatal(err)
	}
	cats := []string{"news", "sport", "music", "film"}
	for period := range int64(4) {
		for i := range 20 {
			// The narrowing subject sees ever fewer categories.
			l.Add("subject:narrow", period, "item"+string(rune('a'+i)), cats[i%int(4-period)])
			l.Add("subject:varied", period, "item"+string(rune('a'+i)), cats[i%4])
		}
	}
	rep, err := l.Report(0.5)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep) != 2 {
		t.Fatalf("%d scopes", len(rep))
	}
	narrow, varied := rep[0], rep[1]
	if !narrow.Trend.BelowFloor || narrow.Trend.Requirement != "FB-2" || narrow.Trend.Slope == nil || *narrow.Trend.Slope >= 0 {
		t.Errorf("narrowing subject: %+v", narrow.Trend)
	}
	if narrow.Periods[3].Entropy != 0 || narrow.Periods[0].Entropy != 1 {
		t.Errorf("narrowing entropy %+v", narrow.Periods)
	}
	if varied.Trend.BelowFloor || varied.Trend.Message != "" {
		t.Errorf("varied subject alerted: %+v", varied.Trend)
	}
	if c := varied.Periods[0].Coverage; c != 0.2 {
		t.Errorf("coverage %v, want 20 of 100", c)
	}
	if _, err := CheckDiversity("r", "ild", []float64{0.5, math.NaN()}, 0.3); err == nil {
		t.Error("NaN series accepted")
	}
}
