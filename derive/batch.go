package derive

import (
	"context"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portrait-dev/portrait/catalog"
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

// member is one subject's inputs to a population label.
type member struct {
	ps       portrait.Pseudonym
	x        []float64 // RFM: -recency, frequency, monetary; segment: features
	rfm      label.RFMScore
	events   []label.Event // forecast: the purchase events, times only
	count    int
	from, to time.Time
	seen     int64
}

// collector gathers population-label inputs during a batch run.
type collector struct {
	mu      sync.Mutex
	members map[*entry][]member
}

// The grant g is not kept: populationPage decides each label again, with
// the states as they are when it writes, and seals under that grant; at
// 10⁶ subjects the kept grants were ~0.2 GB.
func (c *collector) add(en *entry, ps portrait.Pseudonym, g policy.Grant, prof map[string]any, events []label.Event, seen int64, now time.Time) {
	m := member{ps: ps, seen: seen}
	switch en.l.Kind {
	case catalog.KindRFM:
		m.rfm, m.count, m.from, m.to = rfmStats(en, events, now)
		m.x = []float64{-m.rfm.Recency, float64(m.rfm.Frequency), m.rfm.Monetary}
	case catalog.KindBGNBD:
		m.events = purchases(en, events, now)
	default:
		m.x, m.count, m.from, m.to = features(en, prof, events, now)
	}
	c.mu.Lock()
	c.members[en] = append(c.members[en], m)
	c.mu.Unlock()
}

// rfmStats computes recency (days since the last purchase, 1e9 if none),
// frequency and monetary value over the label's window, as label.RFM does.
func rfmStats(en *entry, events []label.Event, now time.Time) (s label.RFMScore, n int, from, to time.Time) {
	var start time.Time
	if en.window > 0 {
		start = now.Add(-en.window)
	}
	for _, ev := range events {
		if ev.Type != en.rfmType || ev.Time.After(now) || ev.Time.Before(start) {
			continue
		}
		s.Frequency++
		if x, ok := ev.Fields[en.rfmAmount].(float64); ok {
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
// value is 0.
func features(en *entry, prof map[string]any, events []label.Event, now time.Time) (x []float64, n int, from, to time.Time) {
	var start time.Time
	if en.window > 0 {
		start = now.Add(-en.window)
	}
	x = make([]float64, len(en.l.Features))
	for i, f := range en.l.Features {
		if slices.Contains(en.profile, f) {
			if v, ok := prof[f].(float64); ok {
				x[i] = v
			}
		}
	}
	for _, ev := range events {
		if ev.Time.After(now) || ev.Time.Before(start) {
			continue
		}
		used := false
		for i, f := range en.l.Features {
			if slices.Contains(en.profile, f) {
				continue
			}
			if v, ok := ev.Fields[f].(float64); ok {
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
			m.sorted[k][i] = ms[i].x[k]
		}
		sort.Float64s(m.sorted[k])
	}
	return m
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
	s, n, from, to := rfmStats(en, events, now)
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
	x, n, from, to := features(en, prof, events, now)
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
	col := &collector{members: map[*entry][]member{}}
	w := e.writer(ctx, func(s Summary) {
		if progress != nil {
			progress(min(s.Subjects, total), total)
		}
	})
	var after portrait.Pseudonym
	for !w.failed() {
		page, err := e.store.Pseudonyms(ctx, after, e.opts.PageSize)
		if err != nil {
			sum.add(w.wait())
			return sum, fmt.Errorf("derive: list subjects: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1]
		p, err := e.compute(ctx, c, page, false, col)
		if err != nil {
			sum.add(w.wait())
			sum.add(p.sum)
			return sum, err
		}
		w.put(p)
	}
	sum.add(w.wait())
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
			pts := make(map[string]map[string]float64, len(ms))
			for _, m := range ms {
				p := make(map[string]float64, len(m.x))
				for i, f := range en.l.Features {
					p[f] = m.x[i]
				}
				pts[string(m.ps)] = p
			}
			seg, err := label.Segment(en.l, pts)
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

// writePopulation stores the population labels page by page. Each
// subject's state is read again and the label decided again just before
// writing, so a withdrawal or objection made during the run is honoured.
func (e *Engine) writePopulation(ctx context.Context, c *compiled, col *collector, pop *population, sum *Summary) error {
	bySubject := map[portrait.Pseudonym][]popItem{}
	var order []portrait.Pseudonym
	for _, en := range c.entries {
		if pop.model(en.l) == nil {
			continue
		}
		ms := col.members[en]
		for i := range ms {
			if _, ok := bySubject[ms[i].ps]; !ok {
				order = append(order, ms[i].ps)
			}
			bySubject[ms[i].ps] = append(bySubject[ms[i].ps], popItem{en, &ms[i]})
		}
	}
	slices.Sort(order)
	w := e.writer(ctx, nil)
	for page := range slices.Chunk(order, e.opts.PageSize) {
		if w.failed() {
			break
		}
		p, err := e.populationPage(ctx, page, bySubject, pop)
		if err != nil {
			sum.add(w.wait())
			sum.add(p.sum)
			return err
		}
		w.put(p)
	}
	sum.add(w.wait())
	return w.err
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
				continue // drained: nothing after a failed write is written
			}
			s, err := p.flush(ctx, e)
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

// popItem is one population label of one subject, waiting to be written.
type popItem struct {
	en *entry
	m  *member
}

// populationPage decides and seals one page of population labels, for
// the writer.
func (e *Engine) populationPage(ctx context.Context, page []portrait.Pseudonym, bySubject map[portrait.Pseudonym][]popItem, pop *population) (*pending, error) {
	p := &pending{}
	sum := &p.sum
	gen, err := e.store.Generation(ctx)
	if err != nil {
		return p, fmt.Errorf("derive: %w", err)
	}
	states, err := e.ledger.States(ctx, page)
	if err != nil {
		return p, fmt.Errorf("derive: %w", err)
	}
	subs, err := e.store.Subjects(ctx, page)
	if err != nil {
		return p, fmt.Errorf("derive: load subjects: %w", err)
	}
	now := e.now()
	written := map[string]bool{}
	var work []*subject
	for _, ps := range page {
		subj, ok := subs[ps]
		if !ok {
			continue // erased meanwhile
		}
		s := &subject{ps: ps}
		if s.cipher, err = e.keys.Open(subj); err != nil {
			s.fail("", err)
			sum.Failed += s.failed
			sum.addFailures(s.failures...)
			continue
		}
		for _, it := range bySubject[ps] {
			g, _ := e.decide(states[ps], it.en)
			if !g.Valid() {
				s.remove = append(s.remove, it.en.l.ID)
				continue
			}
			var v Stored
			switch m := pop.models[it.en.l.ID].(type) {
			case *rfmModel:
				v = m.stored(it.en, it.m.rfm, it.m.count, it.m.from, it.m.to, now)
			case *bgModel:
				fv, ok, ferr := m.value(it.en, it.m.events, now)
				if ferr != nil || !ok {
					s.remove = append(s.remove, it.en.l.ID)
					continue
				}
				v = fv
			case *segModel:
				i := sort.SearchStrings(m.seg.IDs, string(ps))
				v.Value = m.seg.Value(i, now)
				v.EventCount, v.From, v.To = it.m.count, it.m.from, it.m.to
				if it.en.l.TTL > 0 {
					v.Expires = now.Add(time.Duration(it.en.l.TTL))
				}
			}
			s.seen = it.m.seen
			if err := s.seal(g, v); err != nil {
				s.fail(it.en.l.ID, err)
				s.remove = append(s.remove, it.en.l.ID)
				continue
			}
			written[it.en.l.ID] = true
		}
		sum.Failed += s.failed
		sum.addFailures(s.failures...)
		work = append(work, s)
	}
	p.work, p.written, p.now, p.gen = work, written, now, gen
	return p, nil
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
