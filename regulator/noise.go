package regulator

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
)

// Noise describes the calibrated noise on the counts of a supervision
// report, and is sent with them so the regulator (and the public portal)
// can say how much to trust each number.
//
// Mechanism: the discrete Laplace (two-sided geometric) mechanism
// (Ghosh, Roughgarden and Sundararajan 2009): each count c is published
// as c + X, where P(X = k) ∝ exp(−ε·|k|/Δ). X is the difference of two
// independent geometric draws, each from a uniform number read from
// crypto/rand. Δ (Sensitivity) is 1: every noisy count is a number of
// distinct people (subjects with a request, with an overdue request, who
// granted or withdrew a consent), so adding or removing one person
// changes each count by at most one. X is truncated to |X| ≤ Bound by
// redrawing, which makes the mechanism (ε, δ)-differentially private
// with δ = P(|X| > Bound) of the untruncated distribution (below 1e-6 at the defaults); a noisy
// count below zero is published as zero (post-processing).
//
// Each count of one report spends Epsilon; a report of k counts spends
// k·ε by basic composition, and reports compose over time: the budget is
// per report, documented, not enforced across reports.
type Noise struct {
	Mechanism   string  `json:"mechanism"`
	Epsilon     float64 `json:"epsilon"`
	Sensitivity int64   `json:"sensitivity"`
	Bound       int64   `json:"bound"`
	Delta       float64 `json:"delta"`
}

// DefaultNoise is ε = 0.5 per count, Δ = 1, truncated at ±30 (δ ≈ 2.3e-7).
var DefaultNoise = NewNoise(0.5, 1, 30)

// NewNoise returns the discrete Laplace mechanism with the given ε,
// sensitivity and bound.
func NewNoise(epsilon float64, sensitivity, bound int64) Noise {
	a := math.Exp(-epsilon / float64(sensitivity))
	// P(|X| > B) = 2·a^(B+1) / (1 + a) for the two-sided geometric.
	return Noise{Mechanism: "discrete_laplace", Epsilon: epsilon, Sensitivity: sensitivity, Bound: bound,
		Delta: 2 * math.Pow(a, float64(bound+1)) / (1 + a)}
}

// Draw returns one draw of the noise X.
func (n Noise) Draw() (int64, error) {
	if n.Epsilon <= 0 || n.Sensitivity <= 0 || n.Bound <= 0 {
		return 0, fmt.Errorf("noise: epsilon, sensitivity and bound must be positive")
	}
	a := math.Exp(-n.Epsilon / float64(n.Sensitivity))
	for {
		g1, err := geometric(a)
		if err != nil {
			return 0, err
		}
		g2, err := geometric(a)
		if err != nil {
			return 0, err
		}
		if x := g1 - g2; x >= -n.Bound && x <= n.Bound {
			return x, nil
		}
	}
}

// Count returns c with noise added, never below zero.
func (n Noise) Count(c int64) (int64, error) {
	x, err := n.Draw()
	if err != nil {
		return 0, err
	}
	return max(c+x, 0), nil
}

// geometric draws G ≥ 0 with P(G = k) = (1−a)·a^k, by inversion of a
// uniform number in (0, 1] from crypto/rand.
func geometric(a float64) (int64, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("noise: %w", err)
	}
	u := (float64(binary.BigEndian.Uint64(b[:])>>11) + 1) / (1 << 53) // (0, 1]
	return int64(math.Floor(math.Log(u) / math.Log(a))), nil
}
