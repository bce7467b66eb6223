package apply_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
)

// A decision through a purchase forecast (AD-2, AD-4): declared in the
// catalog as the use-case's model, it decides on the subject's stored
// forecast, explains itself in both languages with the forecast's own
// explanation, is recorded and can be appealed to a human (AD-3); after a
// withdrawal it is refused (CN-4).
func TestDecideOnForecast(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	var evs []portrait.Event
	for i := range 20 {
		id := fmt.Sprintf("cust%02d", i)
		e.grant(id, "marketing")
		for j := range 1 + i%4 {
			at := now.Add(-time.Duration(24*(7+i*5+j*17)) * time.Hour)
			evs = append(evs, portrait.Event{SubjectID: id, Type: "purchase", Time: at, Fields: map[string]any{"item": "x", "amount": 10.0}})
		}
	}
	e.events(evs...)
	p := e.keys.Pseudonym("cust07")
	e.svc.ShowNotice(ctx, operator, p, "retention_offer")
	if _, err := e.svc.Determine(ctx, operator, p, "retention_offer"); portrait.ErrorCode(err) != portrait.EINVALID || !strings.Contains(err.Error(), "run derivation") {
		t.Fatalf("before derivation: %v, want a refusal naming derivation", err)
	}
	eng, err := derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.All(ctx, nil); err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Determine(ctx, operator, p, "retention_offer")
	if err != nil {
		t.Fatal(err)
	}
	vs, _, err := eng.Portrait(ctx, operator, p, "marketing", policy.Read)
	if err != nil {
		t.Fatal(err)
	}
	var f *derive.View
	for i := range vs {
		if vs[i].Label == "purchase_forecast" {
			f = &vs[i]
		}
	}
	if f == nil || d.Score == nil || *d.Score != f.Forecast.Alive || *d.Outcome != (f.Forecast.Alive >= 0.5) || d.Model != "purchase_forecast" ||
		d.Features["purchases"] != float64(f.Forecast.Purchases) {
		t.Fatalf("decision %+v on forecast %+v", d, f)
	}
	// AD-4: the contributions are the log-odds terms of P(alive).
	if k := d.Contributions["purchases"] + d.Contributions["weeks_since_last"]; f.Forecast.Summary.X > 0 &&
		math.Abs(1/(1+math.Exp(-k))-f.Forecast.Alive) > 1e-6 {
		// 1e-6: this small, even population drives r and α towards
		// infinity (no spread in rates), which amplifies rounding.
		t.Errorf("contributions %v do not add up to P(alive) %v", d.Contributions, f.Forecast.Alive)
	}
	for lang, want := range map[string][]string{"en": {"BG/NBD", "still an active customer", "most recently on"}, "zh-CN": {"BG/NBD", "活跃顾客", "因此预计"}} {
		for _, w := range want {
			if !strings.Contains(d.Explanation[lang], w) {
				t.Errorf("%s explanation lacks %q: %s", lang, w, d.Explanation[lang])
			}
		}
	}
	rv, err := review.New(review.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, review.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rv.Appeal(ctx, policy.Caller{Role: policy.Subject, Pseudonym: p}, d.ID, review.KindAppeal, "I still buy, in another shop of yours")
	if err != nil || r.DeterminationID != d.ID {
		t.Fatalf("appeal: %+v %v", r, err)
	}
	if got, _ := e.store.DeterminationByID(ctx, d.ID); got.Status != apply.StatusPendingReview && got.Status != apply.StatusAutomated {
		t.Errorf("after appeal: %+v", got)
	}

	// CN-4: after a withdrawal, no decision on the forecast.
	if _, err := e.ledger.Record(ctx, operator, consent.ByID("cust07"), consent.Change{Purpose: "marketing", Status: policy.Withdrawn, NoticeVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Determine(ctx, operator, p, "retention_offer")
	wantErr(t, err, portrait.EDENIED, "CN-4", "")
}
