package fairness

import (
	"math"
)

// z95 is the two-sided 95 % standard-normal quantile.
const z95 = 1.959963984540054

// Wilson returns the Wilson score interval at 95 % for k successes in n
// trials. It stays inside [0, 1] and is defined at k = 0 and k = n, where the
// normal-approximation interval collapses to a point; n = 0 has no interval.
func Wilson(k, n int) (lo, hi float64, ok bool) {
	if n <= 0 || k < 0 || k > n {
		return 0, 0, false
	}
	nf := float64(n)
	p := float64(k) / nf
	z2 := z95 * z95
	den := 1 + z2/nf
	centre := (p + z2/(2*nf)) / den
	half := z95 * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return math.Max(0, centre-half), math.Min(1, centre+half), true
}

// Test names, as they appear in reports.
const (
	TestFisher = "fisher_exact"
	TestZ      = "two_proportion_z"
)

// CompareRates tests whether two selection rates differ (two-sided), k1 of n1
// against k2 of n2. Following the usual rule for 2×2 tables it uses Fisher's
// exact test when any expected cell count is below 5 and the pooled
// two-proportion z-test otherwise (FP-4).
func CompareRates(k1, n1, k2, n2 int) (test string, p float64, ok bool) {
	if n1 <= 0 || n2 <= 0 || k1 < 0 || k2 < 0 || k1 > n1 || k2 > n2 {
		return "", 0, false
	}
	n := float64(n1 + n2)
	sel := float64(k1 + k2)
	rej := n - sel
	for _, row := range []float64{float64(n1), float64(n2)} {
		if row*sel/n < 5 || row*rej/n < 5 {
			return TestFisher, FisherExact(k1, n1-k1, k2, n2-k2), true
		}
	}
	return TestZ, TwoProportionZ(k1, n1, k2, n2), true
}

// TwoProportionZ is the two-sided p-value of the pooled two-proportion
// z-test. When the pooled rate is 0 or 1 the rates are identical and the
// p-value is 1.
func TwoProportionZ(k1, n1, k2, n2 int) float64 {
	p1 := float64(k1) / float64(n1)
	p2 := float64(k2) / float64(n2)
	pool := float64(k1+k2) / float64(n1+n2)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 1
	}
	z := (p1 - p2) / se
	return clamp01(math.Erfc(math.Abs(z) / math.Sqrt2))
}

// FisherExact is the two-sided p-value of Fisher's exact test for the 2×2
// table [[a, b], [c, d]]: the total probability, under fixed margins, of
// every table no more likely than the observed one (the convention of R's
// fisher.test and SciPy).
func FisherExact(a, b, c, d int) float64 {
	r1, c1, n := a+b, a+c, a+b+c+d
	if n == 0 {
		return 1
	}
	lo := max(0, c1-(n-r1))
	hi := min(r1, c1)
	logP := func(x int) float64 {
		return lchoose(r1, x) + lchoose(n-r1, c1-x) - lchoose(n, c1)
	}
	obs := logP(a)
	// A relative tolerance keeps tables that tie with the observed one
	// despite rounding in the log-factorials.
	const tol = 1e-7
	var p float64
	for x := lo; x <= hi; x++ {
		if lp := logP(x); lp <= obs+tol {
			p += math.Exp(lp)
		}
	}
	return clamp01(p)
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

func clamp01(x float64) float64 {
	switch {
	case x < 0:
		return 0
	case x > 1:
		return 1
	}
	return x
}

// finite reports whether x is a real number (JSON cannot carry the others).
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
