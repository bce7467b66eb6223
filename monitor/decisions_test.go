package monitor_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/fairness"
	"github.com/portrait-dev/portrait/monitor"
)

// review closes the stored decision of subject id as a reviewer would.
func (e *env) review(id, status string) {
	e.t.Helper()
	ctx := context.Background()
	err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.SetDeterminationStatus(ctx, fmt.Sprintf("d-%s-0", id), status)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// approved is the automated outcome population gives subject i.
func approved(i int) bool { return i%2 == 1 && i%5 != 0 || i%2 == 0 && i%8 == 0 }

// income is the postcode_income population gives subject i.
func income(i int) float64 {
	x := 3000.0 + float64(i%7)*10
	if i%2 == 1 {
		x += 3000
	}
	return x
}

// loanModel is the test catalog's loan_score, written out independently:
// logistic, intercept −0.9, weight 0.0002, threshold 0.5.
func loanModel(x float64) bool { return 1/(1+math.Exp(-(-0.9+0.0002*x))) >= 0.5 }

// TestDecisionFairness audits stored decisions joined with protected
// attributes, with review verdicts as the known outcomes, and re-runs the
// declared model with the protected attribute and the flagged proxy
// changed (FP-3, FP-4, FP-6).
func TestDecisionFairness(t *testing.T) {
	e := newEnv(t, monitor.Options{})
	e.population()
	// A third of the decisions were reviewed: odd ones upheld, even ones
	// overturned.
	type verdict struct{ known, final bool }
	verdicts := map[int]verdict{}
	for i := 0; i < 120; i += 3 {
		status, final := "upheld", approved(i)
		if i%2 == 0 {
			status, final = "overturned", !approved(i)
		}
		e.review(fmt.Sprintf("s%03d", i), status)
		verdicts[i] = verdict{true, final}
	}
	rep, err := e.mon.Run(context.Background(), e.now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fairness.UseCases) != 1 {
		t.Fatalf("fairness: %+v", rep.Fairness)
	}
	u := rep.Fairness.UseCases[0]
	if u.OutcomesKnown != 40 || u.OutcomeSource != monitor.OutcomeReview || u.Audit == nil {
		t.Fatalf("outcomes known %d from %q; audit %v; note %q", u.OutcomesKnown, u.OutcomeSource, u.Audit != nil, u.Note)
	}
	// False-positive and false-negative rates per sex, counted here from
	// the fixture.
	for _, sex := range []string{"F", "M"} {
		var fp, neg, fn, pos int
		for i, v := range verdicts {
			if []string{"F", "M"}[i%2] != sex || !v.known {
				continue
			}
			if v.final {
				pos++
				if !approved(i) {
					fn++
				}
			} else {
				neg++
				if approved(i) {
					fp++
				}
			}
		}
		g := group(u, "sex", sex)
		if g == nil || g.ErrorRates == nil {
			t.Fatalf("no error rates for sex=%s", sex)
		}
		check := func(name string, got *float64, num, den int) {
			if den == 0 {
				if got != nil {
					t.Errorf("sex=%s %s: %v with no denominator", sex, name, *got)
				}
				return
			}
			if got == nil || math.Abs(*got-float64(num)/float64(den)) > 1e-12 {
				t.Errorf("sex=%s %s: got %v, want %d/%d", sex, name, got, num, den)
			}
		}
		check("false-positive rate", g.FalsePositiveRate, fp, neg)
		check("false-negative rate", g.FalseNegativeRate, fn, pos)
	}

	// The flip tests: sex and age band are not model inputs, so changing
	// them flips nothing; postcode_income, flagged as a proxy of sex, is,
	// and moving it to the other sex's level flips what the model says.
	flips := map[string]monitor.FlipCheck{}
	for _, f := range u.Flips {
		flips[f.Kind+":"+f.Changed] = f
	}
	for _, tc := range []struct {
		key   string
		evals int
	}{{"protected:sex", 120}, {"protected:age_band", 240}} {
		f, ok := flips[tc.key]
		if !ok || f.Result == nil || f.Result.Flips != 0 || f.Result.Evaluations != tc.evals {
			t.Errorf("%s: %+v", tc.key, f)
		}
	}
	want := 0
	for i := range 120 {
		other := income(i + 1) // a subject of the other sex
		if loanModel(income(i)) != loanModel(other) {
			want++
		}
	}
	p, ok := flips["proxy:postcode_income"]
	if !ok || p.Result == nil || p.Protected != "sex" || p.Result.Flips != want || p.Result.Evaluations != 120 {
		t.Fatalf("proxy flip: %+v (want %d flips of 120)", p, want)
	}
	var alert *monitor.Alert
	for i, a := range rep.Alerts {
		if a.Metric == "proxy_flip_rate" {
			alert = &rep.Alerts[i]
		}
	}
	if alert == nil || alert.Requirement != "FP-6" || alert.Scope != "loan/flip:postcode_income~sex" || alert.Value != float64(want)/120 {
		t.Errorf("proxy flip alert: %+v", alert)
	}
	logged := false
	for _, r := range e.records("alert") {
		logged = logged || r.Detail["metric"] == "proxy_flip_rate"
	}
	if !logged {
		t.Error("the proxy flip alert is not in the audit log")
	}
}

// TestDecisionFairnessOneVerdict: with a single review verdict, error
// rates cannot be computed; the audit still runs, without them, and says
// why.
func TestDecisionFairnessOneVerdict(t *testing.T) {
	e := newEnv(t, monitor.Options{})
	e.population()
	e.review("s001", "upheld")
	rep, err := e.mon.Run(context.Background(), e.now)
	if err != nil {
		t.Fatal(err)
	}
	u := rep.Fairness.UseCases[0]
	if u.Audit == nil || u.OutcomesKnown != 0 || u.OutcomeSource != monitor.OutcomeNone || !strings.Contains(u.Note, "review verdicts left out") {
		t.Fatalf("one verdict: audit %v, known %d, source %q, note %q", u.Audit != nil, u.OutcomesKnown, u.OutcomeSource, u.Note)
	}
	if g := group(u, "sex", "F"); g == nil || g.ErrorRates != nil {
		t.Errorf("error rates without both verdicts: %+v", g)
	}
}

func group(u monitor.UseCaseFairness, attr, name string) *fairness.Group {
	for i, g := range u.Audit.Groups {
		if slices.Equal(g.Attributes, []string{attr}) && g.Name == name {
			return &u.Audit.Groups[i]
		}
	}
	return nil
}
