package label

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"

	"github.com/portrait-dev/portrait/catalog"
)

// Train fits a logistic regression of y on the columns of X (named by
// names) by minimising the mean log loss plus l2·‖w‖²/2 with gonum's LBFGS.
// Features are standardised while fitting, for conditioning, and the
// weights are returned on the original scale; the threshold is 0.5. The fit
// starts from zero and is deterministic.
func Train(X [][]float64, y []bool, names []string, l2 float64) (catalog.Model, error) {
	n := len(X)
	if n == 0 || n != len(y) {
		return catalog.Model{}, fmt.Errorf("train: %d rows and %d outcomes; want the same, non-zero number", n, len(y))
	}
	d := len(names)
	for i, row := range X {
		if len(row) != d {
			return catalog.Model{}, fmt.Errorf("train: row %d has %d features, want %d (%v)", i, len(row), d, names)
		}
	}
	if l2 < 0 {
		return catalog.Model{}, fmt.Errorf("train: l2 = %v; want a penalty >= 0", l2)
	}
	z, mean, sd := Standardize(X)
	for i, row := range z {
		for j, x := range row {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return catalog.Model{}, fmt.Errorf("train: row %d feature %q is not a finite number", i, names[j])
			}
		}
	}
	t := make([]float64, n)
	for i, b := range y {
		if b {
			t[i] = 1
		}
	}
	// theta = [intercept, w...]; loss and gradient in one pass.
	eval := func(theta []float64, g []float64) float64 {
		var loss float64
		if g != nil {
			clear(g)
		}
		for i, row := range z {
			s := theta[0]
			for j, x := range row {
				s += theta[j+1] * x
			}
			// log(1+e^s) - t·s, computed stably.
			loss += math.Max(s, 0) + math.Log1p(math.Exp(-math.Abs(s))) - t[i]*s
			if g != nil {
				r := sigmoid(s) - t[i]
				g[0] += r
				for j, x := range row {
					g[j+1] += r * x
				}
			}
		}
		inv := 1 / float64(n)
		loss *= inv
		for j := 1; j <= d; j++ {
			loss += l2 * theta[j] * theta[j] / 2
		}
		if g != nil {
			for j := range g {
				g[j] *= inv
			}
			for j := 1; j <= d; j++ {
				g[j] += l2 * theta[j]
			}
		}
		return loss
	}
	p := optimize.Problem{
		Func: func(x []float64) float64 { return eval(x, nil) },
		Grad: func(g, x []float64) { eval(x, g) },
	}
	res, err := optimize.Minimize(p, make([]float64, d+1), &optimize.Settings{GradientThreshold: 1e-8}, &optimize.LBFGS{})
	if err != nil {
		return catalog.Model{}, fmt.Errorf("train: %w", err)
	}
	m := catalog.Model{Kind: "logistic", Weights: make(map[string]float64, d), Intercept: res.X[0], Threshold: 0.5}
	for j, name := range names {
		w := res.X[j+1] / sd[j]
		m.Weights[name] = w
		m.Intercept -= w * mean[j]
	}
	return m, nil
}
