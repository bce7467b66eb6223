package regulator

import (
	"math"
	"testing"
)

// TestNoise: the discrete Laplace noise is there (draws vary, mean
// absolute value near its expectation), bounded by Bound, centred, and
// never makes a count negative.
func TestNoise(t *testing.T) {
	for _, tc := range []struct {
		eps   float64
		bound int64
	}{{0.5, 30}, {1, 10}, {0.1, 50}} {
		n := NewNoise(tc.eps, 1, tc.bound)
		const draws = 20000
		var sum, abs float64
		zero := 0
		for range draws {
			x, err := n.Draw()
			if err != nil {
				t.Fatal(err)
			}
			if x < -tc.bound || x > tc.bound {
				t.Fatalf("ε=%v: draw %d beyond the bound %d", tc.eps, x, tc.bound)
			}
			if x == 0 {
				zero++
			}
			sum += float64(x)
			abs += math.Abs(float64(x))
		}
		a := math.Exp(-tc.eps)
		// E|X| of the two-sided geometric is 2a/(1−a²); P(X=0) = (1−a)/(1+a).
		wantAbs, wantZero := 2*a/(1-a*a), (1-a)/(1+a)
		gotAbs := abs / draws
		if math.Abs(gotAbs-wantAbs)/wantAbs > 0.1 {
			t.Errorf("ε=%v: mean |noise| %.3f, want about %.3f", tc.eps, gotAbs, wantAbs)
		}
		if got := float64(zero) / draws; math.Abs(got-wantZero) > 0.03 {
			t.Errorf("ε=%v: P(noise=0) %.3f, want about %.3f: the noise is not there", tc.eps, got, wantZero)
		}
		if mean := sum / draws; math.Abs(mean) > 10*wantAbs/math.Sqrt(draws) {
			t.Errorf("ε=%v: noise mean %.3f is not centred", tc.eps, mean)
		}
		if n.Delta <= 0 || n.Delta > 1e-2 {
			t.Errorf("ε=%v bound %d: δ %g", tc.eps, tc.bound, n.Delta)
		}
	}
	for range 1000 {
		c, err := DefaultNoise.Count(0)
		if err != nil || c < 0 {
			t.Fatalf("Count(0) = %d, %v", c, err)
		}
	}
	if _, err := (Noise{}).Draw(); err == nil {
		t.Error("a zero Noise draws")
	}
	if d := DefaultNoise.Delta; d > 1e-6 {
		t.Errorf("default δ %g, documented below 1e-6", d)
	}
}
