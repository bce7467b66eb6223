package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are the parts of Portrait a Monitor works through.
type Deps struct {
	Store Store
	Point *policy.Point
	Keys  *keys.Keyring
	Log   *audit.Log
	// LabelAD is the additional data a stored label value is sealed with;
	// nil means pseudonym+"/label/"+label.
	LabelAD func(pseudonym portrait.Pseudonym, label string) []byte
	// Halter halts a use-case on every node (the apply service's Halt,
	// AD-7). An interface, since apply may call Observe: importing it here
	// would be a cycle. Needed only with Options.AutoHalt.
	Halter Halter
}

// Halter stops a use-case; *apply.Service implements it.
type Halter interface {
	Halt(ctx context.Context, caller policy.Caller, id, reason string) error
}

// Options tune the monitors. Zero values take the defaults in brackets.
type Options struct {
	// ProxyThreshold is the association above which a feature is flagged
	// as a proxy (FP-6) [0.3].
	ProxyThreshold float64
	// ProxyMinSubjects is how many subjects a feature × attribute pair
	// needs before it can be flagged [30].
	ProxyMinSubjects int
	// MinShare is the LL144 small-group exclusion (FP-3) [0.02].
	MinShare float64
	// PriceEventType is the declared event type of prices shown, with
	// fields item and price and optionally context (FP-1) ["price_shown"].
	PriceEventType string
	// PriceWindow, PriceThreshold, PriceMinEvents: see fairness.PriceOptions.
	PriceWindow    time.Duration
	PriceThreshold float64
	PriceMinEvents int
	// ExposureEventType is the event type whose item and category fields
	// count as exposures for the filter-bubble monitor ["view"].
	ExposureEventType string
	// DiversityFloor is the normalised category entropy under which a
	// subject or the whole exposure stream raises an alert (FB-2) [0.3].
	DiversityFloor float64
	// Period is the length of one diversity period [7 days].
	Period time.Duration
	// MinImpressions is how many exposures a period needs to count [5].
	MinImpressions int
	// RecommenderFloors sets the diversity floor per recommender
	// (use-case id); others take DiversityFloor (FB-2).
	RecommenderFloors map[string]float64
	// BubblePeriods is how many periods of answer-time exposure each
	// recommender and subject keeps [8].
	BubblePeriods int
	// BubbleSubjects bounds the subjects whose answer-time exposure is
	// kept; the least recently observed are dropped first [100000].
	BubbleSubjects int
	// FlipThreshold is the share of counterfactual runs that may flip when
	// a flagged proxy is changed before an alert is raised [0.05]; a flip
	// on the protected attribute itself always alerts.
	FlipThreshold float64
	// EscalateAfter is how many consecutive runs must raise a price alert
	// for the same item and context before halting the pricing use-cases
	// is recommended (FP-1) [3].
	EscalateAfter int
	// AutoHalt halts them, through Deps.Halter, instead of only
	// recommending it [false].
	AutoHalt bool
	// Lookback bounds the events read [90 days].
	Lookback time.Duration
	// Keep is how many reports stay in memory [24].
	Keep int
	// Dir, when set, receives every report as a JSON file.
	Dir string
	// Now is the clock [time.Now].
	Now    func() time.Time
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.ProxyThreshold == 0 {
		o.ProxyThreshold = 0.3
	}
	if !(o.ProxyThreshold > 0 && o.ProxyThreshold <= 1) {
		return fmt.Errorf("monitor: proxy threshold %v must be in (0, 1]", o.ProxyThreshold)
	}
	if o.ProxyMinSubjects == 0 {
		o.ProxyMinSubjects = 30
	}
	if o.MinShare == 0 {
		o.MinShare = 0.02
	}
	if o.MinShare < 0 || o.MinShare >= 1 {
		return fmt.Errorf("monitor: minimum group share %v must be in [0, 1)", o.MinShare)
	}
	if o.PriceEventType == "" {
		o.PriceEventType = "price_shown"
	}
	if o.ExposureEventType == "" {
		o.ExposureEventType = "view"
	}
	if o.DiversityFloor == 0 {
		o.DiversityFloor = 0.3
	}
	if o.DiversityFloor < 0 || o.DiversityFloor > 1 {
		return fmt.Errorf("monitor: diversity floor %v must be in [0, 1] (normalised entropy)", o.DiversityFloor)
	}
	if o.Period == 0 {
		o.Period = 7 * 24 * time.Hour
	}
	if o.Period < time.Minute {
		return fmt.Errorf("monitor: period %v is under a minute", o.Period)
	}
	if o.MinImpressions == 0 {
		o.MinImpressions = 5
	}
	for uc, f := range o.RecommenderFloors {
		if !(f >= 0 && f <= 1) {
			return fmt.Errorf("monitor: diversity floor %v of recommender %q must be in [0, 1] (normalised entropy)", f, uc)
		}
	}
	if o.BubblePeriods == 0 {
		o.BubblePeriods = 8
	}
	if o.BubbleSubjects == 0 {
		o.BubbleSubjects = 100_000
	}
	if o.BubblePeriods < 1 || o.BubbleSubjects < 1 {
		return fmt.Errorf("monitor: bubble periods %d and subjects %d must be positive", o.BubblePeriods, o.BubbleSubjects)
	}
	if o.FlipThreshold == 0 {
		o.FlipThreshold = 0.05
	}
	if !(o.FlipThreshold > 0 && o.FlipThreshold <= 1) {
		return fmt.Errorf("monitor: flip threshold %v must be in (0, 1]", o.FlipThreshold)
	}
	if o.EscalateAfter == 0 {
		o.EscalateAfter = 3
	}
	if o.EscalateAfter < 1 {
		return fmt.Errorf("monitor: escalate after %d runs: must be at least 1", o.EscalateAfter)
	}
	if o.Lookback == 0 {
		o.Lookback = 90 * 24 * time.Hour
	}
	if o.Keep == 0 {
		o.Keep = 24
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Monitor runs the monitors, keeps their reports and the proxy flags.
// It is safe for concurrent use.
type Monitor struct {
	deps Deps
	opts Options

	run     sync.Mutex // one run at a time
	mu      sync.Mutex
	reports []*Report
	proxies map[string]*ProxyFlag
	subs    []func(*Report)
	// streaks counts, per item and context, the consecutive runs that
	// raised a price alert (FP-1 escalation); under run.
	streaks map[priceKey]int
	// fairStreaks counts, per high-tier decision use-case, the
	// consecutive runs with a significant fairness alert; under run.
	fairStreaks map[string]int

	bmu     sync.Mutex
	bubbles *bubbles
}

// ProxyFlag is a feature flagged as a proxy for a protected attribute
// (FP-6). Until cleared it is to be treated as sensitive.
type ProxyFlag struct {
	Feature    string    `json:"feature"`
	Protected  string    `json:"protected"`
	Measure    string    `json:"measure"`
	Value      float64   `json:"value"`
	Flagged    time.Time `json:"flagged"`
	Cleared    bool      `json:"cleared"`
	ClearedBy  string    `json:"cleared_by,omitempty"`
	ClearedAt  time.Time `json:"cleared_at,omitzero"`
	ClearNote  string    `json:"clear_reason,omitempty"`
	LogIndex   int64     `json:"log_index"`
	ClearIndex int64     `json:"clear_log_index,omitempty"`
}

// New returns a Monitor. Call Load to restore proxy flags from the log.
func New(deps Deps, opts Options) (*Monitor, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Point == nil || deps.Keys == nil || deps.Log == nil {
		return nil, errors.New("monitor: Store, Point, Keys and Log are all required")
	}
	if opts.AutoHalt && deps.Halter == nil {
		return nil, errors.New("monitor: AutoHalt needs Deps.Halter (the apply service) to halt pricing use-cases through")
	}
	if deps.LabelAD == nil {
		deps.LabelAD = keys.LabelAD
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("monitor: report directory: %w", err)
		}
	}
	return &Monitor{deps: deps, opts: opts, proxies: map[string]*ProxyFlag{}, streaks: map[priceKey]int{}, fairStreaks: map[string]int{}, bubbles: newBubbles()}, nil
}

// Options returns the options in force, defaults filled in.
func (m *Monitor) Options() Options { return m.opts }

// OnReport registers fn to be called with every new report, e.g. to
// export metrics.
func (m *Monitor) OnReport(fn func(*Report)) {
	m.mu.Lock()
	m.subs = append(m.subs, fn)
	m.mu.Unlock()
}

// Latest returns the newest report, or nil before the first run.
func (m *Monitor) Latest() *Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.reports) == 0 {
		return nil
	}
	return m.reports[len(m.reports)-1]
}

// Reports returns the kept reports, oldest first.
func (m *Monitor) Reports() []*Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.reports)
}

func (m *Monitor) keep(rep *Report) error {
	if m.opts.Dir != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("monitor: encode report: %w", err)
		}
		name := filepath.Join(m.opts.Dir, "monitor-"+rep.Time.Format("20060102T150405.000000000Z")+".json")
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return fmt.Errorf("monitor: write report: %w", err)
		}
	}
	m.mu.Lock()
	m.reports = append(m.reports, rep)
	if len(m.reports) > m.opts.Keep {
		m.reports = slices.Delete(m.reports, 0, len(m.reports)-m.opts.Keep)
	}
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	for _, fn := range subs {
		fn(rep)
	}
	return nil
}

// Proxies returns the proxy flags, cleared or not, by feature.
func (m *Monitor) Proxies() []ProxyFlag {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ProxyFlag, 0, len(m.proxies))
	for _, p := range m.proxies {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b ProxyFlag) int { return strings.Compare(a.Feature, b.Feature) })
	return out
}

// Sensitive reports whether feature (a profile field or label id) is a
// flagged proxy that no reviewer has cleared; the decision point holds the
// same set (publishProxies), so the policy and the engines
// treat it as sensitive until then (FP-6).
func (m *Monitor) Sensitive(feature string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proxies[feature]
	return p != nil && !p.Cleared
}

// Flagged reports whether feature is held sensitive, or was flagged for
// protected and then cleared: a flag a reviewer cleared is not raised
// again for the same reason (package ingest asks before flagging a
// lexicon hit).
func (m *Monitor) Flagged(feature, protected string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proxies[feature]
	return p != nil && (!p.Cleared || p.Protected == protected)
}

// ClearProxy records a reviewer's decision that a flagged feature is not a
// proxy (or is justified), in the audit log, and stops treating it as
// sensitive. Only the reviewer role may clear (separation of duties).
func (m *Monitor) ClearProxy(ctx context.Context, caller policy.Caller, feature, reason string) (ProxyFlag, error) {
	if caller.Role != policy.Reviewer {
		return ProxyFlag{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "FP-6", Message: fmt.Sprintf("role %s may not clear a proxy flag; a reviewer must", caller.Role)}
	}
	if strings.TrimSpace(reason) == "" {
		return ProxyFlag{}, portrait.Errorf(portrait.EINVALID, `clearing a proxy flag needs a reason: send {"reason": "…"} saying why the association is not discriminatory`)
	}
	m.mu.Lock()
	p, ok := m.proxies[feature]
	var cur ProxyFlag
	if ok {
		cur = *p
	}
	m.mu.Unlock()
	if !ok {
		return ProxyFlag{}, portrait.Errorf(portrait.ENOTFOUND, "feature %q is not flagged as a proxy; see GET /v1/monitor/proxies", feature)
	}
	if cur.Cleared {
		return ProxyFlag{}, portrait.Errorf(portrait.ECONFLICT, "feature %q was already cleared by %s", feature, cur.ClearedBy)
	}
	now := m.now()
	var idx int64
	err := m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		idx, err = m.deps.Log.Append(ctx, tx, audit.Record{Kind: "proxy_clear", Time: now, Actor: actor(caller), Action: "clear",
			Codes: []string{"FP-6"}, Detail: map[string]any{"feature": feature, "protected": cur.Protected, "reason": reason}})
		return err
	})
	if err != nil {
		return ProxyFlag{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p = m.proxies[feature]
	p.Cleared, p.ClearedBy, p.ClearedAt, p.ClearNote, p.ClearIndex = true, actor(caller), now, reason, idx
	m.publishProxies()
	return *p, nil
}

// publishProxies hands the flagged, uncleared features to the decision
// point, which treats them as sensitive from the next decision on (FP-6).
// Other nodes learn them at their next Load or run. The caller holds m.mu.
func (m *Monitor) publishProxies() {
	var names []string
	for name, p := range m.proxies {
		if !p.Cleared {
			names = append(names, name)
		}
	}
	m.deps.Point.SetProxies(names)
}

// Load rebuilds the proxy flags and clearances from the audit log, the
// record every node shares.
func (m *Monitor) Load(ctx context.Context) error {
	size, err := m.deps.Store.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("monitor: load proxy flags: %w", err)
	}
	flags := map[string]*ProxyFlag{}
	// Checked against the signed tree: an edited flag or clearance is
	// refused with an alert, never acted on (invariant 8).
	ents, err := m.deps.Log.ReadVerifiedKinds(ctx, m.deps.Store, []string{"proxy_flag", "proxy_clear"}, 0, size)
	if err != nil {
		return fmt.Errorf("monitor: load proxy flags: %w", err)
	}
	for _, e := range ents {
		rec := e.Record
		feature, _ := rec.Detail["feature"].(string)
		switch rec.Kind {
		case "proxy_flag":
			p := &ProxyFlag{Feature: feature, Flagged: rec.Time, LogIndex: e.Index}
			p.Protected, _ = rec.Detail["protected"].(string)
			p.Measure, _ = rec.Detail["measure"].(string)
			p.Value, _ = rec.Detail["value"].(float64)
			flags[feature] = p
		case "proxy_clear":
			if p := flags[feature]; p != nil {
				p.Cleared, p.ClearedBy, p.ClearedAt, p.ClearIndex = true, rec.Actor, rec.Time, e.Index
				p.ClearNote, _ = rec.Detail["reason"].(string)
			}
		}
	}
	m.mu.Lock()
	m.proxies = flags
	m.publishProxies()
	m.mu.Unlock()
	return nil
}

// Schedule runs the monitors now and then every interval until ctx ends,
// logging failures; a failed run keeps the previous report.
func (m *Monitor) Schedule(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	if err := m.Load(ctx); err != nil && ctx.Err() == nil {
		m.opts.Logger.Error("monitor: load proxy flags", "err", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rep, err := m.Run(ctx, m.opts.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			m.opts.Logger.Error("monitor run", "err", err)
		case err == nil:
			m.opts.Logger.Info("monitor run", "alerts", len(rep.Alerts), "subjects", rep.Subjects)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
