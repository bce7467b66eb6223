package monitor_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/monitor"
)

// TestPriceEscalation: a price alert on the same item and context in
// EscalateAfter consecutive runs recommends halting the pricing use-case,
// and with AutoHalt halts it through the apply service, on record (FP-1,
// AD-7).
func TestPriceEscalation(t *testing.T) {
	e := newEnv(t, monitor.Options{})
	e.population()
	ctx := context.Background()
	svc, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.led, Keys: e.keys, Log: e.log}, apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := monitor.New(monitor.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log}, monitor.Options{AutoHalt: true}); err == nil {
		t.Error("AutoHalt without a Halter accepted")
	}
	deps := monitor.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Halter: svc}
	advise, err := monitor.New(deps, monitor.Options{EscalateAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	halt, err := monitor.New(deps, monitor.Options{EscalateAfter: 2, AutoHalt: true})
	if err != nil {
		t.Fatal(err)
	}
	run := func(m *monitor.Monitor, at time.Time) *monitor.Report {
		t.Helper()
		rep, err := m.Run(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	// The population's loan decisions also escalate, as unfair (FP-4;
	// TestFairnessHalt): here only the price escalations count.
	price := func(rep *monitor.Report) []monitor.Escalation {
		var out []monitor.Escalation
		for _, x := range rep.Escalations {
			if x.Kind == "price" {
				out = append(out, x)
			}
		}
		return out
	}
	action := func(rep *monitor.Report) string {
		rep.Escalations = price(rep)
		if len(rep.Escalations) != 1 {
			return ""
		}
		x := rep.Escalations[0]
		if x.Item != "shoe<script>alert(1)</script>&\"" || x.Context != "web" || !slices.Equal(x.UseCases, []string{"dynamic_price"}) {
			t.Errorf("escalation: %+v", x)
		}
		return x.Actions["dynamic_price"]
	}

	// Without AutoHalt: the first alert is not yet a pattern; the second
	// recommends a halt and halts nothing.
	if rep := run(advise, e.now); len(price(rep)) != 0 {
		t.Fatalf("escalated after one run: %+v", rep.Escalations)
	}
	if got := action(run(advise, e.now)); got != "recommend_halt" {
		t.Fatalf("second run: action %q", got)
	}
	if _, halted := e.point.Suspended(apply.KindHalt, "dynamic_price"); halted {
		t.Fatal("halted without AutoHalt")
	}
	// A run with no alert (the price events are outside its look-back)
	// ends the streak.
	run(advise, e.now.Add(200*24*time.Hour))
	if rep := run(advise, e.now); len(price(rep)) != 0 {
		t.Fatalf("the streak survived a run without the alert: %+v", rep.Escalations)
	}

	// With AutoHalt: the second consecutive run halts the use-case
	// through apply; the halt and the escalation are on record, and the
	// gate refuses the use-case.
	run(halt, e.now)
	if got := action(run(halt, e.now)); got != "halted" {
		t.Fatalf("auto-halt: action %q", got)
	}
	h, halted := e.point.Suspended(apply.KindHalt, "dynamic_price")
	if !halted || h.By != "admin:monitor-autohalt" || !strings.Contains(h.Reason, "FP-1") {
		t.Fatalf("halt: %+v %v", h, halted)
	}
	var oversight int
	for _, r := range e.records("oversight") {
		if r.Action == "halt" && r.Detail["usecase"] == "dynamic_price" {
			oversight++
		}
	}
	var esc []audit.Record
	for _, r := range e.records("escalation") {
		if r.Action == "price_discrimination" {
			esc = append(esc, r)
		}
	}
	if oversight != 1 || len(esc) != 2 || esc[1].Codes[0] != "FP-1" || esc[1].Detail["actions"].(map[string]any)["dynamic_price"] != "halted" {
		t.Errorf("records: %d halts, escalations %+v", oversight, esc)
	}
	if _, err := svc.Gate(ctx, "dynamic_price", apply.KindRecommendation, nil); err == nil || !strings.Contains(err.Error(), "FP-1") {
		t.Errorf("gate after the halt: %v", err)
	}
	// A third run does not halt again.
	rep := run(halt, e.now)
	if got := action(rep); got != "already_halted" {
		t.Errorf("third run: action %q", got)
	}
	var buf bytes.Buffer
	if err := monitor.WriteHTML(&buf, rep, "en", nil); err != nil {
		t.Fatal(err)
	}
	if h := buf.String(); !strings.Contains(h, "dynamic_price: already halted") || strings.Contains(h, "<script>") {
		t.Errorf("HTML escalations:\n%.3000s", h)
	}
}
