package monitor

import (
	"cmp"
	"container/list"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/fairness"
)

// Bounds of the answer-time filter-bubble aggregates: memory grows with
// these, never with the number of answers observed.
const (
	// maxRecommenderItems caps the distinct items counted per recommender
	// and period; past it coverage and Gini are lower bounds (flagged).
	maxRecommenderItems = 1 << 16
	// maxSubjectItems caps the distinct items counted per subject and
	// period, for the same reason.
	maxSubjectItems = 1 << 10
	// maxReportedSubjects bounds the subjects listed in a report; the
	// counts cover them all.
	maxReportedSubjects = 1000
)

// bubbleAgg is one scope's (a recommender's or a subject's) answer-time
// exposure, kept for the last Options.BubblePeriods periods.
type bubbleAgg struct {
	periods []*bubblePeriod // oldest first
	elem    *list.Element   // subjects only: place in the LRU list
}

type bubblePeriod struct {
	period      int64
	lists       int64
	impressions int64
	ildSum      float64
	ildLists    int64
	cats        map[string]int64
	items       map[string]int64
	capped      bool
}

// bubbles holds the answer-time aggregates, under Monitor.bmu.
type bubbles struct {
	recommenders map[string]*bubbleAgg
	subjects     map[portrait.Pseudonym]*bubbleAgg
	lru          *list.List // of pseudonyms, least recently observed at the front
	evicted      int64
	rejected     int64
}

func newBubbles() *bubbles {
	return &bubbles{recommenders: map[string]*bubbleAgg{}, subjects: map[portrait.Pseudonym]*bubbleAgg{}, lru: list.New()}
}

// Observe records one recommendation answer as it is returned: the
// recommender (use-case id), the subject's pseudonym, and the items shown
// with the category of each, in order (FB-1, FB-2). The recommendation's
// audit record holds only a digest of the items, so this is where
// per-recommender and per-subject diversity is measured. Observe is cheap
// (a lock and a few map updates per item) and keeps bounded memory: the
// last BubblePeriods periods per scope, at most BubbleSubjects subjects
// (the least recently observed are dropped) and a cap on distinct items
// per period. An answer whose items and categories differ in length, or
// with no items, is not counted (the report says how many).
func (m *Monitor) Observe(usecase string, pseudonym portrait.Pseudonym, items, categories []string) {
	now := m.opts.Now()
	p := periodOf(now, m.opts.Period)
	var ild float64
	hasILD := false
	if len(categories) >= 2 {
		ild, hasILD = fairness.IntraListDiversity(categories)
	}
	m.bmu.Lock()
	defer m.bmu.Unlock()
	b := m.bubbles
	if usecase == "" || pseudonym == "" || len(items) == 0 || len(items) != len(categories) {
		b.rejected++
		return
	}
	r := b.recommenders[usecase]
	if r == nil {
		r = &bubbleAgg{}
		b.recommenders[usecase] = r
	}
	r.add(p, items, categories, ild, hasILD, m.opts.BubblePeriods, maxRecommenderItems)
	s := b.subjects[pseudonym]
	if s == nil {
		if len(b.subjects) >= m.opts.BubbleSubjects {
			oldest := b.lru.Front()
			delete(b.subjects, oldest.Value.(portrait.Pseudonym))
			b.lru.Remove(oldest)
			b.evicted++
		}
		s = &bubbleAgg{}
		s.elem = b.lru.PushBack(pseudonym)
		b.subjects[pseudonym] = s
	} else {
		b.lru.MoveToBack(s.elem)
	}
	s.add(p, items, categories, ild, hasILD, m.opts.BubblePeriods, maxSubjectItems)
}

func periodOf(t time.Time, d time.Duration) int64 {
	return int64(math.Floor(float64(t.UnixNano()) / float64(d)))
}

func (a *bubbleAgg) add(p int64, items, cats []string, ild float64, hasILD bool, keep, maxItems int) {
	var cur *bubblePeriod
	if n := len(a.periods); n > 0 && a.periods[n-1].period == p {
		cur = a.periods[n-1]
	} else if n > 0 && a.periods[n-1].period > p {
		// The clock went back: count it in the newest period rather than
		// reorder history.
		cur = a.periods[n-1]
	} else {
		cur = &bubblePeriod{period: p, cats: map[string]int64{}, items: map[string]int64{}}
		a.periods = append(a.periods, cur)
		if len(a.periods) > keep {
			a.periods = slices.Delete(a.periods, 0, len(a.periods)-keep)
		}
	}
	cur.lists++
	cur.impressions += int64(len(items))
	if hasILD {
		cur.ildSum += ild
		cur.ildLists++
	}
	for i, it := range items {
		cur.cats[cats[i]]++
		if _, ok := cur.items[it]; ok || len(cur.items) < maxItems {
			cur.items[it]++
		} else {
			cur.capped = true
		}
	}
}

// RecommenderSection is the answer-time filter-bubble monitor, per
// recommender and per subject (FB-1, FB-2).
type RecommenderSection struct {
	PeriodSeconds  int64 `json:"period_seconds"`
	MinImpressions int   `json:"min_impressions"`
	// Floor is the default normalised-entropy floor; Floors the floors set
	// per recommender (FB-2).
	Floor          float64            `json:"floor"`
	Floors         map[string]float64 `json:"floors,omitempty"`
	CatalogueItems int                `json:"catalogue_items"`
	CatalogueCats  int                `json:"catalogue_categories"`
	Recommenders   []BubbleScope      `json:"recommenders"`
	// Subjects lists the subjects below their floor first, then the
	// lowest, at most 1000; the counts cover every tracked subject.
	Subjects         []BubbleScope `json:"subjects"`
	SubjectsTracked  int           `json:"subjects_tracked"`
	SubjectsBelow    int           `json:"subjects_below_floor"`
	SubjectsEvicted  int64         `json:"subjects_evicted"`
	SubjectsLeftOut  int           `json:"subjects_left_out"`
	AnswersRejected  int64         `json:"answers_rejected"`
	Note             string        `json:"note,omitempty"`
	SubjectsReported int           `json:"subjects_reported"`
}

// BubbleScope is one recommender's or subject's diversity over time.
type BubbleScope struct {
	Scope       string             `json:"scope"`
	Recommender string             `json:"recommender,omitempty"`
	Pseudonym   portrait.Pseudonym `json:"subject,omitempty"`
	Floor       float64            `json:"floor"`
	Periods     []BubbleMetric     `json:"periods"`
	// Trend is the trend of normalised category entropy against Floor;
	// ILDSlope the least-squares slope of intra-list diversity.
	Trend    fairness.DiversityTrend `json:"entropy_trend"`
	ILDSlope *float64                `json:"intra_list_diversity_slope,omitempty"`
	Note     string                  `json:"note,omitempty"`
}

// BubbleMetric is one scope's diversity in one period.
type BubbleMetric struct {
	Start       time.Time `json:"start"`
	Lists       int64     `json:"lists"`
	Impressions int64     `json:"impressions"`
	// Entropy is the normalised category entropy (0–1) of everything shown.
	Entropy float64 `json:"category_entropy"`
	// ILD is the mean intra-list diversity: the share of item pairs within
	// one answer whose categories differ; nil when no answer had two items.
	ILD      *float64 `json:"intra_list_diversity"`
	Coverage float64  `json:"coverage"`
	Gini     float64  `json:"exposure_gini"`
	// Capped: more distinct items than are counted were shown; coverage
	// is then a lower bound and Gini approximate.
	Capped bool `json:"items_capped,omitempty"`
}

// floorOf is the floor for recommender uc: its own, or the default.
func (m *Monitor) floorOf(uc string) float64 {
	if f, ok := m.opts.RecommenderFloors[uc]; ok {
		return f
	}
	return m.opts.DiversityFloor
}

// recommenderSection reports the answer-time aggregates; keep holds the
// pseudonyms that may be monitored (not restricted, not erased); the
// others are dropped from memory, since monitoring is processing too.
func (m *Monitor) recommenderSection(keep map[portrait.Pseudonym]bool, items, cats int, rep *Report) error {
	o := m.opts
	sec := RecommenderSection{PeriodSeconds: int64(o.Period / time.Second), MinImpressions: o.MinImpressions, Floor: o.DiversityFloor,
		Floors: o.RecommenderFloors, Recommenders: []BubbleScope{}, Subjects: []BubbleScope{}}
	m.bmu.Lock()
	b := m.bubbles
	for ps, s := range b.subjects {
		if !keep[ps] {
			delete(b.subjects, ps)
			b.lru.Remove(s.elem)
			sec.SubjectsLeftOut++
		}
	}
	type snap struct {
		scope, uc string
		ps        portrait.Pseudonym
		periods   []bubblePeriod
	}
	var snaps []snap
	seenItems, seenCats := map[string]bool{}, map[string]bool{}
	for uc, r := range b.recommenders {
		s := snap{scope: "recommender:" + uc, uc: uc}
		for _, p := range r.periods {
			s.periods = append(s.periods, p.clone())
			for it := range p.items {
				seenItems[it] = true
			}
			for c := range p.cats {
				seenCats[c] = true
			}
		}
		snaps = append(snaps, s)
	}
	for ps, a := range b.subjects {
		s := snap{scope: "recommended-to:" + string(ps), ps: ps}
		for _, p := range a.periods {
			s.periods = append(s.periods, p.clone())
		}
		snaps = append(snaps, s)
	}
	sec.SubjectsTracked, sec.SubjectsEvicted, sec.AnswersRejected = len(b.subjects), b.evicted, b.rejected
	m.bmu.Unlock()

	if len(snaps) == 0 {
		sec.Note = "no recommendation answers observed since this node started: answers are measured as they are returned to people, not from the audit log, which keeps only a digest of the items"
		rep.Recommenders = sec
		return nil
	}
	if items == 0 || cats == 0 {
		items, cats = len(seenItems), len(seenCats)
		sec.Note = "no item catalog is stored: coverage and entropy are relative to the items and categories shown"
	}
	sec.CatalogueItems, sec.CatalogueCats = items, cats
	var subjects []BubbleScope
	for _, s := range snaps {
		floor := o.DiversityFloor
		if s.uc != "" {
			floor = m.floorOf(s.uc)
		}
		bs, err := bubbleScope(s.scope, s.periods, floor, o, items, cats)
		if err != nil {
			return err
		}
		bs.Recommender, bs.Pseudonym = s.uc, s.ps
		if s.uc != "" {
			sec.Recommenders = append(sec.Recommenders, bs)
		} else {
			subjects = append(subjects, bs)
		}
		if bs.Trend.BelowFloor {
			if s.ps != "" {
				sec.SubjectsBelow++
			}
			rep.Alerts = append(rep.Alerts, Alert{Kind: "diversity", Requirement: "FB-2", Metric: "category_entropy", Value: bs.Trend.Latest,
				Threshold: floor, Scope: s.scope, Pseudonym: s.ps, Message: "recommendations: " + bs.Trend.Message, Facts: &Facts{Slope: bs.Trend.Slope}})
		}
	}
	slices.SortFunc(sec.Recommenders, func(a, b BubbleScope) int { return strings.Compare(a.Scope, b.Scope) })
	slices.SortFunc(subjects, func(a, b BubbleScope) int {
		if a.Trend.BelowFloor != b.Trend.BelowFloor {
			if a.Trend.BelowFloor {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.Trend.Latest, b.Trend.Latest), strings.Compare(a.Scope, b.Scope))
	})
	sec.Subjects = append(sec.Subjects, subjects[:min(len(subjects), maxReportedSubjects)]...)
	sec.SubjectsReported = len(sec.Subjects)
	rep.Recommenders = sec
	return nil
}

func (p *bubblePeriod) clone() bubblePeriod {
	c := *p
	c.cats = make(map[string]int64, len(p.cats))
	for k, v := range p.cats {
		c.cats[k] = v
	}
	c.items = make(map[string]int64, len(p.items))
	for k, v := range p.items {
		c.items[k] = v
	}
	return c
}

// bubbleScope computes one scope's metrics per period (periods under
// MinImpressions are left out) and the entropy trend against floor.
func bubbleScope(scope string, periods []bubblePeriod, floor float64, o Options, items, cats int) (BubbleScope, error) {
	bs := BubbleScope{Scope: scope, Floor: floor, Periods: []BubbleMetric{}}
	var ent, ild []float64
	for _, p := range periods {
		if p.impressions < int64(o.MinImpressions) {
			continue
		}
		cc := make([]float64, 0, len(p.cats))
		for _, n := range p.cats {
			cc = append(cc, float64(n))
		}
		ic := make([]float64, 0, len(p.items))
		for _, n := range p.items {
			ic = append(ic, float64(n))
		}
		_, h, ok := fairness.Entropy(cc, max(cats, len(cc)))
		if !ok {
			return bs, fmt.Errorf("monitor: category entropy of %s", scope)
		}
		catalogue := max(items, len(ic))
		cov, _ := fairness.Coverage(len(ic), catalogue)
		g, _ := fairness.Gini(ic, catalogue)
		bm := BubbleMetric{Start: time.Unix(0, p.period*int64(o.Period)).UTC(), Lists: p.lists, Impressions: p.impressions,
			Entropy: h, Coverage: cov, Gini: g, Capped: p.capped}
		if p.ildLists > 0 {
			v := p.ildSum / float64(p.ildLists)
			bm.ILD = &v
			ild = append(ild, v)
		}
		bs.Periods = append(bs.Periods, bm)
		ent = append(ent, h)
	}
	if len(ent) == 0 {
		bs.Note = fmt.Sprintf("no period has %d impressions yet: no trend", o.MinImpressions)
		return bs, nil
	}
	t, err := fairness.CheckDiversity(scope, "category_entropy", ent, floor)
	if err != nil {
		return bs, fmt.Errorf("monitor: %w", err)
	}
	bs.Trend = t
	if s, ok := fairness.Slope(ild); ok {
		bs.ILDSlope = &s
	}
	return bs, nil
}
