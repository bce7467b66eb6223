package label

import (
	"fmt"
	"math"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/forecast"
)

// Forecast is a subject's purchase forecast by a fitted BG/NBD model: the
// inputs it read (purchase days), the model it used, and what it
// predicts. It is stored with the label value, so the subject's export and
// the explanation carry everything that decided it.
type Forecast struct {
	Model string `json:"model"` // "bgnbd"
	// Fit identifies the fitted model: when, over how many subjects, its
	// parameters and log-likelihood (the fit statistics).
	FittedAt  time.Time       `json:"fitted_at"`
	Customers int             `json:"fit_customers"`
	Params    forecast.Params `json:"params"`
	LogLik    float64         `json:"fit_log_likelihood"`
	// Inputs: distinct purchase days, the first and the last.
	Purchases int       `json:"purchases"`
	First     time.Time `json:"first_purchase,omitzero"`
	Last      time.Time `json:"last_purchase,omitzero"`
	// Summary in weeks: repeat purchases x, tₓ and T.
	Summary forecast.Customer `json:"summary"`
	// Outputs.
	HorizonWeeks float64 `json:"horizon_weeks"`
	Expected     float64 `json:"expected_purchases"`
	Alive        float64 `json:"p_alive"`
}

// Score computes a subject's forecast from a fitted model: events of the
// purchase type up to now, same-day purchases counted once. A subject
// with no purchase gets none (ok false).
func Score(m forecast.Model, fittedAt time.Time, typ string, events []Event, now time.Time, horizon time.Duration) (f Forecast, ok bool, err error) {
	var times []time.Time
	for _, ev := range events {
		if ev.Type == typ && !ev.Time.After(now) {
			times = append(times, ev.Time)
		}
	}
	days := forecast.Days(times)
	if len(days) == 0 {
		return f, false, nil
	}
	c, _ := forecast.Summarise(days, now)
	h := forecast.Weeks(horizon)
	exp, alive, err := forecast.Model{Params: m.Params, End: now, Trend: forecast.Trend{Origin: now}}.Predict(days, h)
	if err != nil {
		return f, false, err
	}
	return Forecast{Model: m.Name, FittedAt: fittedAt, Customers: m.N, Params: m.Params, LogLik: m.LogLik,
		Purchases: len(days), First: days[0], Last: days[len(days)-1], Summary: c,
		HorizonWeeks: h, Expected: exp, Alive: alive}, true, nil
}

// Value is the label value of the forecast: Score is the expected number
// of purchases, Confidence the probability the subject is still an
// active customer, and one fact explains both in plain words.
func (f Forecast) Value(l *catalog.Label, typ string, now time.Time) Value {
	zhV, enV := verb(typ, true), verb(typ, false)
	days := func(t time.Time) int { return int(math.Floor(now.Sub(t).Hours() / 24)) }
	text := catalog.Text{
		"zh-CN": fmt.Sprintf("您在过去共有%d次%s（同一天的计为一次），最近一次在%s（%d天前），因此预计您在接下来的%s内%s约%.1f次；您仍是活跃顾客的可能性约为%.0f%%。这是根据全部顾客的购买规律（BG/NBD 模型）估算的，不是对您的评价。",
			f.Purchases, zhV, f.Last.Format("2006年1月2日"), days(f.Last), ahead(l.Horizon, true), zhV, f.Expected, 100*f.Alive),
		"en": fmt.Sprintf("you %s on %d days so far (several on one day count once), most recently on %s (%d days ago), so about %.1f more are expected in the next %s; the chance that you are still an active customer is about %.0f%%. This is estimated from the purchase patterns of all customers (the BG/NBD model), not a judgement of you.",
			enV, f.Purchases, f.Last.Format("2 January 2006"), days(f.Last), f.Expected, ahead(l.Horizon, false), 100*f.Alive),
	}
	return Value{Label: l.ID, Version: l.Version, Kind: catalog.KindBGNBD, Score: f.Expected, Confidence: f.Alive,
		Bool: f.Alive >= 0.5, Inputs: []string{"event:" + typ}, EventCount: f.Purchases, From: f.First, To: f.Last, Computed: now,
		Forecast: &f,
		Facts: []Fact{
			{Func: "forecast", Type: typ, Value: f.Expected, Text: text},
			{Func: "frequency", Type: typ, Window: "100y", Value: float64(f.Purchases)},
			{Func: "recency", Type: typ, Value: float64(days(f.Last))},
		}}
}

// ahead words a horizon: "90天" / "90 days".
func ahead(d catalog.Duration, zh bool) string {
	n := int64(time.Duration(d) / (24 * time.Hour))
	switch {
	case zh:
		return fmt.Sprintf("%d天", n)
	case n == 1:
		return "day"
	}
	return fmt.Sprintf("%d days", n)
}
