package forecast

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

const week = 7 * 24 * time.Hour

// Weeks is d in weeks, the time unit of every model here.
func Weeks(d time.Duration) float64 { return d.Hours() / (24 * 7) }

// Day is t's calendar day (UTC): purchases on one day are one transaction.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Days returns the distinct calendar days of times, sorted.
func Days(times []time.Time) []time.Time {
	out := make([]time.Time, len(times))
	for i, t := range times {
		out[i] = Day(t)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, func(a, b time.Time) bool { return a.Equal(b) })
}

// Summarise returns the calibration summary of a customer who bought on
// the sorted distinct days, observed until end (inclusive), in the
// operational time of trend; ok is false if the first purchase is after end.
// sumU is the sum of the calendar weeks (from trend's origin) of the repeat
// transactions, which the trend's likelihood needs.
func (tr Trend) Summarise(days []time.Time, end time.Time) (c Customer, sumU float64, ok bool) {
	if len(days) == 0 || days[0].After(end) {
		return c, 0, false
	}
	first, last := days[0], days[0]
	for _, d := range days[1:] {
		if d.After(end) {
			break
		}
		c.X++
		last = d
		sumU += tr.calendar(d)
	}
	c.TX = tr.Span(first, last)
	c.T = tr.Span(first, end)
	return c, sumU, true
}

// Summarise is the BG/NBD summary of days observed until end.
func Summarise(days []time.Time, end time.Time) (Customer, bool) {
	c, _, ok := Trend{Origin: end}.Summarise(days, end)
	return c, ok
}

// Trend is a common calendar-time trend in the purchase rates: at u
// calendar weeks after Origin a customer with rate λ buys at λ·e^(Beta·u).
// The BG/NBD process then runs in operational time τ(u) = (e^(βu) − 1)/β,
// which turns the model's closed forms into the trend model's. Beta = 0 is
// plain BG/NBD. A marketer reads it as "purchase rates change by
// e^(52β) − 1 a year across the customer base".
type Trend struct {
	Origin time.Time `json:"origin"`
	Beta   float64   `json:"beta_per_week"`
}

func (tr Trend) calendar(t time.Time) float64 { return Weeks(t.Sub(tr.Origin)) }

func (tr Trend) op(t time.Time) float64 {
	u := tr.calendar(t)
	if math.Abs(tr.Beta) < 1e-12 {
		return u
	}
	return math.Expm1(tr.Beta*u) / tr.Beta
}

// Span is the operational length of [from, to]. Without a trend it is the
// calendar length, whatever the origin.
func (tr Trend) Span(from, to time.Time) float64 {
	if tr.Beta == 0 {
		return Weeks(to.Sub(from))
	}
	return tr.op(to) - tr.op(from)
}

// Yearly is the trend as a yearly change: 0.1 is +10 % a year.
func (tr Trend) Yearly() float64 { return math.Expm1(52 * tr.Beta) }

// Models.
const (
	ModelBGNBD = "bgnbd"
	ModelTrend = "bgnbd_trend"
)

// Models lists the models Evaluate and FitModel accept.
var Models = []string{ModelBGNBD, ModelTrend}

// Model is a fitted forecasting model: BG/NBD parameters in the
// operational time of a trend (zero for plain BG/NBD).
type Model struct {
	Name    string        `json:"model"`
	Params  Params        `json:"params"`
	Trend   Trend         `json:"trend"`
	LogLik  float64       `json:"log_likelihood"`
	N       int           `json:"customers"`
	End     time.Time     `json:"calibration_end"`
	Fits    int           `json:"fits"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// FitModel fits model name to customers' purchase days (each sorted and
// distinct) observed until end. The trend's origin is the earliest first
// purchase; its β maximises the profile likelihood, found by golden-section
// search over [−0.05, 0.05] a week (a halving or doubling in 14 weeks),
// each step a BG/NBD fit in that operational time.
func FitModel(name string, days [][]time.Time, end time.Time) (Model, error) {
	start := time.Now()
	origin := time.Time{}
	for _, d := range days {
		if len(d) > 0 && (origin.IsZero() || d[0].Before(origin)) {
			origin = d[0]
		}
	}
	fit := func(beta float64) (Model, error) {
		tr := Trend{Origin: origin, Beta: beta}
		cs := make([]Customer, 0, len(days))
		var sumU float64
		for _, d := range days {
			if c, u, ok := tr.Summarise(d, end); ok {
				cs = append(cs, c)
				sumU += u
			}
		}
		f, err := FitBGNBD(cs)
		if err != nil {
			return Model{}, err
		}
		// The density of the repeat transactions in calendar time is the
		// operational one times the intensity e^(βu) at each of them.
		return Model{Name: name, Params: f.Params, Trend: tr, LogLik: f.LogLik + beta*sumU, N: f.N, End: end}, nil
	}
	var m Model
	var err error
	switch name {
	case ModelBGNBD:
		m, err = fit(0)
		m.Fits = 1
	case ModelTrend:
		m, err = golden(fit, -0.05, 0.05, 1e-5)
	default:
		return Model{}, fmt.Errorf("forecast: model %q: want one of %v", name, Models)
	}
	m.Elapsed = time.Since(start)
	return m, err
}

// golden maximises the log-likelihood of fit over β in [lo, hi].
func golden(fit func(float64) (Model, error), lo, hi, tol float64) (Model, error) {
	g := (math.Sqrt(5) - 1) / 2
	n := 0
	eval := func(b float64) (Model, error) { n++; return fit(b) }
	x1, x2 := hi-g*(hi-lo), lo+g*(hi-lo)
	m1, err := eval(x1)
	if err != nil {
		return Model{}, err
	}
	m2, err := eval(x2)
	if err != nil {
		return Model{}, err
	}
	for hi-lo > tol {
		if m1.LogLik > m2.LogLik {
			hi, x2, m2 = x2, x1, m1
			x1 = hi - g*(hi-lo)
			if m1, err = eval(x1); err != nil {
				return Model{}, err
			}
		} else {
			lo, x1, m1 = x1, x2, m2
			x2 = lo + g*(hi-lo)
			if m2, err = eval(x2); err != nil {
				return Model{}, err
			}
		}
	}
	best := m1
	if m2.LogLik > m1.LogLik {
		best = m2
	}
	if math.Abs(best.Trend.Beta-0.05) < 10*tol || math.Abs(best.Trend.Beta+0.05) < 10*tol {
		return best, errors.New("forecast: the trend is at the edge of its range (±0.05 a week): the data are not a steady customer base")
	}
	best.Fits = n
	return best, nil
}

// Customer is a customer's summary under the model, observed until at.
func (m Model) Customer(days []time.Time, at time.Time) (Customer, bool) {
	c, _, ok := m.Trend.Summarise(days, at)
	return c, ok
}

// Predict is the expected number of transactions in the h weeks after the
// calibration end of a customer with these purchase days, and P(alive).
func (m Model) Predict(days []time.Time, h float64) (expected, alive float64, err error) {
	c, ok := m.Customer(days, m.End)
	if !ok {
		return 0, 0, fmt.Errorf("forecast: first purchase after the calibration end")
	}
	end := m.End.Add(time.Duration(h * float64(week)))
	v, err := m.Params.Conditional(c, m.Trend.Span(m.End, end))
	return v, m.Params.PAlive(c), err
}
