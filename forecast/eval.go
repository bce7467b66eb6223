package forecast

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// Evaluation is a model fitted on a calibration period and checked on the
// holdout period after it, with the figures of FHL 2005.
type Evaluation struct {
	Model            Model     `json:"fit"`
	CalibrationStart time.Time `json:"calibration_start"`
	CalibrationEnd   time.Time `json:"calibration_end"`
	HoldoutEnd       time.Time `json:"holdout_end"`
	Customers        int       `json:"customers"`
	// CalibrationRepeat counts the repeat transactions (distinct purchase
	// days after each customer's first) up to the calibration end.
	CalibrationRepeat int `json:"calibration_repeat_transactions"`
	// HoldoutActual counts the transactions of the same customers in the
	// holdout; HoldoutPredicted sums their conditional expectations.
	HoldoutActual    int     `json:"holdout_actual"`
	HoldoutPredicted float64 `json:"holdout_predicted"`
	Errors           Errors  `json:"errors"`
	Weekly           []Week  `json:"weekly"`
	ByFrequency      []Group `json:"by_frequency"`
}

// Errors are the holdout error measures.
type Errors struct {
	// Total is (predicted − actual) / actual of the holdout total.
	Total float64 `json:"total_relative"`
	// MAE and RMSE are per customer, over the holdout.
	MAE  float64 `json:"mae_per_customer"`
	RMSE float64 `json:"rmse_per_customer"`
	// WeeklyMAE is the mean absolute error of the repeat transactions per
	// holdout week, from the tracking forecast.
	WeeklyMAE float64 `json:"weekly_mae"`
}

// Week is the cumulative repeat transactions by the end of a week, actual
// and forecast from the model's unconditional expectation.
type Week struct {
	N         int       `json:"week"`
	End       time.Time `json:"end"`
	Actual    int       `json:"actual"`
	Predicted float64   `json:"predicted"`
	Holdout   bool      `json:"holdout"`
}

// Group is the customers with one calibration frequency ("7+" for seven or
// more): mean holdout transactions, actual and conditionally expected.
type Group struct {
	X         string  `json:"x"`
	Customers int     `json:"customers"`
	Actual    float64 `json:"actual"`
	Predicted float64 `json:"predicted"`
}

// Evaluate fits model on the purchase days up to calEnd (inclusive) and
// compares its forecasts with the purchases in (calEnd, holdEnd]. Only
// customers whose first purchase is in the calibration period count.
func Evaluate(days map[string][]time.Time, calEnd, holdEnd time.Time, model string) (*Evaluation, error) {
	calEnd, holdEnd = Day(calEnd), Day(holdEnd)
	if !holdEnd.After(calEnd) {
		return nil, fmt.Errorf("forecast: holdout end %s is not after the calibration end %s", holdEnd.Format(time.DateOnly), calEnd.Format(time.DateOnly))
	}
	var panel [][]time.Time
	for _, id := range slices.Sorted(maps.Keys(days)) {
		d := Days(days[id])
		if len(d) > 0 && !d[0].After(calEnd) {
			panel = append(panel, d)
		}
	}
	if len(panel) == 0 {
		return nil, fmt.Errorf("forecast: no customer bought by the calibration end %s", calEnd.Format(time.DateOnly))
	}
	m, err := FitModel(model, panel, calEnd)
	if err != nil {
		return nil, err
	}
	ev := &Evaluation{Model: m, CalibrationEnd: calEnd, HoldoutEnd: holdEnd, Customers: len(panel),
		CalibrationStart: m.Trend.Origin}
	h := Weeks(holdEnd.Sub(calEnd))
	type group struct{ n, act, pred float64 }
	groups := make([]group, 8)
	var sqErr, absErr float64
	for _, d := range panel {
		c, ok := m.Customer(d, calEnd)
		if !ok {
			continue
		}
		ev.CalibrationRepeat += c.X
		act := 0
		for _, t := range d {
			if t.After(calEnd) && !t.After(holdEnd) {
				act++
			}
		}
		pred, _, err := m.Predict(d, h)
		if err != nil {
			return nil, err
		}
		ev.HoldoutActual += act
		ev.HoldoutPredicted += pred
		absErr += math.Abs(pred - float64(act))
		sqErr += (pred - float64(act)) * (pred - float64(act))
		g := &groups[min(c.X, 7)]
		g.n++
		g.act += float64(act)
		g.pred += pred
	}
	n := float64(len(panel))
	ev.Errors = Errors{MAE: absErr / n, RMSE: math.Sqrt(sqErr / n),
		Total: (ev.HoldoutPredicted - float64(ev.HoldoutActual)) / math.Max(1, float64(ev.HoldoutActual))}
	for x, g := range groups {
		name := strconv.Itoa(x)
		if x == 7 {
			name = "7+"
		}
		gr := Group{X: name, Customers: int(g.n)}
		if g.n > 0 {
			gr.Actual, gr.Predicted = g.act/g.n, g.pred/g.n
		}
		ev.ByFrequency = append(ev.ByFrequency, gr)
	}
	if ev.Weekly, err = tracking(m, panel, calEnd, holdEnd); err != nil {
		return nil, err
	}
	var weekly float64
	var weeks int
	for i, w := range ev.Weekly {
		if !w.Holdout || i == 0 {
			continue
		}
		prev := ev.Weekly[i-1]
		weekly += math.Abs((w.Predicted - prev.Predicted) - float64(w.Actual-prev.Actual))
		weeks++
	}
	if weeks > 0 {
		ev.Errors.WeeklyMAE = weekly / float64(weeks)
	}
	return ev, nil
}

// tracking is the cumulative repeat transactions by week, from the
// earliest first purchase to the holdout end: actual, and the sum over
// customers of the expected transactions since each one's first purchase,
// E[X(τ(end) − τ(first))], computed once per first day.
func tracking(m Model, panel [][]time.Time, calEnd, holdEnd time.Time) ([]Week, error) {
	start := m.Trend.Origin
	firsts := map[time.Time]int{}
	var repeats []time.Time
	for _, d := range panel {
		firsts[d[0]]++
		repeats = append(repeats, d[1:]...)
	}
	var out []Week
	for k := 1; ; k++ {
		end := start.AddDate(0, 0, 7*k-1) // the last day of week k
		if end.After(holdEnd) {
			end = holdEnd
		}
		w := Week{N: k, End: end, Holdout: end.After(calEnd)}
		for _, t := range repeats {
			if !t.After(end) {
				w.Actual++
			}
		}
		for f, count := range firsts {
			if f.After(end) {
				continue
			}
			// Measured as the calibration summaries measure T.
			e, err := m.Params.Expected(m.Trend.Span(f, end))
			if err != nil {
				return nil, err
			}
			w.Predicted += float64(count) * e
		}
		out = append(out, w)
		if !end.Before(holdEnd) {
			return out, nil
		}
	}
}
