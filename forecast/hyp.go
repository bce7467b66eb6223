package forecast

import (
	"fmt"
	"math"
)

// ErrNoConvergence reports a series or a fit that did not converge.
var ErrNoConvergence = fmt.Errorf("forecast: did not converge")

// maxTerms bounds the ₂F₁ series; at z = 0.999 it needs about 30,000 terms.
const maxTerms = 2_000_000

// Hyp2F1 is the Gauss hypergeometric function ₂F₁(a, b; c; z) for
// z in [0, 1), by its power series Σ (a)ₙ(b)ₙ/((c)ₙ n!) zⁿ. It stops when
// the remaining tail, bounded by the last term times ρ/(1−ρ) with ρ the
// the larger of the last ratio of terms and z, is below 1e-14 of the sum, and returns
// ErrNoConvergence rather than a wrong value when that does not happen.
// Negative z in [-1, 0) is mapped into [0, ½] by Pfaff's transformation
// ₂F₁(a, b; c; z) = (1−z)^(−a) ₂F₁(a, c−b; c; z/(z−1)).
func Hyp2F1(a, b, c, z float64) (float64, error) {
	switch {
	case math.IsNaN(z) || z >= 1 || z < -1:
		return math.NaN(), fmt.Errorf("forecast: 2F1 at z = %v: want -1 ≤ z < 1", z)
	case c <= 0 && c == math.Trunc(c):
		return math.NaN(), fmt.Errorf("forecast: 2F1 with c = %v, a non-positive integer", c)
	case z < 0:
		v, err := Hyp2F1(a, c-b, c, z/(z-1))
		return math.Pow(1-z, -a) * v, err
	case z == 0:
		return 1, nil
	}
	term, sum := 1.0, 1.0
	for n := 0.0; n < maxTerms; n++ {
		ratio := (a + n) * (b + n) / ((c + n) * (n + 1)) * z
		term *= ratio
		sum += term
		if term == 0 {
			return sum, nil
		}
		// Past n = |a|+|b|+|c| the ratios move monotonically towards z,
		// from above or below, so every later ratio is at most
		// ρ = max(ratio, z) and the tail after this term at most term·ρ/(1−ρ).
		if rho := math.Max(ratio, z); ratio > 0 && rho < 1 && n > math.Abs(a)+math.Abs(b)+math.Abs(c) {
			if math.Abs(term*rho/(1-rho)) <= 1e-14*math.Abs(sum) {
				return sum, nil
			}
		}
		if math.IsInf(sum, 0) || math.IsNaN(sum) {
			break
		}
	}
	return math.NaN(), fmt.Errorf("2F1(%v, %v; %v; %v): %w", a, b, c, z, ErrNoConvergence)
}
