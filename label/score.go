package label

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/portrait-dev/portrait/catalog"
)

// Model is a declared score model. For a logistic model the score is the
// probability sigmoid(intercept + Σ w·x) and a contribution is w·x in log
// odds; for a scorecard the score is intercept + Σ w·x (points per unit of
// a feature, binned features given as 0/1) and a contribution is w·x points.
// The outcome holds when the score is at or above the threshold.
type Model catalog.Model

// Score evaluates the model on one subject's features. A feature the model
// weighs but the subject lacks is an error naming it.
func (m Model) Score(features map[string]float64) (score float64, contributions map[string]float64, err error) {
	if m.Kind != "logistic" && m.Kind != "scorecard" {
		return 0, nil, fmt.Errorf("score: model kind %q: want logistic or scorecard", m.Kind)
	}
	z := m.Intercept
	contributions = make(map[string]float64, len(m.Weights))
	for _, name := range slices.Sorted(maps.Keys(m.Weights)) {
		x, ok := features[name]
		if !ok {
			return 0, nil, fmt.Errorf("score: feature %q is missing; the model weighs it", name)
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, nil, fmt.Errorf("score: feature %q is %v; want a finite number", name, x)
		}
		c := m.Weights[name] * x
		contributions[name] = c
		z += c
	}
	if m.Kind == "logistic" {
		return sigmoid(z), contributions, nil
	}
	return z, contributions, nil
}

// Outcome reports whether a score meets the model's threshold.
func (m Model) Outcome(score float64) bool { return score >= m.Threshold }

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// linearThreshold is the threshold on the linear term intercept + Σ w·x.
func (m Model) linearThreshold() float64 {
	if m.Kind == "logistic" {
		return math.Log(m.Threshold / (1 - m.Threshold))
	}
	return m.Threshold
}

// Counterfactual finds the single actionable feature whose change flips the
// model's outcome with the smallest relative change |Δx| / max(|x|, 1),
// and the value it would need. Relative terms let features on different
// scales be compared without population statistics. It reports false when
// no actionable feature with a non-zero weight exists or the features
// cannot be scored.
func Counterfactual(m catalog.Model, features map[string]float64, actionable []string) (field string, newValue float64, ok bool) {
	md := Model(m)
	score, _, err := md.Score(features)
	if err != nil || (md.Kind == "logistic" && (m.Threshold <= 0 || m.Threshold >= 1)) {
		return "", 0, false
	}
	outcome := md.Outcome(score)
	z := m.Intercept
	for name, w := range m.Weights {
		z += w * features[name]
	}
	// The margin keeps the new value strictly across the threshold, so
	// rounding cannot leave the outcome where it was.
	target := md.linearThreshold()
	best := math.Inf(1)
	for _, name := range actionable {
		w, has := m.Weights[name]
		x, present := features[name]
		if !has || !present || w == 0 {
			continue
		}
		dz := target - z
		margin := 1e-6 * math.Max(1, math.Abs(target))
		if outcome {
			dz -= margin // push below
		} else {
			dz += margin // push to or above
		}
		nx := x + dz/w
		if cost := math.Abs(nx-x) / math.Max(math.Abs(x), 1); cost < best {
			best, field, newValue, ok = cost, name, nx, true
		}
	}
	return field, newValue, ok
}
