package derive

import (
	"context"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// population is the model of the last batch run: per RFM label its sorted
// recency, frequency and monetary values, per segment label its
// standardisation and centres. Incremental updates place a subject
// against it until the next batch run.
type population struct {
	at     time.Time
	models map[string]any // label id → *rfmModel or *segModel
	// versions guards against a model fitted for another label version.
	versions map[string]int
}

func (p *population) model(l *catalog.Label) any {
	if p == nil || p.versions[l.ID] != l.Version {
		return nil
	}
	return p.models[l.ID]
}

// member is one subject's inputs to a population label, kept from the
// first pass until the population labels are written. It keeps the grant
// the first pass decided the label under, and the generation that
// decision was made at: the population page is written with it, so its
// write transaction decides every value again when any governance change
// (a consent, a flag, a suppression, an erasure) committed since
// (Engine.write, invariant 5) — the population pass need not read every
// subject's state again (session 5 did, and that read was a tenth of a
// run at 10⁷ events).
//
// At 10⁶ subjects a run holds two million members until its end, and the
// collector scans them at every cycle: so a member holds no pointer it
// can do without (the subject is its grant's, times are nanoseconds).
type member struct {
	g                 policy.Grant // g.Pseudonym() is the subject
	gen               int64
	wrapped           []byte // the subject's wrapped key as the first pass read it (populationKeys)
	seen              int64
	x                 []float64 // segment: features; a slice of the collector's arena
	recency, monetary float64   // RFM
	frequency, count  int
	from, to          int64         // Unix nanoseconds, noTime for none
	events            []label.Event // forecast: the purchase events, times only
}

// noTime stands for the zero time.Time in a member.
const noTime = math.MinInt64

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

// at is the time nanos made n into; event times are UTC on both engines.
func at(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (m *member) ps() portrait.Pseudonym { return m.g.Pseudonym() }

// rfm is the member's RFM inputs, as rfmStats computed them.
func (m *member) rfm() label.RFMScore {
	return label.RFMScore{Recency: m.recency, Frequency: m.frequency, Monetary: m.monetary}
}

// collector gathers population-label inputs during a batch run, per label
// in pseudonym order: each page's members are added after the page, in
// the page's order, and pages come in pseudonym order. A model is fitted
// over them in that order (k-means seeds by index), so the same
// population gives the same model whatever the workers' interleaving.
type collector struct {
	members map[*entry][]member
	arena   []float64 // features are carved from it, a page's at a time
	total   int       // subjects in the run: room for a label's members, made once
}

// merge moves a page's collector into c, after the pages before it.
func (c *collector) merge(page *collector) {
	for en, ms := range page.members {
		all := c.members[en]
		if all == nil && c.total > 0 {
			all = make([]member, 0, c.total)
		}
		c.members[en] = append(all, ms...)
	}
}

// popIn is one population label's inputs of one subject, computed by a
// worker and handed to the collector with its page.
type popIn struct {
	en *entry
	m  member
}

// add computes a subject's inputs to population label en from its events
// and profile, reading only the fields g covers (as subject.view would
// have narrowed them), and keeps them on the subject for addPage.
func (c *collector) add(s *subject, en *entry, g policy.Grant, now time.Time) {
	m := member{g: g, seen: s.seen, wrapped: s.subj.WrappedKey, from: noTime, to: noTime}
	var from, to time.Time
	switch en.l.Kind {
	case catalog.KindRFM:
		var r label.RFMScore
		r, m.count, from, to = rfmStats(en, g.Covers(en.rfmAmount), s.events, now)
		m.recency, m.frequency, m.monetary = r.Recency, r.Frequency, r.Monetary
	case catalog.KindBGNBD:
		m.events = purchases(en, s.events, now)
	default:
		m.x, m.count, from, to = features(en, g.Covers, s.profile, s.events, now)
	}
	m.from, m.to = nanos(from), nanos(to)
	s.pop = append(s.pop, popIn{en, m})
}

// addPage hands the members of a computed page to the collector, in page
// order, with the generation the page was decided at.
func (c *collector) addPage(work []*subject, gen int64) {
	need := 0
	for _, s := range work {
		for _, in := range s.pop {
			need += len(in.m.x)
		}
	}
	if len(c.arena) < need {
		c.arena = make([]float64, need)
	}
	for _, s := range work {
		for _, in := range s.pop {
			in.m.gen = gen
			if in.m.x != nil {
				d := len(in.m.x)
				x := c.arena[:d:d]
				c.arena = c.arena[d:]
				copy(x, in.m.x)
				in.m.x = x
			}
			c.members[in.en] = append(c.members[in.en], in.m)
		}
		s.pop = nil
	}
}

// rfmStats computes recency (days since the last purchase, 1e9 if none),
// frequency and monetary value over the label's window, as label.RFM does.
// amount says whether the label's grant covers the amount field: an
// amount it does not cover counts as absent, as in the grant's view.
func rfmStats(en *entry, amount bool, events []label.Event, now time.Time) (s label.RFMScore, n int, from, to time.Time) {
	var start time.Time
	if en.window > 0 {
		start = now.Add(-en.window)
	}
	for _, ev := range events {
		if ev.Type != en.rfmType || ev.Time.After(now) || ev.Time.Before(start) {
			continue
		}
		s.Frequency++
		if x, ok := ev.Fields[en.rfmAmount].(float64); ok && amount {
			s.Monetary = label.Add(s.Monetary, x)
		}
		if from.IsZero() || ev.Time.Before(from) {
			from = ev.Time
		}
		if ev.Time.After(to) {
			to = ev.Time
		}
	}
	s.Recency = 1e9
	if s.Frequency > 0 {
		s.Recency = now.Sub(to).Hours() / 24
	}
	return s, s.Frequency, from, to
}

// features computes a subject's segment features: a profile field is its
// latest value; an event field is log(1 + its total over the label's
// window), because purchase totals are heavy-tailed and k-means on raw
// totals spends its clusters on a handful of outliers. A feature with no
// value is 0, and so is one that covers says the grant does not cover (as in the grant's
// view of the subject).
func features(en *entry, covers func(field string) bool, prof map[string]any, events []label.Event, now time.Time) (x []float64, n int, from, to time.Time) {
	var start time.Time
	if en.window > 0 {
		start = now.Add(-en.window)
	}
	x = make([]float64, len(en.l.Features))
	var fromEvents [8]int // indexes of the features read from events
	evf := fromEvents[:0]
	for i, f := range en.l.Features {
		if !covers(f) {
			continue
		}
		if slices.Contains(en.profile, f) {
			if v, ok := prof[f].(float64); ok {
				x[i] = v
			}
		} else {
			evf = append(evf, i)
		}
	}
	for _, ev := range events {
		if ev.Time.After(now) || ev.Time.Before(start) {
			continue
		}
		used := false
		for _, i := range evf {
			if v, ok := ev.Fields[en.l.Features[i]].(float64); ok {
				x[i] = label.Add(x[i], v)
				used = true
			}
		}
		if used {
			n++
			if from.IsZero() || ev.Time.Before(from) {
				from = ev.Time
			}
			if ev.Time.After(to) {
				to = ev.Time
			}
		}
	}
	for i, f := range en.l.Features {
		if !slices.Contains(en.profile, f) {
			x[i] = math.Log1p(math.Max(x[i], 0))
		}
	}
	return x, n, from, to
}

// batchView is view for a batch run: the same profile and events, with
// only the fields g covers, but the narrowed events share their field
// maps where they can. An event left with no field shares one empty map,
// and one left with a single field of a string, number or bool value
// shares the map of every other such event with the same field and value
// (a view event's category, a purchase's amount): narrowing copied a map
// per event and label, a tenth of a run's allocations. The maps are only
// read (label.Rule.Eval), and live as long as the subject's derivation.
func (s *subject) batchView(en *entry, g policy.Grant) (map[string]any, []label.Event) {
	prof := s.profileFor(g)
	narrowed := false
	for i := 0; i < len(s.events) && !narrowed; i++ {
		for k := range s.events[i].Fields {
			if !g.Covers(k) {
				narrowed = true
				break
			}
		}
	}
	if !narrowed {
		return prof, s.events
	}
	if s.narrowed != nil && len(s.which) == len(s.events) {
		// Read through the batch page (scan.go): narrow each decoded
		// map once per run of the page and grant fields.
		set := s.narrowed.set(g)
		out := s.viewScratch()
		for i, ev := range s.events {
			out[i] = label.Event{Type: ev.Type, Time: ev.Time, Fields: s.narrowed.narrow(ev.Fields, s.which[i], set, g)}
		}
		return prof, out
	}
	type one struct {
		field string
		value any
	}
	var empty map[string]any
	shared := map[one]map[string]any{}
	out := s.viewScratch()
	for i, ev := range s.events {
		n, field := 0, ""
		for k := range ev.Fields {
			if g.Covers(k) {
				n, field = n+1, k
			}
		}
		var f map[string]any
		switch v := ev.Fields[field]; {
		case n == 0:
			if empty == nil {
				empty = map[string]any{}
			}
			f = empty
		case n == 1 && comparableValue(v):
			k := one{field, v}
			if f = shared[k]; f == nil {
				f = map[string]any{field: v}
				shared[k] = f
			}
		default:
			f = make(map[string]any, n)
			for k, v := range ev.Fields {
				if g.Covers(k) {
					f[k] = v
				}
			}
		}
		out[i] = label.Event{Type: ev.Type, Time: ev.Time, Fields: f}
	}
	return prof, out
}

// viewScratch returns room for a narrowed copy of s.events, the same
// memory for each label of the subject: a batch run seals each label's
// value (settle) before it narrows the next, and keeps no view (the
// memo, which does, is incremental), so a slice per label and subject
// was a sixteenth of a run's allocated bytes for nothing.
func (s *subject) viewScratch() []label.Event {
	if cap(s.scratch) < len(s.events) {
		s.scratch = make([]label.Event, len(s.events))
	}
	s.scratch = s.scratch[:len(s.events)]
	return s.scratch
}

// comparableValue reports whether v is a decoded JSON scalar that can key
// a map and equals no other value: not a zero, since 0 and -0 are equal
// keys yet sum apart.
func comparableValue(v any) bool {
	switch x := v.(type) {
	case string, bool:
		return true
	case float64:
		return x != 0 && x == x
	}
	return false
}

// all covers every field: for events and profiles already narrowed to a grant.
func all(string) bool { return true }

// rfmModel holds the population's sorted values; a subject's quintile
// score is 1 + ⌊5 · (values strictly lower) / n⌋, label.RFM's rule.
type rfmModel struct {
	sorted [3][]float64
}

func fitRFM(ms []member) *rfmModel {
	m := &rfmModel{}
	for k := range 3 {
		m.sorted[k] = make([]float64, len(ms))
		for i := range ms {
			m.sorted[k][i] = ms[i].rfmX(k)
		}
		sort.Float64s(m.sorted[k])
	}
	return m
}

// rfmX is the member's k-th RFM coordinate: -recency, frequency, monetary.
func (m *member) rfmX(k int) float64 {
	switch k {
	case 0:
		return -m.recency
	case 1:
		return float64(m.frequency)
	}
	return m.monetary
}

func (m *rfmModel) score(k int, x float64) int {
	n := len(m.sorted[k])
	if n == 0 {
		return 1
	}
	return 1 + 5*sort.SearchFloat64s(m.sorted[k], x)/n
}

func (m *rfmModel) stored(en *entry, s label.RFMScore, count int, from, to, now time.Time) Stored {
	s.R = m.score(0, -s.Recency)
	s.F = m.score(1, float64(s.Frequency))
	s.M = m.score(2, s.Monetary)
	s.Class = label.RFMClass(s.R, s.F, s.M)
	// The class's name and the class fact's sentence are not sealed:
	// decoding words them from the class and the scores (label.RFMText).
	l := en.l
	w := ""
	if en.window > 0 {
		w = catalog.Duration(en.window).String()
	}
	v := label.Value{Label: l.ID, Version: l.Version, Kind: catalog.KindRFM, Score: float64(s.R*100 + s.F*10 + s.M),
		Confidence: 1, Inputs: []string{en.rfmAmount, "event:" + en.rfmType}, EventCount: count, From: from, To: to, Computed: now,
		Facts: []label.Fact{
			{Func: "rfm", Equals: s.Class},
			{Func: "recency", Type: en.rfmType, Value: s.Recency},
			{Func: "frequency", Type: en.rfmType, Window: w, Value: float64(s.Frequency)},
			{Func: "monetary", Type: en.rfmType, Field: en.rfmAmount, Window: w, Value: s.Monetary},
		}}
	if w == "" {
		// Explain needs a window to word frequency and monetary; all time reads as 100 years.
		v.Facts[2].Window, v.Facts[3].Window = "100y", "100y"
	}
	if l.TTL > 0 {
		v.Expires = now.Add(time.Duration(l.TTL))
	}
	return Stored{Value: v, RFM: &s}
}

func (m *rfmModel) value(en *entry, events []label.Event, now time.Time) Stored {
	s, n, from, to := rfmStats(en, true, events, now) // events narrowed to the grant already
	return m.stored(en, s, n, from, to, now)
}

// segModel is a fitted segmentation: standardisation, centres, descriptions.
type segModel struct {
	seg *label.Segmentation
}

// assign places standardised point z in the nearest segment, with the
// confidence label.Segment gives: d2 / (d1 + d2).
func (m *segModel) assign(x []float64) (int, float64) {
	best, d1, d2 := 0, math.Inf(1), math.Inf(1)
	for j, c := range m.seg.Centroids {
		var d float64
		for f := range x {
			z := (x[f] - m.seg.Mean[f]) / m.seg.SD[f]
			d += (z - c[f]) * (z - c[f])
		}
		d = math.Sqrt(d)
		if d < d1 {
			best, d1, d2 = j, d, d1
		} else if d < d2 {
			d2 = d
		}
	}
	conf := 1.0
	if d1+d2 > 0 && !math.IsInf(d2, 1) {
		conf = d2 / (d1 + d2)
	}
	return best, conf
}

func (m *segModel) value(en *entry, prof map[string]any, events []label.Event, now time.Time) (Stored, error) {
	x, n, from, to := features(en, all, prof, events, now) // narrowed to the grant already
	seg, conf := m.assign(x)
	v := label.Value{Label: en.l.ID, Version: en.l.Version, Kind: catalog.KindSegment, Segment: seg, Confidence: conf,
		Inputs: en.l.Features, Computed: now, EventCount: n, From: from, To: to,
		Facts: []label.Fact{{Func: "segment", Value: float64(seg), Text: m.seg.Descriptions[seg]}}}
	if en.l.TTL > 0 {
		v.Expires = now.Add(time.Duration(en.l.TTL))
	}
	return Stored{Value: v}, nil
}

// All derives every label of every stored subject: rule and score labels
// page by page, then RFM quintiles and k-means segments over the subjects
// each population label may be derived for. progress, if not nil, is
// called after each page with the subjects done so far and the total. A population label that cannot be fitted (k larger than the
// population) is reported in the summary's Errors and in the returned
// error, and nothing of it is stored; the other labels are. Its writes
// are fenced as FenceBatch (or a fence in ctx) says.
func (e *Engine) All(ctx context.Context, progress func(done, total int)) (Summary, error) {
	start := time.Now()
	ctx = e.batchContext(ctx)
	c, cerr := e.compiled()
	var sum Summary
	if cerr != nil {
		sum.Errors = append(sum.Errors, cerr.Error())
	}
	total, err := e.count(ctx)
	if err != nil {
		return sum, err
	}
	col := &collector{members: map[*entry][]member{}, total: total}
	w := e.writer(ctx, func(s Summary) {
		if progress != nil {
			progress(min(s.Subjects, total), total)
		}
	})
	// Two pages are computed at once, each on every CPU: one page's
	// serial part (its states, keys and decisions) then overlaps the
	// other's evaluation. They are handed to the collector and the writer
	// in page order.
	type computed struct {
		p   *pending
		col *collector
		err error
	}
	var inflight []chan computed
	var failed error
	var failedSum Summary // of the failed page, added after the pages written
	take := func() {
		r := <-inflight[0]
		inflight = inflight[1:]
		if failed != nil {
			r.p.run.Close()
			return // after a failed page nothing more is kept or written
		}
		if r.err != nil {
			r.p.run.Close()
			failed, failedSum = r.err, r.p.sum
			return
		}
		col.merge(r.col)
		w.put(r.p)
	}
	var after portrait.Pseudonym
	for !w.failed() && failed == nil {
		page, l, err := e.list(ctx, after)
		if err != nil {
			failed = err
			break
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1]
		ch := make(chan computed, 1)
		inflight = append(inflight, ch)
		go func() {
			pc := &collector{members: map[*entry][]member{}}
			p, err := e.compute(ctx, c, page, l, pc)
			ch <- computed{p, pc, err}
		}()
		if len(inflight) == 2 {
			take()
		}
	}
	for len(inflight) > 0 {
		take()
	}
	sum.add(w.wait())
	if failed != nil {
		sum.add(failedSum)
		return sum, failed
	}
	if err := w.err; err != nil {
		return sum, err
	}
	now := e.now()
	pop := &population{at: now, models: map[string]any{}, versions: map[string]int{}}
	var fitErrs []error
	for _, en := range c.entries {
		ms := col.members[en]
		if !en.population() || len(ms) == 0 {
			continue
		}
		var model any
		switch en.l.Kind {
		case catalog.KindRFM:
			model = fitRFM(ms)
		case catalog.KindBGNBD:
			bg, err := fitBG(ms, now)
			if err != nil {
				err = fmt.Errorf("label %q: %w", en.l.ID, err)
				fitErrs = append(fitErrs, err)
				sum.Errors = append(sum.Errors, err.Error())
				continue
			}
			if err := e.recordFit(ctx, en, bg); err != nil {
				return sum, err
			}
			model = bg
		default:
			ids, pts := make([]string, len(ms)), make([][]float64, len(ms))
			for i := range ms {
				ids[i], pts[i] = string(ms[i].ps()), ms[i].x
			}
			seg, err := label.SegmentSorted(en.l, ids, pts)
			if err != nil {
				err = fmt.Errorf("label %q: %w", en.l.ID, err)
				fitErrs = append(fitErrs, err)
				sum.Errors = append(sum.Errors, err.Error())
				continue
			}
			model = &segModel{seg: seg}
		}
		pop.models[en.l.ID], pop.versions[en.l.ID] = model, en.l.Version
	}
	if err := e.writePopulation(ctx, c, col, pop, &sum); err != nil {
		return sum, err
	}
	e.pop.Store(pop)
	sum.Elapsed = time.Since(start)
	e.mu.Lock()
	e.status.BatchRuns++
	e.status.LastBatchAt = now
	last := sum
	e.status.LastBatch = &last
	e.mu.Unlock()
	if cerr != nil {
		fitErrs = append(fitErrs, cerr)
	}
	if len(fitErrs) > 0 {
		return sum, fmt.Errorf("derive: %d label(s) not derived: %w", len(fitErrs), errors.Join(fitErrs...))
	}
	return sum, nil
}

// listed is a batch page's subject rows and governance states, read
// with the page's listing as one range of each table
// (Store.SubjectsAfter, Ledger.StatesRange), and the governance
// generation read before them. compute uses them only if it reads the
// same generation again: then no governance change (a consent, a flag,
// a suppression, an erasure: each moves the generation) committed since
// that read, and the rows and states are what a read after the
// generation would have returned; otherwise it reads them again, as an
// incremental page does.
type listed struct {
	gen    int64
	keys   map[portrait.Pseudonym]portrait.SubjectKey
	states map[portrait.Pseudonym]*policy.State
}

// list reads the next batch page after after: its pseudonyms, in order,
// and their rows and states.
func (e *Engine) list(ctx context.Context, after portrait.Pseudonym) ([]portrait.Pseudonym, *listed, error) {
	gen, err := e.store.Generation(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("derive: list subjects: %w", err)
	}
	subs, err := e.store.SubjectsAfter(ctx, after, e.opts.PageSize)
	if err != nil {
		return nil, nil, fmt.Errorf("derive: list subjects: %w", err)
	}
	l := &listed{gen: gen, keys: make(map[portrait.Pseudonym]portrait.SubjectKey, len(subs))}
	page := make([]portrait.Pseudonym, len(subs))
	for i, s := range subs {
		page[i] = s.Pseudonym
		l.keys[s.Pseudonym] = s
	}
	if len(page) > 0 {
		// Read after gen, under it: the suspensions are refreshed to it too.
		if l.states, _, err = e.ledger.StatesRange(consent.AtGeneration(ctx, gen), page); err != nil {
			return nil, nil, fmt.Errorf("derive: %w", err)
		}
	}
	return page, l, nil
}

// writePopulation stores the population labels page by page, in
// pseudonym order: the subjects of every label with a model, merged from
// the labels' members (each in pseudonym order). Each page is written
// under the generation its members were decided at, so that a governance
// change made during the run is honoured by the write's re-check.
func (e *Engine) writePopulation(ctx context.Context, c *compiled, col *collector, pop *population, sum *Summary) error {
	var heads []popHead
	for _, en := range c.entries {
		if pop.model(en.l) == nil {
			continue
		}
		ms := col.members[en]
		if !slices.IsSortedFunc(ms, func(a, b member) int { return strings.Compare(string(a.ps()), string(b.ps())) }) {
			return fmt.Errorf("derive: label %q: population members out of order", en.l.ID)
		}
		heads = append(heads, popHead{en: en, ms: ms})
	}
	w := e.writer(ctx, nil)
	for !w.failed() {
		page := nextPopPage(heads, e.opts.PageSize)
		if len(page) == 0 {
			break
		}
		p, err := e.populationPage(ctx, page, pop)
		if err != nil {
			p.run.Close()
			sum.add(w.wait())
			sum.add(p.sum)
			return err
		}
		w.put(p)
	}
	sum.add(w.wait())
	return w.err
}

// popHead walks one population label's members.
type popHead struct {
	en *entry
	ms []member
	i  int
}

// popSubject is one subject's population labels, waiting to be written.
type popSubject struct {
	ps    portrait.Pseudonym
	items []popItem
}

// popItem is one population label of one subject: its inputs and their
// index among the label's members (a segment's index in the model).
type popItem struct {
	en *entry
	m  *member
	i  int
}

// nextPopPage takes the next n subjects, in pseudonym order, with their
// members of every label.
func nextPopPage(heads []popHead, n int) []popSubject {
	var page []popSubject
	for len(page) < n {
		var next portrait.Pseudonym
		found := false
		for _, h := range heads {
			if h.i < len(h.ms) && (!found || h.ms[h.i].ps() < next) {
				next, found = h.ms[h.i].ps(), true
			}
		}
		if !found {
			break
		}
		ps := popSubject{ps: next}
		for k := range heads {
			h := &heads[k]
			if h.i < len(h.ms) && h.ms[h.i].ps() == next {
				ps.items = append(ps.items, popItem{en: h.en, m: &h.ms[h.i], i: h.i})
				h.i++
			}
		}
		page = append(page, ps)
	}
	return page
}

// pageWriter writes a batch run's computed pages in order, in one
// goroutine, while the caller computes the next page: the write
// transaction runs on one core (SQLite has one writer), and evaluation,
// which uses every core, fills the other meanwhile. One page waits at
// most, so two pages are in memory. Each page keeps the generation it was
// decided under and its write re-checks it (Engine.write), so writing a
// page after the next one was decided changes nothing that is stored.
type pageWriter struct {
	pages chan *pending
	done  chan struct{}
	stop  atomic.Bool // set by the writer when a write failed
	sum   Summary     // the written pages' summaries, once done
	err   error       // the first failed write, once done
}

// writer starts a pageWriter; written, if not nil, is called from the
// writer after each page with the summary of the pages written so far.
func (e *Engine) writer(ctx context.Context, written func(Summary)) *pageWriter {
	w := &pageWriter{pages: make(chan *pending, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for p := range w.pages {
			if w.err != nil {
				p.run.Close()
				continue // drained: nothing after a failed write is written
			}
			s, err := p.flush(ctx, e)
			p.run.Close() // the page's keys: written, they are destroyed
			w.sum.add(s)
			if err != nil {
				w.err = err
				w.stop.Store(true)
				continue
			}
			if written != nil {
				written(w.sum)
			}
		}
	}()
	return w
}

// put hands a computed page to the writer; it waits while one page is
// already waiting.
func (w *pageWriter) put(p *pending) { w.pages <- p }

// failed reports whether a write has failed: the caller stops computing.
func (w *pageWriter) failed() bool { return w.stop.Load() }

// wait closes the writer, waits for the pages handed to it and returns
// their summary; w.err is then the first failed write's error.
func (w *pageWriter) wait() Summary {
	close(w.pages)
	<-w.done
	return w.sum
}

// populationPage seals one page of population labels, for the writer,
// under the grants the first pass decided them under; the page carries
// the oldest generation of those decisions, so its write decides them
// again if anything changed since. Each subject's key is opened again
// (populationKeys: a subject erased meanwhile has none, and is skipped),
// in the page's keys.Run, and the subjects are sealed on every CPU.
func (e *Engine) populationPage(ctx context.Context, page []popSubject, pop *population) (*pending, error) {
	p := &pending{run: e.keys.Run(len(page))}
	sum := &p.sum
	start := time.Now()
	pss := make([]portrait.Pseudonym, len(page))
	gen := int64(math.MaxInt64)
	for i, ps := range page {
		pss[i] = ps.ps
		for _, it := range ps.items {
			gen = min(gen, it.m.gen)
		}
	}
	subs, err := e.populationKeys(ctx, page, pss, gen)
	if err != nil {
		return p, err
	}
	now := e.now()
	work := make([]*subject, len(page))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(page)/8))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w * len(page) / workers; k < (w+1)*len(page)/workers; k++ {
				work[k] = e.sealPopulation(page[k], subs, p.run, pop, now)
			}
		}()
	}
	wg.Wait()
	written := map[string]bool{}
	kept := work[:0]
	for _, s := range work {
		if s == nil {
			continue // erased meanwhile
		}
		sum.Failed += s.failed
		sum.addFailures(s.failures...)
		if s.cipher == nil {
			continue // its key could not be opened: nothing to write
		}
		for _, v := range s.values {
			written[v.Label] = true
		}
		kept = append(kept, s)
	}
	sum.Compute = time.Since(start)
	p.work, p.written, p.now, p.gen = kept, written, now, gen
	return p, nil
}

// populationKeys returns the stored rows of a population page's subjects.
// While the generation is still gen, the page's members' oldest, the rows
// the first pass read serve: every governance change moves the generation,
// erasure too, so no subject of the page was erased since, and none
// erased has its key opened again from a copy the run kept. Otherwise
// they are read again, and a subject erased meanwhile is absent. The
// first pass read each page's rows with its listing, so a run reads a
// subject's row once instead of once per pass.
func (e *Engine) populationKeys(ctx context.Context, page []popSubject, pss []portrait.Pseudonym, gen int64) (map[portrait.Pseudonym]portrait.SubjectKey, error) {
	cur, err := e.store.Generation(ctx)
	if err != nil {
		return nil, fmt.Errorf("derive: load subjects: %w", err)
	}
	if cur == gen {
		subs := make(map[portrait.Pseudonym]portrait.SubjectKey, len(page))
		for _, ps := range page {
			w := ps.items[0].m.wrapped
			if w == nil {
				subs = nil // not kept: read them all
				break
			}
			subs[ps.ps] = portrait.SubjectKey{Pseudonym: ps.ps, WrappedKey: w}
		}
		if subs != nil {
			return subs, nil
		}
	}
	subs, err := e.store.Subjects(ctx, pss)
	if err != nil {
		return nil, fmt.Errorf("derive: load subjects: %w", err)
	}
	return subs, nil
}

// sealPopulation computes and seals one subject's population labels; nil
// if the subject was erased since the first pass.
func (e *Engine) sealPopulation(ps popSubject, subs map[portrait.Pseudonym]portrait.SubjectKey, run *keys.Run, pop *population, now time.Time) *subject {
	subj, ok := subs[ps.ps]
	if !ok {
		return nil
	}
	s := &subject{ps: ps.ps, values: make([]portrait.LabelValue, 0, len(ps.items))}
	var err error
	if s.cipher, err = run.Open(subj); err != nil {
		s.cipher = nil
		s.fail("", err)
		return s
	}
	for _, it := range ps.items {
		var v Stored
		switch m := pop.models[it.en.l.ID].(type) {
		case *rfmModel:
			v = m.stored(it.en, it.m.rfm(), it.m.count, at(it.m.from), at(it.m.to), now)
		case *bgModel:
			fv, ok, ferr := m.value(it.en, it.m.events, now)
			if ferr != nil || !ok {
				s.remove = append(s.remove, it.en.l.ID)
				continue
			}
			v = fv
		case *segModel:
			v.Value = m.seg.Value(it.i, now)
			v.EventCount, v.From, v.To = it.m.count, at(it.m.from), at(it.m.to)
			if it.en.l.TTL > 0 {
				v.Expires = now.Add(time.Duration(it.en.l.TTL))
			}
		}
		s.seen = it.m.seen
		if err := s.seal(it.m.g, v); err != nil {
			s.fail(it.en.l.ID, err)
			s.remove = append(s.remove, it.en.l.ID)
		}
	}
	return s
}

// labelRemover deletes labels of many subjects at once (guard.Tx's
// DeleteLabelsOf, on both engines).
type labelRemover interface {
	DeleteLabelsOf(ctx context.Context, pseudonyms []portrait.Pseudonym, labels []string) error
}

// deleteRemoved deletes the labels each subject of a page lost. A batch
// page's subjects mostly lose the same labels (those of the purposes they
// did not consent to), so it deletes them with one statement per set of
// labels where the store can, rather than one per subject: at 10⁶
// subjects those were a million statements (on PostgreSQL, round trips).
func deleteRemoved(ctx context.Context, tx portrait.Tx, work []*subject, incremental bool) (int, error) {
	r, ok := tx.(labelRemover)
	if incremental || !ok {
		n := 0
		for _, s := range work {
			if del := s.deletions(); len(del) > 0 {
				n += len(del)
				if err := tx.DeleteLabels(ctx, s.ps, del); err != nil {
					return n, err
				}
			}
		}
		return n, nil
	}
	type set struct {
		labels []string
		of     []portrait.Pseudonym
	}
	var sets []*set
	bySet := map[string]*set{}
	n := 0
	for _, s := range work {
		del := s.deletions()
		if len(del) == 0 {
			continue
		}
		n += len(del)
		ids := slices.Clone(del)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		key := strings.Join(ids, "\x00")
		st := bySet[key]
		if st == nil {
			st = &set{labels: ids}
			bySet[key] = st
			sets = append(sets, st)
		}
		st.of = append(st.of, s.ps)
	}
	for _, st := range sets {
		if err := r.DeleteLabelsOf(ctx, st.of, st.labels); err != nil {
			return n, err
		}
	}
	return n, nil
}

// count pages through the pseudonyms once, for the progress total.
func (e *Engine) count(ctx context.Context) (int, error) {
	n, after := 0, portrait.Pseudonym("")
	for {
		page, err := e.store.Pseudonyms(ctx, after, 10_000)
		if err != nil {
			return 0, fmt.Errorf("derive: list subjects: %w", err)
		}
		if len(page) == 0 {
			return n, nil
		}
		n += len(page)
		after = page[len(page)-1]
	}
}
