package forecast

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

var origin = time.Date(1997, 1, 1, 0, 0, 0, 0, time.UTC)

// simulateDays draws purchase days of n customers from BG/NBD with
// parameters p and trend beta, first purchases spread over 12 weeks from
// origin, until 78 weeks after origin.
func simulateDays(p Params, beta float64, n int, seed uint64) map[string][]time.Time {
	rng := rand.New(rand.NewPCG(seed, 1))
	lam := distuv.Gamma{Alpha: p.R, Beta: p.Alpha, Src: rng}
	drop := distuv.Beta{Alpha: p.A, Beta: p.B, Src: rng}
	tr := Trend{Origin: origin, Beta: beta}
	inv := func(tau float64) float64 { // calendar weeks at operational time tau
		if beta == 0 {
			return tau
		}
		return math.Log1p(beta*tau) / beta
	}
	at := func(u float64) time.Time { return Day(origin.Add(time.Duration(u * float64(week)))) }
	out := map[string][]time.Time{}
	for i := range n {
		first := at(12 * rng.Float64())
		days := []time.Time{first}
		l, q := lam.Rand(), drop.Rand()
		tau := tr.op(first)
		for {
			tau += rng.ExpFloat64() / l
			if beta < 0 && 1+beta*tau <= 0 {
				break
			}
			u := inv(tau)
			if u > 78 {
				break
			}
			days = append(days, at(u))
			if rng.Float64() < q {
				break
			}
		}
		out[fmt.Sprintf("c%05d", i)] = days
	}
	return out
}

// On data that follow BG/NBD, the holdout forecast is close to what
// happened, in total and by calibration frequency.
func TestEvaluateSimulated(t *testing.T) {
	days := simulateDays(cdnow, 0, 30_000, 11)
	calEnd, holdEnd := origin.AddDate(0, 0, 272), origin.AddDate(0, 0, 545)
	ev, err := Evaluate(days, calEnd, holdEnd, ModelBGNBD)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v; actual %d, predicted %.0f; errors %+v", ev.Model.Params, ev.HoldoutActual, ev.HoldoutPredicted, ev.Errors)
	if math.Abs(ev.Errors.Total) > 0.05 {
		t.Errorf("holdout total off by %.1f%%", 100*ev.Errors.Total)
	}
	for _, g := range ev.ByFrequency[:5] {
		if math.Abs(g.Predicted-g.Actual) > 0.1*g.Actual+0.03 {
			t.Errorf("x=%s: predicted %.3f, actual %.3f", g.X, g.Predicted, g.Actual)
		}
	}
	last := ev.Weekly[len(ev.Weekly)-1]
	if !last.Holdout || last.End != Day(holdEnd) || math.Abs(last.Predicted-float64(last.Actual)) > 0.05*float64(last.Actual) {
		t.Errorf("last week %+v", last)
	}
}

// The trend model finds a trend that is there, and finds none where there
// is none.
func TestTrendRecovered(t *testing.T) {
	for _, beta := range []float64{0, 0.01} {
		days := simulateDays(cdnow, beta, 30_000, 5)
		var panel [][]time.Time
		for _, id := range slices.Sorted(maps.Keys(days)) {
			panel = append(panel, Days(days[id]))
		}
		m, err := FitModel(ModelTrend, panel, origin.AddDate(0, 0, 545))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(m.Trend.Beta-beta) > 0.003 {
			t.Errorf("trend %.4f a week, simulated %.4f", m.Trend.Beta, beta)
		}
	}
}
