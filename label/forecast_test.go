package label

import (
	"math"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/forecast"
)

var fitted = forecast.Model{Name: "bgnbd", Params: forecast.Params{R: 0.2516, Alpha: 4.789, A: 0.7234, B: 2.161}, N: 23570}

func purchases(now time.Time, ago ...int) []Event {
	var evs []Event
	for _, d := range ago {
		evs = append(evs, Event{Type: "purchase", Time: now.Add(-time.Duration(d) * 24 * time.Hour)})
	}
	return evs
}

func TestForecastScore(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	l := &catalog.Label{ID: "f", Kind: catalog.KindBGNBD, Version: 2, Event: "purchase", Horizon: catalog.Duration(91 * 24 * time.Hour),
		Name: catalog.Text{"zh-CN": "购买预测", "en": "Purchase forecast"}}
	for _, tc := range []struct {
		name      string
		events    []Event
		ok        bool
		purchases int
	}{
		{"none", nil, false, 0},
		{"other types only", []Event{{Type: "view", Time: now.Add(-time.Hour)}}, false, 0},
		{"future purchase ignored", purchases(now, -3), false, 0},
		{"one", purchases(now, 100), true, 1},
		{"same day counts once", append(purchases(now, 100, 40), Event{Type: "purchase", Time: now.Add(-40*24*time.Hour + time.Minute)}), true, 2},
	} {
		f, ok, err := Score(fitted, now, "purchase", tc.events, now, time.Duration(l.Horizon))
		if err != nil || ok != tc.ok || f.Purchases != tc.purchases {
			t.Errorf("%s: %+v %v %v", tc.name, f, ok, err)
			continue
		}
		if !ok {
			continue
		}
		c, _ := forecast.Summarise(forecast.Days(timesOf(tc.events)), now)
		want, _ := fitted.Params.Conditional(c, 13)
		if math.Abs(f.Expected-want) > 1e-12 || f.HorizonWeeks != 13 || f.Alive != fitted.Params.PAlive(c) {
			t.Errorf("%s: expected %v, want %v over 13 weeks", tc.name, f.Expected, want)
		}
		v := f.Value(l, "purchase", now)
		if v.Score != f.Expected || v.Confidence != f.Alive || v.Version != 2 || v.Forecast == nil || v.EventCount != tc.purchases {
			t.Errorf("%s: value %+v", tc.name, v)
		}
	}
}

func timesOf(evs []Event) []time.Time {
	var out []time.Time
	for _, e := range evs {
		if e.Type == "purchase" {
			out = append(out, e.Time)
		}
	}
	return out
}

// The per-subject cost of a forecast in derivation: summarise the
// purchases, compute the conditional expectation and P(alive), and build
// the explained value.
func BenchmarkForecastValue(b *testing.B) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	l := &catalog.Label{ID: "f", Kind: catalog.KindBGNBD, Version: 1, Event: "purchase", Horizon: catalog.Duration(90 * 24 * time.Hour)}
	evs := purchases(now, 300, 250, 200, 120, 90, 30)
	for b.Loop() {
		f, _, err := Score(fitted, now, "purchase", evs, now, 90*24*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		f.Value(l, "purchase", now)
	}
}
