package storetest

import (
	portrait "github.com/portrait-dev/portrait"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// The catalog the suite's grants are decided against: one consent purpose
// and one contract purpose, so grants come from the real decision point.
var point = func() *policy.Point {
	cat := &catalog.Catalog{
		Version: "storetest",
		Purposes: []catalog.Purpose{
			{ID: "personalization", Basis: catalog.BasisConsent, NoticeVersion: "v1", DataUse: "personalize.content.profiling"},
			{ID: "service", Basis: catalog.BasisContract, DataUse: "essential.service.operations"},
		},
		Fields: []catalog.Field{
			{Name: "item", Category: "user.behavior.browsing_history", Purposes: []string{"service", "personalization"}, Retention: catalog.Duration(30 * 24 * time.Hour)},
			{Name: "city", Category: "user.location.imprecise", Purposes: []string{"personalization"}, Retention: catalog.Duration(365 * 24 * time.Hour), Profile: true},
			{Name: "age", Category: "user.demographic.age_range", Purposes: []string{"service"}, Retention: catalog.Duration(365 * 24 * time.Hour), Profile: true, Age: true},
		},
		EventTypes: []catalog.EventType{{ID: "view", Fields: []string{"item", "city"}}},
	}
	cat.Index()
	return policy.New(cat)
}()

// Grant asks the decision point for a grant of action on pseudonym's data,
// limited to fields when any are given. Collect grants come from
// Point.Collect for a subject who consented to personalization; Read,
// Derive and Use are for the contract purpose "service"; the rights
// actions and Sweep are asked for by Portrait's system role.
func Grant(tb testing.TB, pseudonym portrait.Pseudonym, action policy.Action, fields ...string) policy.Grant {
	tb.Helper()
	st := &policy.State{
		Pseudonym:       pseudonym,
		Consents:        map[string]policy.Consent{"personalization": {Status: policy.Granted, NoticeVersion: "v1", At: time.Now()}},
		Personalization: 100,
	}
	caller := policy.Caller{Role: policy.System}
	if action == policy.Collect {
		if fields == nil {
			fields = []string{"item", "city", "age"}
		}
		g, dropped, err := point.Collect(st, fields, caller)
		if err != nil || len(dropped) > 0 || !g.Valid() {
			tb.Fatalf("collect grant for %s: err %v, dropped %v", pseudonym, err, dropped)
		}
		return g
	}
	req := policy.Request{State: st, Action: action, Fields: fields, Caller: caller}
	switch action {
	case policy.Read, policy.Derive, policy.Use:
		req.Purpose = "service"
		if action == policy.Derive {
			req.Purpose = "personalization"
		}
	}
	d := point.Decide(req)
	if err := d.Err(); err != nil {
		tb.Fatalf("%s grant for %s: %v", action, pseudonym, err)
	}
	return d.Grant
}
