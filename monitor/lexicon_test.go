package monitor_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/policy"
)

// TestLexiconFlag: a term of the rule pack's lexicon in a field declared
// non-sensitive keeps the event and holds the field sensitive — derived
// from or used only for purposes with separate consent — until a reviewer
// clears it, exactly as a proxy flag (one owner: the monitor's run does
// not drop it); a cleared field is not flagged again for the same term,
// and /metrics counts the flag (SM-1, FP-6).
func TestLexiconFlag(t *testing.T) {
	eachStore(t, func(t *testing.T, open func(*testing.T) portrait.Store) {
		ctx := context.Background()
		e := newEnvOn(t, open(t), monitor.Options{})
		in := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.led, Keys: e.keys, Log: e.log}, ingest.Options{Flags: e.mon})
		send := func(item string) {
			t.Helper()
			res, _, err := in.Ingest(ctx, operator, []ingest.Item{{Event: portrait.Event{SubjectID: "s1", Type: "view", Time: e.now.Add(-time.Minute),
				Fields: map[string]any{"item": item, "category": "food"}}}})
			if err != nil || res[0].Status != ingest.Accepted {
				t.Fatalf("ingest %q: %+v, %v", item, res, err)
			}
		}
		uses := func() (bool, string) {
			st := &policy.State{Pseudonym: "ps", Personalization: 100, Consents: map[string]policy.Consent{}}
			d := e.point.Decide(policy.Request{State: st, Purpose: "service", Fields: []string{"item"}, Action: policy.Derive, Caller: policy.Caller{Role: policy.System}})
			if d.Allow {
				return true, ""
			}
			return false, d.Reasons[0].Code
		}
		send("sku-1")
		if ok, code := uses(); !ok {
			t.Fatalf("before any hit: %s", code)
		}
		send("清真牛肉 500g") // a lexicon term: stored, and the field held
		if ok, code := uses(); ok || code != "proxy_flagged" {
			t.Fatalf("after a lexicon hit: allowed=%v %s", ok, code)
		}
		if n := counter(t, in.LexiconFlags()); n != 1 {
			t.Errorf("flag counter = %v", n)
		}
		// The monitor's run publishes its own proxies and keeps this one.
		if _, err := e.mon.Run(ctx, e.now); err != nil {
			t.Fatal(err)
		}
		if ok, _ := uses(); ok {
			t.Fatal("the monitor's run dropped the lexicon flag")
		}
		// Another node's monitor learns it from the log.
		other, err := monitor.New(monitor.Deps{Store: e.store, Point: policy.New(e.point.Catalog()), Keys: e.keys, Log: e.log}, monitor.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Load(ctx); err != nil || !other.Sensitive("item") {
			t.Fatalf("other node: sensitive=%v, %v", other.Sensitive("item"), err)
		}
		if _, err := e.mon.ClearProxy(ctx, operator, "item", "food names"); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Errorf("an operator cleared the flag: %v", err)
		}
		if _, err := e.mon.ClearProxy(ctx, reviewer, "item", "清真 names food products here, not customers"); err != nil {
			t.Fatal(err)
		}
		if ok, code := uses(); !ok {
			t.Fatalf("after clearance: %s", code)
		}
		send("清真羊肉") // the same term again: the reviewer's clearance stands
		if ok, _ := uses(); !ok || counter(t, in.LexiconFlags()) != 1 {
			t.Error("a cleared field was flagged again for the same term")
		}
	})
}

// counter reads c's value through a registry, as /metrics would.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}
