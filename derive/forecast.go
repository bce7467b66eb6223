package derive

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/forecast"
	"github.com/portrait-dev/portrait/label"
)

// bgModel is a fitted purchase forecast (BG/NBD) of one label version.
type bgModel struct {
	m  forecast.Model
	at time.Time
}

// purchases keeps a subject's events of the label's purchase type up to
// now, without their fields: a forecast reads only when they happened.
func purchases(en *entry, events []label.Event, now time.Time) []label.Event {
	var out []label.Event
	for _, ev := range events {
		if ev.Type == en.l.Event && !ev.Time.After(now) {
			out = append(out, label.Event{Type: ev.Type, Time: ev.Time})
		}
	}
	return out
}

// fitBG fits BG/NBD over the members that have purchased, observed until
// now: the population the label's purposes allowed, and no one else.
func fitBG(ms []member, now time.Time) (*bgModel, error) {
	var panel [][]time.Time
	for _, m := range ms {
		var times []time.Time
		for _, ev := range m.events {
			times = append(times, ev.Time)
		}
		if d := forecast.Days(times); len(d) > 0 {
			panel = append(panel, d)
		}
	}
	fm, err := forecast.FitModel(forecast.ModelBGNBD, panel, now)
	if err != nil {
		return nil, err
	}
	return &bgModel{m: fm, at: now}, nil
}

// recordFit appends the fitted model — label, version, parameters and fit
// statistics, nothing about any one subject — to the audit log, so that
// every forecast value can be traced to the model that made it.
func (e *Engine) recordFit(ctx context.Context, en *entry, bg *bgModel) error {
	return e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := checkFence(ctx, tx, nil); err != nil {
			return err
		}
		_, err := e.log.Append(ctx, tx, audit.Record{Kind: "derive", Time: bg.at, Actor: "system:derive", Action: "fit",
			Detail: map[string]any{"label": en.l.ID, "version": en.l.Version, "model": bg.m.Name,
				"params": bg.m.Params, "log_likelihood": bg.m.LogLik, "customers": bg.m.N, "time_unit": "week",
				"horizon": en.l.Horizon.String(), "fit_ms": bg.m.Elapsed.Milliseconds()}})
		return err
	})
}

// value forecasts one subject; ok is false if the subject never bought.
func (b *bgModel) value(en *entry, events []label.Event, now time.Time) (Stored, bool, error) {
	f, ok, err := label.Score(b.m, b.at, en.l.Event, events, now, time.Duration(en.l.Horizon))
	if err != nil || !ok {
		return Stored{}, ok, err
	}
	v := f.Value(en.l, en.l.Event, now)
	if en.l.TTL > 0 {
		v.Expires = now.Add(time.Duration(en.l.TTL))
	}
	return Stored{Value: v}, true, nil
}
