package policy_test

import (
	"errors"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

func testCatalog() *catalog.Catalog {
	c := &catalog.Catalog{
		Purposes: []catalog.Purpose{
			{ID: "service", Basis: catalog.BasisContract, NoticeVersion: "1", DataUse: "essential.service"},
			{ID: "personalization", Basis: catalog.BasisConsent, NoticeVersion: "2", DataUse: "personalize.content.profiling"},
			{ID: "marketing", Basis: catalog.BasisConsent, NoticeVersion: "1", DataUse: "marketing.advertising.first_party.targeted"},
		},
		Fields: []catalog.Field{
			{Name: "item", Purposes: []string{"service", "personalization"}},
			{Name: "category", Purposes: []string{"personalization", "marketing"}},
			{Name: "email", Purposes: []string{"marketing"}},
		},
	}
	c.Index()
	return c
}

func granted(version string) policy.Consent {
	return policy.Consent{Status: policy.Granted, NoticeVersion: version, At: time.Now()}
}

func TestDecide(t *testing.T) {
	op := policy.Caller{Role: policy.Operator, ID: "op"}
	base := func() *policy.State {
		return &policy.State{Pseudonym: "p1", Personalization: 100,
			Consents: map[string]policy.Consent{"personalization": granted("2")}}
	}
	tests := []struct {
		name    string
		mutate  func(*policy.State)
		req     policy.Request
		allow   bool
		code    string
		require string
	}{
		{"consent granted", nil, policy.Request{Purpose: "personalization", Fields: []string{"category"}, Action: policy.Use}, true, "", ""},
		{"contract basis needs no consent", func(s *policy.State) { s.Consents = nil },
			policy.Request{Purpose: "service", Fields: []string{"item"}, Action: policy.Read}, true, "", ""},
		{"undeclared purpose", nil, policy.Request{Purpose: "resale", Action: policy.Use}, false, "undeclared_purpose", "CN-1"},
		{"undeclared field", nil, policy.Request{Purpose: "personalization", Fields: []string{"shoe_size"}, Action: policy.Read}, false, "undeclared_field", "CM-1"},
		{"field not for purpose", nil, policy.Request{Purpose: "personalization", Fields: []string{"email"}, Action: policy.Read}, false, "field_purpose", "CM-1"},
		{"no consent", nil, policy.Request{Purpose: "marketing", Action: policy.Use}, false, "no_consent", "CN-1"},
		{"withdrawn", func(s *policy.State) {
			s.Consents["personalization"] = policy.Consent{Status: policy.Withdrawn, NoticeVersion: "2"}
		}, policy.Request{Purpose: "personalization", Action: policy.Use}, false, "consent_withdrawn", "CN-4"},
		{"old notice version", func(s *policy.State) { s.Consents["personalization"] = granted("1") },
			policy.Request{Purpose: "personalization", Action: policy.Use}, false, "notice_changed", "CN-3"},
		{"minor without guardian", func(s *policy.State) { s.Minor = true },
			policy.Request{Purpose: "personalization", Action: policy.Use}, false, "guardian_required", "SM-3"},
		{"minor with guardian", func(s *policy.State) {
			s.Minor = true
			c := granted("2")
			c.Guardian = true
			s.Consents["personalization"] = c
		}, policy.Request{Purpose: "personalization", Action: policy.Use}, true, "", ""},
		{"restricted", func(s *policy.State) { s.Restricted = true },
			policy.Request{Purpose: "service", Action: policy.Read}, false, "restricted", "SR-7"},
		{"objection to profiling", func(s *policy.State) { s.ObjectProfiling = true },
			policy.Request{Purpose: "personalization", Action: policy.Derive}, false, "objection", "SR-7"},
		{"objection to marketing", func(s *policy.State) {
			s.ObjectMarketing = true
			s.Consents["marketing"] = granted("1")
		}, policy.Request{Purpose: "marketing", Action: policy.Use}, false, "objection", "SR-7"},
		{"suppressed label", func(s *policy.State) { s.Suppressed = map[string]bool{"sports_fan": true} },
			policy.Request{Purpose: "personalization", Labels: []string{"sports_fan"}, Action: policy.Use}, false, "label_suppressed", "LP-3"},
		{"erased", func(s *policy.State) { s.Erased = true },
			policy.Request{Purpose: "service", Action: policy.Read}, false, "erased", "SR-3"},
		{"subject reads another subject", nil,
			policy.Request{Purpose: "service", Action: policy.Read, Caller: policy.Caller{Role: policy.Subject, Pseudonym: "p2"}}, false, "not_your_subject", ""},
		{"subject accesses own data even when restricted", func(s *policy.State) { s.Restricted = true },
			policy.Request{Action: policy.Access, Caller: policy.Caller{Role: policy.Subject, Pseudonym: "p1"}}, true, "", ""},
		{"auditor cannot handle rights requests", nil,
			policy.Request{Action: policy.Erase, Caller: policy.Caller{Role: policy.Auditor}}, false, "role", "CM-5"},
		{"only the system sweeps", nil, policy.Request{Action: policy.Sweep}, false, "role", "CM-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy.New(testCatalog())
			st := base()
			if tt.mutate != nil {
				tt.mutate(st)
			}
			tt.req.State = st
			if tt.req.Caller.Role == "" {
				tt.req.Caller = op
			}
			d := p.Decide(tt.req)
			if d.Allow != tt.allow {
				t.Fatalf("allow = %v, want %v (%v)", d.Allow, tt.allow, d.Reasons)
			}
			if d.Allow {
				if err := d.Grant.Check("p1", tt.req.Action); err != nil {
					t.Errorf("grant: %v", err)
				}
				return
			}
			if d.Grant.Valid() {
				t.Error("a denial carries a valid grant")
			}
			if d.Reasons[0].Code != tt.code || d.Reasons[0].Requirement != tt.require || d.Reasons[0].Message == "" {
				t.Errorf("reason = %+v, want %s %s", d.Reasons[0], tt.code, tt.require)
			}
		})
	}
}

// RO-6: a suspension refuses at once, and lifting it restores the allow.
func TestSuspensions(t *testing.T) {
	p := policy.New(testCatalog())
	st := &policy.State{Pseudonym: "p1", Consents: map[string]policy.Consent{"personalization": granted("2")}}
	req := policy.Request{State: st, Purpose: "personalization", Fields: []string{"category"}, Labels: []string{"fan"}, Action: policy.Use}
	for _, kind := range []string{policy.TargetPurpose, policy.TargetField, policy.TargetLabel} {
		id := map[string]string{policy.TargetPurpose: "personalization", policy.TargetField: "category", policy.TargetLabel: "fan"}[kind]
		p.SetSuspensions([]policy.Suspension{{Kind: kind, ID: id, Reason: "inquiry"}})
		if d := p.Decide(req); d.Allow || d.Reasons[0].Requirement != "RO-6" {
			t.Errorf("%s suspended: %+v", kind, d)
		}
	}
	p.SetSuspensions(nil)
	if d := p.Decide(req); !d.Allow {
		t.Errorf("after lifting: %+v", d.Reasons)
	}
}

// Invariant 2: the zero Grant is refused, and a grant for one subject or
// action does not open another.
func TestGrantCheck(t *testing.T) {
	var zero policy.Grant
	if err := zero.Check("p1", policy.Read); !errors.Is(err, policy.ErrNoGrant) {
		t.Errorf("zero grant: %v", err)
	}
	p := policy.New(testCatalog())
	st := &policy.State{Pseudonym: "p1"}
	d := p.Decide(policy.Request{State: st, Purpose: "service", Action: policy.Read, Caller: policy.Caller{Role: policy.Operator}})
	if err := d.Grant.Check("p2", policy.Read); !errors.Is(err, policy.ErrNoGrant) {
		t.Errorf("other subject: %v", err)
	}
	if err := d.Grant.Check("p1", policy.Erase); !errors.Is(err, policy.ErrNoGrant) {
		t.Errorf("other action: %v", err)
	}
}

// CM-1: collection keeps only fields with a lawful basis for one of their
// purposes, and says why the others were dropped.
func TestCollect(t *testing.T) {
	p := policy.New(testCatalog())
	st := &policy.State{Pseudonym: "p1"}
	g, dropped, err := p.Collect(st, []string{"category", "email", "item"}, policy.Caller{Role: policy.Operator})
	if err != nil {
		t.Fatal(err)
	}
	if !g.Covers("item") || g.Covers("category") || g.Covers("email") {
		t.Errorf("grant covers %v", g.Fields())
	}
	if dropped["category"].Code != "no_consent" || dropped["email"].Code != "no_consent" {
		t.Errorf("dropped %+v", dropped)
	}
	st.Restricted = true
	if _, _, err := p.Collect(st, []string{"item"}, policy.Caller{Role: policy.Operator}); err == nil {
		t.Error("restricted subject: collection allowed")
	}
}

func BenchmarkDecide(b *testing.B) {
	p := policy.New(testCatalog())
	st := &policy.State{Pseudonym: "p1", Consents: map[string]policy.Consent{"personalization": granted("2")}}
	req := policy.Request{State: st, Purpose: "personalization", Fields: []string{"item", "category"}, Action: policy.Use,
		Caller: policy.Caller{Role: policy.Operator}}
	b.ReportAllocs()
	for b.Loop() {
		if !p.Decide(req).Allow {
			b.Fatal("denied")
		}
	}
}

// FP-6: a flagged proxy is treated as sensitive until a reviewer clears
// it: derivation and use need a purpose with separate consent.
func TestProxies(t *testing.T) {
	c := testCatalog()
	c.Purposes = append(c.Purposes, catalog.Purpose{ID: "credit", Basis: catalog.BasisConsent, NoticeVersion: "1", DataUse: "finance", Separate: true})
	c.Fields[1].Purposes = append(c.Fields[1].Purposes, "credit")
	c.Index()
	p := policy.New(c)
	st := &policy.State{Pseudonym: "p1", Consents: map[string]policy.Consent{"personalization": granted("2"), "credit": granted("1")}}
	use := policy.Request{State: st, Purpose: "personalization", Fields: []string{"category"}, Action: policy.Derive, Caller: policy.Caller{Role: policy.System}}
	p.SetProxies([]string{"category"})
	if d := p.Decide(use); d.Allow || d.Reasons[0].Code != "proxy_flagged" || d.Reasons[0].Requirement != "FP-6" {
		t.Errorf("flagged field for a purpose without separate consent: %+v", d)
	}
	sep := use
	sep.Purpose = "credit"
	if d := p.Decide(sep); !d.Allow {
		t.Errorf("flagged field for a separate-consent purpose: %+v", d.Reasons)
	}
	label := use
	label.Fields, label.Labels = nil, []string{"fan"}
	p.SetProxies([]string{"fan"})
	if d := p.Decide(label); d.Allow {
		t.Error("flagged label derived for a purpose without separate consent")
	}
	read := use
	read.Action = policy.Read
	if d := p.Decide(read); !d.Allow {
		t.Errorf("a flag limits derivation and use, not reads: %+v", d.Reasons)
	}
	p.SetProxies(nil)
	if d := p.Decide(use); !d.Allow {
		t.Errorf("after clearing: %+v", d.Reasons)
	}
}
