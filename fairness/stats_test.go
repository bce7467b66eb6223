package fairness

import (
	"math"
	"testing"
)

// FP-4: Fisher's exact test against published values.
func TestFisherExact(t *testing.T) {
	cases := []struct {
		name       string
		a, b, c, d int
		want       float64
	}{
		// Fisher's lady tasting tea: 3 of 4 cups right, two-sided.
		{"tea tasting", 3, 1, 1, 3, 0.4857},
		{"tea tasting, all right", 4, 0, 0, 4, 0.0286},
		// Wikipedia's "studying" example (men/women, dieting).
		{"dieting", 1, 9, 11, 3, 0.002759},
		{"identical rows", 5, 5, 5, 5, 1},
		{"empty", 0, 0, 0, 0, 1},
	}
	for _, tc := range cases {
		got := FisherExact(tc.a, tc.b, tc.c, tc.d)
		if math.Abs(got-tc.want) > 5e-5 {
			t.Errorf("%s: p = %.6f, want %.6f", tc.name, got, tc.want)
		}
	}
}

// FP-4: Fisher for small expected counts, the z-test otherwise.
func TestCompareRatesChoosesTest(t *testing.T) {
	cases := []struct {
		name           string
		k1, n1, k2, n2 int
		test           string
		p              float64
	}{
		{"tiny table", 3, 4, 1, 4, TestFisher, 0.4857},
		{"one small expected cell", 1, 10, 200, 1000, TestFisher, -1},
		// 50/100 vs 30/100: z = 2.887, two-sided p = 0.00389 (normal table).
		{"large counts", 50, 100, 30, 100, TestZ, 0.00389},
		{"equal large", 300, 1000, 300, 1000, TestZ, 1},
	}
	for _, tc := range cases {
		test, p, ok := CompareRates(tc.k1, tc.n1, tc.k2, tc.n2)
		if !ok || test != tc.test {
			t.Errorf("%s: test %q ok %v, want %q", tc.name, test, ok, tc.test)
		}
		if tc.p >= 0 && math.Abs(p-tc.p) > 5e-5 {
			t.Errorf("%s: p = %.6f, want %.5f", tc.name, p, tc.p)
		}
		if p < 0 || p > 1 || math.IsNaN(p) {
			t.Errorf("%s: p = %v out of [0,1]", tc.name, p)
		}
	}
	if _, _, ok := CompareRates(1, 0, 1, 2); ok {
		t.Error("empty group compared")
	}
}

func TestWilson(t *testing.T) {
	cases := []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 10, 0, 0.2775},      // z²/(n+z²)
		{5, 10, 0.2366, 0.7634}, // Newcombe (1998), table I
		{10, 10, 0.7225, 1},
	}
	for _, tc := range cases {
		lo, hi, ok := Wilson(tc.k, tc.n)
		if !ok || math.Abs(lo-tc.lo) > 1e-4 || math.Abs(hi-tc.hi) > 1e-4 {
			t.Errorf("Wilson(%d, %d) = [%v, %v], want [%v, %v]", tc.k, tc.n, lo, hi, tc.lo, tc.hi)
		}
	}
	if _, _, ok := Wilson(0, 0); ok {
		t.Error("interval for zero trials")
	}
}
