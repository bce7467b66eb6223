package derive_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/forecast"
	"github.com/portrait-dev/portrait/policy"
)

// shoppers ingests purchases for n subjects over the 40 weeks before
// e.now, some buying often, some once; the first consenting ones consent
// to marketing, the purpose of purchase_forecast. It returns each
// subject's purchase times.
func shoppers(t *testing.T, e *env, n, consenting int) map[string][]time.Time {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, 7))
	out := map[string][]time.Time{}
	var evs []portrait.Event
	for i := range n {
		id := fmt.Sprintf("shopper%03d", i)
		if i < consenting {
			e.consent(t, id, "marketing", policy.Granted)
		}
		first := e.now.Add(-time.Duration(280*24*rng.Float64()) * time.Hour)
		times := []time.Time{first}
		rate := 0.05 + rng.ExpFloat64()*0.3 // a week
		for at := first; ; {
			at = at.Add(time.Duration(rng.ExpFloat64() / rate * float64(7*24*time.Hour)))
			if !at.Before(e.now) || rng.Float64() < 0.15 {
				break
			}
			times = append(times, at)
		}
		if i%7 == 0 && len(times) > 1 {
			times = append(times, times[1].Add(time.Hour)) // same day: one transaction
		}
		for _, at := range times {
			evs = append(evs, purchase(id, 10+float64(i), at))
		}
		out[id] = times
	}
	e.ingest(t, evs...)
	return out
}

// A bgnbd label end to end: fitted over the subjects whose consent allows
// its purpose and no one else, each consenting subject's forecast equal to
// the forecast package's on the same purchases, explained in Chinese and
// English, placed against the model for new purchases, and removed at
// once on withdrawal (CN-4) and objection.
func TestPurchaseForecast(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		bought := shoppers(t, e, 60, 45)
		if _, err := e.eng.All(ctx, nil); err != nil {
			t.Fatal(err)
		}
		now := e.now.UTC().Truncate(time.Microsecond)
		var panel [][]time.Time
		for i := range 45 {
			panel = append(panel, forecast.Days(bought[fmt.Sprintf("shopper%03d", i)]))
		}
		want, err := forecast.FitModel(forecast.ModelBGNBD, panel, now)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 60 {
			id := fmt.Sprintf("shopper%03d", i)
			if i >= 45 {
				if slices.Contains(e.stored(t, id), "purchase_forecast") {
					t.Errorf("%s has no consent but has a forecast", id)
				}
				continue
			}
			got, ok := e.labels(t, id, "marketing")["purchase_forecast"]
			if !ok || got.Forecast == nil {
				t.Fatalf("%s: no forecast; labels %v", id, e.stored(t, id))
			}
			f := got.Forecast
			// The same fit up to the order of summation.
			if !near(f.Params.R, want.Params.R) || !near(f.Params.Alpha, want.Params.Alpha) || !near(f.Params.A, want.Params.A) ||
				!near(f.Params.B, want.Params.B) || f.Customers != 45 {
				t.Fatalf("%s: fitted %+v over %d, want %+v over the 45 consenting", id, f.Params, f.Customers, want.Params)
			}
			days := forecast.Days(bought[id])
			exp, alive, err := want.Predict(days, forecast.Weeks(90*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if !near(f.Expected, exp) || !near(f.Alive, alive) || f.Purchases != len(days) ||
				got.Score != f.Expected || got.Confidence != f.Alive {
				t.Errorf("%s: forecast %+v, want expected %v, alive %v, %d purchase days", id, f, exp, alive, len(days))
			}
			zh, en := got.Explanation.In("zh-CN"), got.Explanation["en"]
			wantZH := fmt.Sprintf("您在过去共有%d次购买", len(days))
			if !strings.Contains(zh, wantZH) || !strings.Contains(zh, "最近一次在") || !strings.Contains(zh, "因此预计") ||
				!strings.Contains(en, "most recently on") || !strings.Contains(en, "next 90 days") {
				t.Errorf("%s: explanation %q / %q", id, zh, en)
			}
			if slices.Contains(got.Inputs, "amount") || got.Inputs[0] != "event:purchase" {
				t.Errorf("%s: inputs %v: a forecast reads only purchase times", id, got.Inputs)
			}
		}

		// A new purchase is placed against the fitted model at once.
		before := e.labels(t, "shopper001", "marketing")["purchase_forecast"].Forecast
		e.now = e.now.Add(24 * time.Hour)
		e.ingest(t, purchase("shopper001", 20, e.now.Add(-time.Hour)))
		after := e.labels(t, "shopper001", "marketing")["purchase_forecast"].Forecast
		if after.Purchases != before.Purchases+1 || after.Params != before.Params || after.Expected <= 0 {
			t.Errorf("after a purchase: %+v, before %+v", after, before)
		}

		// CN-4: withdrawal removes the forecast at once; objection too (SR-7).
		e.consent(t, "shopper002", "marketing", policy.Withdrawn)
		if got := e.stored(t, "shopper002"); slices.Contains(got, "purchase_forecast") {
			t.Errorf("after withdrawal: %v", got)
		}
		if _, err := e.eng.All(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := e.stored(t, "shopper002"); slices.Contains(got, "purchase_forecast") {
			t.Errorf("a batch run after withdrawal derived %v", got)
		}
		if f := e.labels(t, "shopper003", "marketing")["purchase_forecast"].Forecast; f == nil || f.Customers != 44 {
			t.Errorf("refit after withdrawal: %+v, want a model over the 44 still consenting", f)
		}
	})
}

// A population too small to fit is reported, and nothing of it stored.
func TestPurchaseForecastTooFew(t *testing.T) {
	e := newEnv(t)
	shoppers(t, e, 12, 5)
	sum, err := e.eng.All(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "purchase_forecast") || !strings.Contains(strings.Join(sum.Errors, ";"), "too few") {
		t.Fatalf("err %v, summary errors %v", err, sum.Errors)
	}
	if got := e.stored(t, "shopper000"); slices.Contains(got, "purchase_forecast") {
		t.Errorf("stored %v", got)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(math.Abs(b), 1e-3) }
