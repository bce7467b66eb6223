package monitor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

// TestFairnessHalt: decisions of a high-tier decision use-case whose
// impact ratio is below the rule pack's, at a p-value below its, in the
// pack's number of consecutive runs (3 in the default pack) halt the
// use-case pending review (the gate then refuses it: TestGate in apply) — without the company's AutoHalt, since the
// threshold is the regulator's — on record; fewer runs do not (FP-4, AD-7).
func TestFairnessHalt(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) portrait.Store) {
		{
			ctx := context.Background()
			e := newEnvOn(t, open(t), monitor.Options{})
			e.population() // men approved 4 in 5, women 1 in 4
			svc, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.led, Keys: e.keys, Log: e.log}, apply.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := monitor.New(monitor.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Halter: svc}, monitor.Options{EscalateAfter: 100})
			if err != nil {
				t.Fatal(err)
			}
			runs := e.point.Catalog().Pack().Alerts.Fairness.ConsecutiveRuns
			if runs < 2 {
				t.Fatalf("the default pack halts after %d runs", runs)
			}
			var rep *monitor.Report
			for i := 1; i <= runs; i++ {
				if rep, err = m.Run(ctx, e.now); err != nil {
					t.Fatal(err)
				}
				_, halted := e.point.Suspended(apply.KindHalt, "loan")
				if i < runs && (halted || len(rep.Escalations) != 0) {
					t.Fatalf("run %d of %d: halted %v, escalations %+v", i, runs, halted, rep.Escalations)
				}
			}
			if len(rep.Escalations) != 1 || rep.Escalations[0].Kind != "fairness" || rep.Escalations[0].Actions["loan"] != "halted" {
				t.Fatalf("run %d: escalations %+v", runs, rep.Escalations)
			}
			h, halted := e.point.Suspended(apply.KindHalt, "loan")
			if !halted || !strings.Contains(h.Reason, "FP-4") || h.By != "admin:monitor-autohalt" {
				t.Fatalf("halt = %+v, %v", h, halted)
			}
			var found bool
			for _, r := range e.records("escalation") {
				found = found || r.Action == "unfair_decisions" && r.Detail["usecase"] == "loan" && r.Codes[0] == "FP-4"
			}
			if !found {
				t.Error("no escalation record of the fairness halt")
			}
			// The next run finds it halted and does not halt again.
			if rep, err = m.Run(ctx, e.now); err != nil || rep.Escalations[0].Actions["loan"] != "already_halted" {
				t.Errorf("next run: %+v, %v", rep.Escalations, err)
			}
		}
	})
}

// eachStore runs f on SQLite and, where PORTRAIT_TEST_POSTGRES is set, on
// PostgreSQL (invariant 7).
func eachStore(t *testing.T, f func(t *testing.T, open func(*testing.T) portrait.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, func(t *testing.T) portrait.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portrait.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(t, func(t *testing.T) portrait.Store {
			s, err := postgres.Open(context.Background(), storetest.PostgresDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
}
