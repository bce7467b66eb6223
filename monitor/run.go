package monitor

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/fairness"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// Report is one run of every monitor. It holds aggregates, group names,
// item ids and pseudonyms; never a protected value of a subject.
type Report struct {
	ID         string           `json:"id"`
	Time       time.Time        `json:"time"`
	Seconds    float64          `json:"seconds"`
	Subjects   int              `json:"subjects"`
	Restricted int              `json:"restricted_left_out"`
	Protected  []string         `json:"protected_attributes"`
	WithValues int              `json:"subjects_with_protected_values"`
	Fairness   FairnessSection  `json:"fairness"`
	Proxies    ProxySection     `json:"proxies"`
	Price      PriceSection     `json:"price"`
	Diversity  DiversitySection `json:"diversity"`
	// Recommenders is the filter bubble measured on recommendation
	// answers as they are returned (Monitor.Observe).
	Recommenders RecommenderSection `json:"recommenders"`
	// Escalations are price alerts (FP-1) and significant fairness alerts
	// on high-tier decisions (FP-4) repeated over consecutive runs.
	Escalations []Escalation      `json:"escalations"`
	Alerts      []Alert           `json:"alerts"`
	AlertCount  map[string]int    `json:"alert_counts"`
	Notes       []string          `json:"notes,omitempty"`
	Options     map[string]string `json:"options"`
}

// FairnessSection audits each decision use-case (FP-3, FP-4).
type FairnessSection struct {
	UseCases []UseCaseFairness `json:"usecases"`
	Note     string            `json:"note,omitempty"`
}

// UseCaseFairness is the audit of one use-case's stored decisions.
type UseCaseFairness struct {
	UseCase   string `json:"usecase"`
	Decisions int    `json:"decisions"`
	LeftOut   int    `json:"decisions_without_protected_values"`
	// Selected is the model's automated outcome of every decision.
	// Outcomes are known only where a human reviewer closed a review
	// (upheld: the outcome stands; overturned: the reverse): Portrait has
	// no record of what later became of a subject, so error rates compare
	// the model with its reviewers, over reviewed decisions only.
	OutcomesKnown int              `json:"outcomes_known"`
	OutcomeSource string           `json:"outcome_source"`
	Audit         *fairness.Report `json:"audit,omitempty"`
	// Flips are the counterfactual flip tests of the declared model.
	Flips    []FlipCheck `json:"flip_tests"`
	FlipNote string      `json:"flip_note,omitempty"`
	Note     string      `json:"note,omitempty"`
}

// Outcome sources of UseCaseFairness.
const (
	OutcomeNone   = "none: no true outcome is recorded for any decision"
	OutcomeReview = "human review verdicts (upheld, overturned) on reviewed decisions only"
)

// ProxySection is the proxy scan (FP-6).
type ProxySection struct {
	Threshold   float64       `json:"threshold"`
	MinSubjects int           `json:"min_subjects"`
	Findings    []ProxyResult `json:"findings"`
	Note        string        `json:"note,omitempty"`
}

// ProxyResult is one feature × protected attribute association.
type ProxyResult struct {
	fairness.ProxyFinding
	Kind     string `json:"kind"` // profile or label
	Subjects int    `json:"subjects"`
	Cleared  bool   `json:"cleared,omitempty"`
}

// PriceSection is the price-discrimination scan (FP-1).
type PriceSection struct {
	EventType string                `json:"event_type"`
	Declared  bool                  `json:"declared"`
	Scan      *fairness.PriceReport `json:"scan,omitempty"`
	Note      string                `json:"note,omitempty"`
}

// DiversitySection is the filter-bubble monitor (FB-1, FB-2).
type DiversitySection struct {
	EventType      string                    `json:"event_type"`
	Floor          float64                   `json:"floor"`
	PeriodSeconds  int64                     `json:"period_seconds"`
	MinImpressions int                       `json:"min_impressions"`
	CatalogueItems int                       `json:"catalogue_items"`
	CatalogueCats  int                       `json:"catalogue_categories"`
	Scopes         []fairness.ScopeDiversity `json:"scopes"`
	Note           string                    `json:"note,omitempty"`
}

// Alert is one finding that needs attention. It is appended to the audit
// log as kind "alert" and counted in /metrics.
type Alert struct {
	Kind        string             `json:"kind"` // fairness, proxy, price, diversity
	Requirement string             `json:"requirement"`
	Metric      string             `json:"metric"`
	Value       float64            `json:"value"`
	Threshold   float64            `json:"threshold"`
	Scope       string             `json:"scope"`
	Pseudonym   portrait.Pseudonym `json:"subject,omitempty"` // for a subject's diversity
	Message     string             `json:"message"`
	// Facts are the parts of Message, for pages that say it in words.
	Facts    *Facts `json:"facts,omitempty"`
	LogIndex int64  `json:"log_index"`
}

// subjectData is what one run reads of one subject.
type subjectData struct {
	pseudonym portrait.Pseudonym
	protected map[string]string
	numeric   map[string]float64 // profile numbers and score labels
	category  map[string]string  // other profile fields and labels
	kinds     map[string]string  // feature → profile or label
	segment   string
	labels    []string // rule labels that hold
	decisions []portrait.StoredDetermination
	prices    []fairness.PriceEvent
	exposures []exposure
}

type exposure struct {
	t              time.Time
	item, category string
}

// Run reads the portrait of every subject that is not restricted, runs
// every monitor, appends the protected-attribute access and every alert to
// the audit log, records new proxy flags, and keeps the report.
func (m *Monitor) Run(ctx context.Context, now time.Time) (*Report, error) {
	m.run.Lock()
	defer m.run.Unlock()
	start := time.Now()
	p, err := m.collectPart(ctx, now.UTC(), nil)
	if err != nil {
		return nil, err
	}
	return m.report(ctx, now.UTC(), start, p)
}

// report computes every monitor over what p read, records the alerts and
// keeps the report.
func (m *Monitor) report(ctx context.Context, now, start time.Time, p *Partial) (*Report, error) {
	cat := m.deps.Point.Catalog()
	rep := &Report{ID: newID(), Time: now, Protected: ProtectedFields(cat), Alerts: []Alert{}, AlertCount: map[string]int{}, Escalations: []Escalation{},
		Options: map[string]string{
			"proxy_threshold": fmtF(m.opts.ProxyThreshold), "diversity_floor": fmtF(m.opts.DiversityFloor),
			"min_share": fmtF(m.opts.MinShare), "period": m.opts.Period.String(), "lookback": m.opts.Lookback.String(),
		}}
	subjects := p.subjects
	rep.Subjects, rep.Restricted, rep.WithValues = len(subjects), p.restricted, p.withValues
	newFlags := m.proxySection(cat, subjects, rep)
	m.fairnessSection(cat, subjects, newFlags, rep)
	if err := m.priceSection(cat, subjects, rep); err != nil {
		return nil, err
	}
	items, cats, err := m.diversitySection(ctx, subjects, now, rep)
	if err != nil {
		return nil, err
	}
	keep := make(map[portrait.Pseudonym]bool, len(subjects))
	for _, s := range subjects {
		keep[s.pseudonym] = true
	}
	if err := m.recommenderSection(keep, items, cats, rep); err != nil {
		return nil, err
	}
	if err := m.record(ctx, now, rep, newFlags); err != nil {
		return nil, err
	}
	// After the alerts are on record: a halt quotes a logged report.
	if err := m.escalate(ctx, cat, now, rep); err != nil {
		return nil, err
	}
	if err := m.fairnessHalts(ctx, cat, now, rep); err != nil {
		return nil, err
	}
	for _, a := range rep.Alerts {
		rep.AlertCount[a.Kind]++
	}
	rep.Seconds = time.Since(start).Seconds()
	if err := m.keep(rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// collectPart reads the subjects keep keeps (every subject when keep is
// nil) and logs the read of their protected
// attributes before returning them: FP-2, no log, no values (invariant 3).
func (m *Monitor) collectPart(ctx context.Context, now time.Time, keep func(pseudonym portrait.Pseudonym) bool) (*Partial, error) {
	cat := m.deps.Point.Catalog()
	if sus, err := m.deps.Store.Suspensions(ctx); err == nil {
		m.deps.Point.SetSuspensions(sus)
	}
	p := &Partial{}
	var err error
	p.restrictedBy = map[portrait.Pseudonym]int{}
	restricted := func(ps portrait.Pseudonym) { p.restricted++; p.restrictedBy[ps]++ }
	if p.subjects, err = m.collect(ctx, cat, now, restricted, keep); err != nil {
		return nil, err
	}
	for _, s := range p.subjects {
		if len(s.protected) > 0 {
			p.withValues++
		}
	}
	if p.withValues > 0 {
		err := m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			_, err := m.deps.Log.Append(ctx, tx, audit.Record{Kind: "protected_access", Time: now, Actor: actor(engine), Action: "read",
				Codes: []string{"FP-2"}, Detail: map[string]any{"subjects": p.withValues, "attributes": ProtectedFields(cat), "purpose": "fairness monitor"}})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("monitor: log protected-attribute access: %w", err)
		}
	}
	return p, nil
}

// collect reads every stored subject in pages, skipping restricted ones.
// Each subject is read through the Access grant the decision point gives
// the engine for it, as one by one; a page is fetched with one query per
// kind (protected values, profile, labels, decisions, events), since a
// query per subject and kind was nine tenths of a run.
// With keep, only the subjects it keeps are read.
func (m *Monitor) collect(ctx context.Context, cat *catalog.Catalog, now time.Time, restricted func(pseudonym portrait.Pseudonym), keep func(pseudonym portrait.Pseudonym) bool) ([]*subjectData, error) {
	since := now.Add(-m.opts.Lookback)
	var out []*subjectData
	var after portrait.Pseudonym
	for {
		page, err := m.deps.Store.Pseudonyms(ctx, after, 500)
		if err != nil {
			return nil, fmt.Errorf("monitor: list subjects: %w", err)
		}
		if len(page) == 0 {
			return out, nil
		}
		after = page[len(page)-1]
		if keep != nil {
			page = slices.DeleteFunc(page, func(ps portrait.Pseudonym) bool { return !keep(ps) })
			if len(page) == 0 {
				continue
			}
		}
		subs, err := m.deps.Store.Subjects(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("monitor: load subjects: %w", err)
		}
		states, err := m.deps.Store.States(ctx, page)
		if err != nil {
			return nil, fmt.Errorf("monitor: load states: %w", err)
		}
		var read []portrait.SubjectKey
		var grants []policy.Grant
		for _, ps := range page {
			s, ok := subs[ps]
			st := states[ps]
			if !ok || st == nil || st.Erased {
				continue
			}
			if st.Restricted {
				// SR-7: storage only; monitoring is processing too.
				restricted(ps)
				continue
			}
			dec := m.deps.Point.Decide(policy.Request{State: st, Action: policy.Access, Caller: engine})
			if err := dec.Err(); err != nil {
				return nil, fmt.Errorf("monitor: subject %s: %w", ps, err)
			}
			read = append(read, s)
			grants = append(grants, dec.Grant)
		}
		if len(grants) == 0 {
			continue
		}
		in, err := m.fetch(ctx, grants, since)
		if err != nil {
			return nil, err
		}
		for _, s := range read {
			d, err := m.readSubject(cat, s, in)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
}

// fetched is what one page read returns, by pseudonym.
type fetched struct {
	protected map[portrait.Pseudonym][]portrait.ProtectedValue
	profile   map[portrait.Pseudonym][]portrait.ProfileValue
	labels    map[portrait.Pseudonym][]portrait.LabelValue
	decisions map[portrait.Pseudonym][]portrait.StoredDetermination
	events    map[portrait.Pseudonym][]portrait.StoredEvent
}

// fetch reads a page of subjects under their grants.
func (m *Monitor) fetch(ctx context.Context, grants []policy.Grant, since time.Time) (*fetched, error) {
	st := m.deps.Store
	var in fetched
	var err error
	if in.protected, err = st.ProtectedFor(ctx, grants); err != nil {
		return nil, fmt.Errorf("monitor: protected attributes of %d subjects: %w", len(grants), err)
	}
	if in.profile, err = st.ProfilesFor(ctx, grants); err != nil {
		return nil, fmt.Errorf("monitor: profiles of %d subjects: %w", len(grants), err)
	}
	if in.labels, err = st.LabelsFor(ctx, grants); err != nil {
		return nil, fmt.Errorf("monitor: labels of %d subjects: %w", len(grants), err)
	}
	if in.decisions, err = st.DeterminationsFor(ctx, grants); err != nil {
		return nil, fmt.Errorf("monitor: decisions of %d subjects: %w", len(grants), err)
	}
	if in.events, err = st.EventsFor(ctx, grants, since); err != nil {
		return nil, fmt.Errorf("monitor: events of %d subjects: %w", len(grants), err)
	}
	return &in, nil
}

// readSubject decrypts what fetch read of subject s.
func (m *Monitor) readSubject(cat *catalog.Catalog, s portrait.SubjectKey, in *fetched) (*subjectData, error) {
	ps := s.Pseudonym
	d := &subjectData{pseudonym: ps, numeric: map[string]float64{}, category: map[string]string{}, kinds: map[string]string{}}
	c, err := m.deps.Keys.Open(s)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if d.protected, err = openProtected(c, ps, in.protected[ps]); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	prof := in.profile[ps]
	for _, v := range prof {
		f := cat.Field(v.Field)
		if f == nil || f.Protected || f.Type == catalog.TypeTime {
			continue
		}
		b, err := c.Open(v.Sealed, keys.ProfileAD(ps, v.Field))
		if err != nil {
			return nil, fmt.Errorf("monitor: profile field %q of %s does not open: %w", v.Field, ps, err)
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			continue
		}
		d.kinds[v.Field] = "profile"
		if n, ok := x.(float64); ok && f.Type == catalog.TypeNumber {
			d.numeric[v.Field] = n
		} else {
			d.category[v.Field] = fmt.Sprint(x)
		}
	}
	var segs []string
	for _, lv := range in.labels[ps] {
		b, err := c.Open(lv.Sealed, m.deps.LabelAD(ps, lv.Label))
		if err != nil {
			continue // sealed some other way: left out rather than guessed
		}
		var v label.Value
		if json.Unmarshal(b, &v) != nil {
			continue
		}
		decl := cat.Label(lv.Label)
		kind := v.Kind
		if decl != nil {
			kind = decl.Kind
		}
		d.kinds[lv.Label] = "label"
		switch kind {
		case catalog.KindScore, catalog.KindBGNBD:
			if !math.IsNaN(v.Score) && !math.IsInf(v.Score, 0) {
				d.numeric[lv.Label] = v.Score
			}
		case catalog.KindSegment, catalog.KindRFM:
			d.category[lv.Label] = strconv.Itoa(v.Segment)
			segs = append(segs, lv.Label+"="+strconv.Itoa(v.Segment))
		default:
			d.category[lv.Label] = strconv.FormatBool(v.Bool)
			if v.Bool {
				d.labels = append(d.labels, lv.Label)
			}
		}
	}
	slices.Sort(segs)
	slices.Sort(d.labels)
	switch {
	case len(segs) > 0:
		d.segment = strings.Join(segs, ",")
	case len(d.labels) > 0:
		d.segment = strings.Join(d.labels, "+")
	default:
		d.segment = "(no label)"
	}
	d.decisions = in.decisions[ps]
	for _, e := range in.events[ps] {
		if e.Type != m.opts.PriceEventType && e.Type != m.opts.ExposureEventType {
			continue
		}
		b, err := c.Open(e.Sealed, keys.EventAD(ps))
		if err != nil {
			return nil, fmt.Errorf("monitor: event %d of %s does not open: %w", e.ID, ps, err)
		}
		var fields map[string]any
		if json.Unmarshal(b, &fields) != nil {
			continue
		}
		item, _ := fields["item"].(string)
		if item == "" {
			continue
		}
		if e.Type == m.opts.PriceEventType {
			price, ok := fields["price"].(float64)
			if !ok {
				continue
			}
			ctxt, _ := fields["context"].(string)
			d.prices = append(d.prices, fairness.PriceEvent{Subject: string(ps), Item: item, Price: price, Time: e.Time,
				Context: ctxt, Segment: d.segment, Labels: d.labels})
		}
		if e.Type == m.opts.ExposureEventType {
			cat, _ := fields["category"].(string)
			if cat == "" {
				continue
			}
			d.exposures = append(d.exposures, exposure{t: e.Time, item: item, category: cat})
		}
	}
	return d, nil
}

// attributesOf lists the protected attributes any subject has a value for.
func attributesOf(subjects []*subjectData) []string {
	seen := map[string]bool{}
	for _, s := range subjects {
		for a := range s.protected {
			seen[a] = true
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	if len(out) > fairness.MaxAttributes {
		out = out[:fairness.MaxAttributes]
	}
	return out
}

func (m *Monitor) fairnessSection(cat *catalog.Catalog, subjects []*subjectData, newFlags []ProxyResult, rep *Report) {
	attrs := attributesOf(subjects)
	rows := map[string][]fairness.Observation{}
	counts := map[string]int{}
	left := map[string]int{}
	known := map[string]int{}
	for _, s := range subjects {
		groups := make([]string, len(attrs))
		complete := len(attrs) > 0
		for i, a := range attrs {
			v, ok := s.protected[a]
			groups[i] = v
			complete = complete && ok
		}
		for _, d := range s.decisions {
			counts[d.UseCase]++
			if !complete {
				left[d.UseCase]++
				continue
			}
			row := fairness.Observation{Groups: groups, Selected: d.Outcome, HasScore: finite(d.Score), Score: d.Score}
			switch d.Status {
			case statusUpheld:
				row.HasOutcome, row.Outcome = true, d.Outcome
			case statusOverturned:
				row.HasOutcome, row.Outcome = true, !d.Outcome
			}
			if row.HasOutcome {
				known[d.UseCase]++
			}
			rows[d.UseCase] = append(rows[d.UseCase], row)
		}
	}
	if len(counts) == 0 {
		rep.Fairness.Note = "no decisions are stored yet: nothing to audit"
		return
	}
	if len(attrs) == 0 {
		rep.Fairness.Note = "no protected attributes are recorded: record them for the people decided about to audit decisions (FP-2)"
	}
	// Flip tests change every flagged proxy not cleared by a reviewer.
	proxies := map[string]string{}
	m.mu.Lock()
	for f, p := range m.proxies {
		if !p.Cleared {
			proxies[f] = p.Protected
		}
	}
	m.mu.Unlock()
	for _, f := range newFlags {
		proxies[f.Feature] = f.Protected
	}
	ucs := make([]string, 0, len(counts))
	for uc := range counts {
		ucs = append(ucs, uc)
	}
	sort.Strings(ucs)
	for _, uc := range ucs {
		u := UseCaseFairness{UseCase: uc, Decisions: counts[uc], LeftOut: left[uc], OutcomesKnown: known[uc], OutcomeSource: OutcomeNone, Flips: []FlipCheck{}}
		if known[uc] > 0 {
			u.OutcomeSource = OutcomeReview
		}
		if cat.UseCase(uc) == nil {
			u.Note = "use-case no longer declared in the catalog; audited from its stored decisions"
		}
		if len(rows[uc]) == 0 {
			u.Note = strings.TrimSpace(u.Note + " no decision has a subject with every protected attribute recorded")
			rep.Fairness.UseCases = append(rep.Fairness.UseCases, u)
			continue
		}
		cfg := fairness.Config{Attributes: attrs, MinShare: m.opts.MinShare}
		a, err := fairness.Audit(cfg, rows[uc])
		if err != nil && known[uc] > 0 {
			// Error rates need both verdicts; the selection rates do not.
			for i := range rows[uc] {
				rows[uc][i].HasOutcome = false
			}
			u.Note = strings.TrimSpace(u.Note + " review verdicts left out of the error rates: " + err.Error())
			u.OutcomesKnown, u.OutcomeSource = 0, OutcomeNone
			a, err = fairness.Audit(cfg, rows[uc])
		}
		if err != nil {
			u.Note = strings.TrimSpace(u.Note + " " + err.Error())
			rep.Fairness.UseCases = append(rep.Fairness.UseCases, u)
			continue
		}
		u.Audit = a
		for _, al := range a.Alerts {
			rep.Alerts = append(rep.Alerts, Alert{Kind: "fairness", Requirement: "FP-4", Metric: "impact_ratio", Value: al.Value,
				Threshold: al.Threshold, Scope: uc + "/" + strings.Join(al.Attributes, Sep) + "=" + al.Group,
				Message: "use-case " + uc + ": " + al.Message,
				Facts:   &Facts{UseCase: uc, Attributes: al.Attributes, Group: al.Group, Reference: al.Reference, PValue: &al.PValue}})
		}
		flips, note := m.flipTests(cat, uc, attrs, subjects, proxies, rep)
		u.Flips = append(u.Flips, flips...)
		u.FlipNote = note
		rep.Fairness.UseCases = append(rep.Fairness.UseCases, u)
	}
}

// Decision statuses a human review leaves (apply.StatusUpheld and
// apply.StatusOverturned; apply is not imported, see Deps.Halter).
const (
	statusUpheld     = "upheld"
	statusOverturned = "overturned"
)

// Sep joins attribute names in alert scopes.
const Sep = fairness.Sep

type proxyAcc struct {
	scanner  *fairness.ProxyScanner
	subjects int
	numeric  bool
}

// proxySection measures every profile field and label against every
// protected attribute (FP-6) and returns the findings to flag.
func (m *Monitor) proxySection(cat *catalog.Catalog, subjects []*subjectData, rep *Report) []ProxyResult {
	rep.Proxies = ProxySection{Threshold: m.opts.ProxyThreshold, MinSubjects: m.opts.ProxyMinSubjects, Findings: []ProxyResult{}}
	attrs := attributesOf(subjects)
	if len(attrs) == 0 {
		rep.Proxies.Note = "no protected attributes are recorded: no proxy to measure"
		return nil
	}
	accs := map[[2]string]*proxyAcc{}
	kinds := map[string]string{}
	get := func(f, a string, numeric bool) *proxyAcc {
		k := [2]string{f, a}
		if p := accs[k]; p != nil {
			return p
		}
		opts := fairness.ProxyOptions{Protected: []string{a}, Threshold: m.opts.ProxyThreshold, BiasCorrected: true}
		if numeric {
			opts.Numeric = []string{f}
		} else {
			opts.Categorical = []string{f}
		}
		sc, err := fairness.NewProxyScanner(opts)
		if err != nil {
			return nil // a protected name reused as a feature: the catalog refuses it
		}
		p := &proxyAcc{scanner: sc, numeric: numeric}
		accs[k] = p
		return p
	}
	for _, s := range subjects {
		for a, pv := range s.protected {
			if !slices.Contains(attrs, a) {
				continue
			}
			for f, x := range s.numeric {
				if p := get(f, a, true); p != nil && p.numeric {
					if p.scanner.Add([]string{pv}, nil, []float64{x}) == nil {
						p.subjects++
					}
				}
				kinds[f] = s.kinds[f]
			}
			for f, x := range s.category {
				if p := get(f, a, false); p != nil && !p.numeric {
					if p.scanner.Add([]string{pv}, []string{x}, nil) == nil {
						p.subjects++
					}
				}
				kinds[f] = s.kinds[f]
			}
		}
	}
	var flag []ProxyResult
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range accs {
		for _, f := range p.scanner.Findings() {
			r := ProxyResult{ProxyFinding: f, Kind: kinds[f.Feature], Subjects: p.subjects}
			if r.Flagged && p.subjects < m.opts.ProxyMinSubjects {
				r.Flagged, r.Requirement = false, ""
				r.Note = fmt.Sprintf("association %.3f from only %d subjects (fewer than %d): not flagged", f.Value, p.subjects, m.opts.ProxyMinSubjects)
			}
			if pf := m.proxies[f.Feature]; r.Flagged && pf != nil && pf.Cleared {
				r.Cleared = true
				r.Note += "; cleared by a reviewer (" + pf.ClearedBy + ")"
			}
			if r.Flagged && m.proxies[f.Feature] == nil {
				flag = append(flag, r)
			}
			rep.Proxies.Findings = append(rep.Proxies.Findings, r)
		}
	}
	slices.SortFunc(rep.Proxies.Findings, func(a, b ProxyResult) int {
		return cmp.Or(cmp.Compare(b.Value, a.Value), strings.Compare(a.Feature, b.Feature), strings.Compare(a.Protected, b.Protected))
	})
	// One flag per feature: its strongest association.
	slices.SortFunc(flag, func(a, b ProxyResult) int {
		return cmp.Or(cmp.Compare(b.Value, a.Value), strings.Compare(a.Feature, b.Feature))
	})
	var out []ProxyResult
	seen := map[string]bool{}
	for _, r := range flag {
		if !seen[r.Feature] {
			seen[r.Feature] = true
			out = append(out, r)
		}
	}
	for _, r := range rep.Proxies.Findings {
		if r.Flagged && !r.Cleared {
			rep.Alerts = append(rep.Alerts, Alert{Kind: "proxy", Requirement: "FP-6", Metric: r.Measure, Value: r.Value, Threshold: m.opts.ProxyThreshold,
				Scope: r.Feature + "~" + r.Protected, Message: fmt.Sprintf("%s %q is associated with protected attribute %q (%s %.3f > %.2f): treated as sensitive until a reviewer clears it",
					r.Kind, r.Feature, r.Protected, r.Measure, r.Value, m.opts.ProxyThreshold),
				Facts: &Facts{Feature: r.Feature, FeatureKind: r.Kind, Protected: r.Protected}})
		}
	}
	return out
}

func (m *Monitor) priceSection(cat *catalog.Catalog, subjects []*subjectData, rep *Report) error {
	rep.Price = PriceSection{EventType: m.opts.PriceEventType}
	et := cat.EventType(m.opts.PriceEventType)
	if et == nil || !slices.Contains(et.Fields, "item") || !slices.Contains(et.Fields, "price") {
		rep.Price.Note = fmt.Sprintf("the catalog declares no event type %q with fields item and price: declare one (fields item, price, context) to monitor prices shown (FP-1)", m.opts.PriceEventType)
		return nil
	}
	rep.Price.Declared = true
	sc, err := fairness.NewPriceScanner(fairness.PriceOptions{Window: m.opts.PriceWindow, Threshold: m.opts.PriceThreshold, MinEvents: m.opts.PriceMinEvents})
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	for _, s := range subjects {
		for _, e := range s.prices {
			if err := sc.Add(e); err != nil {
				rep.Notes = append(rep.Notes, "price event left out: "+err.Error())
			}
		}
	}
	rep.Price.Scan = sc.Report()
	if rep.Price.Scan.Events == 0 {
		rep.Price.Note = "no price-shown events in the look-back window"
	}
	for _, a := range rep.Price.Scan.Alerts {
		metric, value := "segment_gap", 0.0
		if a.Gap != nil {
			value = *a.Gap
		} else {
			metric = "segment_gap_from_free" // the lowest segment paid nothing
		}
		rep.Alerts = append(rep.Alerts, Alert{Kind: "price", Requirement: "FP-1", Metric: metric, Value: value, Threshold: a.Threshold,
			Scope: "item:" + a.Item + "/" + a.Context + "@" + a.WindowStart.Format(time.RFC3339), Message: a.Message,
			Facts: &Facts{Item: a.Item, Context: a.Context, Highest: a.Highest, Lowest: a.Lowest, HighMean: a.HighestMean, LowMean: a.LowestMean}})
	}
	return nil
}

// diversitySection measures exposure events; it returns the size of the
// stored item catalog (items, categories), zero when none is stored.
func (m *Monitor) diversitySection(ctx context.Context, subjects []*subjectData, now time.Time, rep *Report) (int, int, error) {
	o := m.opts
	rep.Diversity = DiversitySection{EventType: o.ExposureEventType, Floor: o.DiversityFloor, PeriodSeconds: int64(o.Period / time.Second),
		MinImpressions: o.MinImpressions, Scopes: []fairness.ScopeDiversity{}}
	items, err := m.deps.Store.Items(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("monitor: item catalog: %w", err)
	}
	itemSet, catSet := map[string]bool{}, map[string]bool{}
	for _, it := range items {
		itemSet[it.ID] = true
		for _, c := range it.Categories {
			catSet[c] = true
		}
	}
	fromItems := len(items) > 0
	nItems, nCats := len(itemSet), len(catSet)
	period := func(t time.Time) int64 {
		return int64(math.Floor(float64(t.Sub(now)) / float64(o.Period)))
	}
	type key struct {
		scope string
		p     int64
	}
	buckets := map[key][]exposure{}
	subjectOf := map[string]portrait.Pseudonym{}
	for _, s := range subjects {
		for _, e := range s.exposures {
			if !fromItems {
				itemSet[e.item], catSet[e.category] = true, true
			}
			p := period(e.t)
			scope := "subject:" + string(s.pseudonym)
			subjectOf[scope] = s.pseudonym
			buckets[key{scope, p}] = append(buckets[key{scope, p}], e)
			buckets[key{"all:" + o.ExposureEventType, p}] = append(buckets[key{"all:" + o.ExposureEventType, p}], e)
		}
	}
	if len(buckets) == 0 {
		rep.Diversity.Note = fmt.Sprintf("no %q events with item and category in the look-back window", o.ExposureEventType)
		return nItems, nCats, nil
	}
	rep.Diversity.CatalogueItems, rep.Diversity.CatalogueCats = len(itemSet), len(catSet)
	if !fromItems {
		rep.Diversity.Note = "no item catalog is stored: coverage is relative to the items and categories seen"
	}
	log, err := fairness.NewExposureLog(len(itemSet), len(catSet))
	if err != nil {
		return 0, 0, fmt.Errorf("monitor: %w", err)
	}
	for k, es := range buckets {
		if len(es) < o.MinImpressions {
			continue
		}
		for _, e := range es {
			log.Add(k.scope, k.p, e.item, e.category)
		}
	}
	scopes, err := log.Report(o.DiversityFloor)
	if err != nil {
		return 0, 0, fmt.Errorf("monitor: %w", err)
	}
	rep.Diversity.Scopes = append(rep.Diversity.Scopes, scopes...)
	for _, sd := range scopes {
		if !sd.Trend.BelowFloor {
			continue
		}
		rep.Alerts = append(rep.Alerts, Alert{Kind: "diversity", Requirement: "FB-2", Metric: "category_entropy", Value: sd.Trend.Latest,
			Threshold: o.DiversityFloor, Scope: sd.Scope, Pseudonym: subjectOf[sd.Scope], Message: sd.Trend.Message, Facts: &Facts{Slope: sd.Trend.Slope}})
	}
	return nItems, nCats, nil
}

// record appends every alert and every new proxy flag to the audit log in
// one transaction, then marks the flags as sensitive.
func (m *Monitor) record(ctx context.Context, now time.Time, rep *Report, flags []ProxyResult) error {
	if len(rep.Alerts) == 0 && len(flags) == 0 {
		return nil
	}
	recs := make([]audit.Record, 0, len(rep.Alerts)+len(flags))
	for _, a := range rep.Alerts {
		recs = append(recs, audit.Record{Kind: "alert", Time: now, Actor: actor(engine), Pseudonym: a.Pseudonym, Codes: []string{a.Requirement},
			Detail: map[string]any{"monitor": a.Kind, "metric": a.Metric, "value": a.Value, "threshold": a.Threshold, "scope": a.Scope, "report": rep.ID}})
	}
	for _, f := range flags {
		recs = append(recs, audit.Record{Kind: "proxy_flag", Time: now, Actor: actor(engine), Action: "flag", Codes: []string{"FP-6"},
			Detail: map[string]any{"feature": f.Feature, "protected": f.Protected, "measure": f.Measure, "value": f.Value, "subjects": f.Subjects, "report": rep.ID}})
	}
	var first int64
	err := m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		first, err = m.deps.Log.Append(ctx, tx, recs...)
		return err
	})
	if err != nil {
		return fmt.Errorf("monitor: record alerts: %w", err)
	}
	for i := range rep.Alerts {
		rep.Alerts[i].LogIndex = first + int64(i)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, f := range flags {
		m.proxies[f.Feature] = &ProxyFlag{Feature: f.Feature, Protected: f.Protected, Measure: f.Measure, Value: f.Value,
			Flagged: now, LogIndex: first + int64(len(rep.Alerts)+i)}
	}
	m.publishProxies()
	return nil
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func fmtF(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
