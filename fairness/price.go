package fairness

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// PriceEvent is one price shown to one subject.
type PriceEvent struct {
	Subject string
	Item    string
	Price   float64
	Time    time.Time
	Context string   // the conditions that may legitimately change a price: channel, region, quantity…
	Segment string   // the subject's segment when the price was shown
	Labels  []string // the subject's labels when the price was shown
}

// PriceOptions configures a PriceScanner.
type PriceOptions struct {
	// Window is the time bucket inside which one item in one context should
	// cost the same; zero means 24 hours.
	Window time.Duration
	// Threshold is the relative gap between the highest and the lowest
	// segment mean price above which an alert is raised; zero means 0.05.
	Threshold float64
	// MinEvents is how many events a segment needs in a cell to count;
	// zero means 5, so that one odd price does not make a segment.
	MinEvents int
}

// PriceScanner finds big-data price discrimination (大数据杀熟, FP-1): the
// same item, in the same time window and context, shown at different prices
// to subjects in different segments or with different labels. It keeps
// running sums per item × window × context × segment (and × label), never
// the events, so memory grows with the number of such cells only.
type PriceScanner struct {
	window    int64 // seconds
	threshold float64
	minEvents int64
	cells     map[priceKey]*priceCell
	events    int64
}

type priceKey struct {
	item, context string
	window        int64
}

type priceCell struct {
	all      priceStat
	segments map[string]*priceStat
	labels   map[string]*Moments
}

type priceStat struct {
	Moments
	min, max float64
}

func (s *priceStat) add(x float64) {
	if s.N == 0 || x < s.min {
		s.min = x
	}
	if s.N == 0 || x > s.max {
		s.max = x
	}
	s.Add(x)
}

// NewPriceScanner checks opts and returns an empty scanner.
func NewPriceScanner(opts PriceOptions) (*PriceScanner, error) {
	w := opts.Window
	if w == 0 {
		w = 24 * time.Hour
	}
	if w < time.Second {
		return nil, inputErr("price scan: window %v is under a second", opts.Window)
	}
	th := opts.Threshold
	if th == 0 {
		th = 0.05
	}
	if !(th > 0) || !finite(th) {
		return nil, inputErr("price scan: threshold %v must be a positive fraction", opts.Threshold)
	}
	me := opts.MinEvents
	if me == 0 {
		me = 5
	}
	if me < 1 {
		return nil, inputErr("price scan: min events %d must be positive", opts.MinEvents)
	}
	return &PriceScanner{window: int64(w / time.Second), threshold: th, minEvents: int64(me), cells: map[priceKey]*priceCell{}}, nil
}

// Add adds one event.
func (s *PriceScanner) Add(e PriceEvent) error {
	if e.Item == "" {
		return inputErr("price scan: event %d has no item", s.events+1)
	}
	if !finite(e.Price) || e.Price < 0 {
		return inputErr("price scan: event %d (item %q) has price %v; prices are finite and not negative", s.events+1, e.Item, e.Price)
	}
	if e.Time.IsZero() {
		return inputErr("price scan: event %d (item %q) has no time", s.events+1, e.Item)
	}
	sec := e.Time.Unix()
	win := sec / s.window
	if sec%s.window < 0 {
		win-- // floor, for times before 1970
	}
	k := priceKey{e.Item, e.Context, win}
	c := s.cells[k]
	if c == nil {
		c = &priceCell{segments: map[string]*priceStat{}}
		s.cells[k] = c
	}
	c.all.add(e.Price)
	seg := c.segments[e.Segment]
	if seg == nil {
		seg = &priceStat{}
		c.segments[e.Segment] = seg
	}
	seg.add(e.Price)
	for _, l := range e.Labels {
		if c.labels == nil {
			c.labels = map[string]*Moments{}
		}
		m := c.labels[l]
		if m == nil {
			m = &Moments{}
			c.labels[l] = m
		}
		m.Add(e.Price)
	}
	s.events++
	return nil
}

// PriceFinding is one item in one window and context whose price differs
// across segments.
type PriceFinding struct {
	Item        string    `json:"item"`
	Context     string    `json:"context"`
	WindowStart time.Time `json:"window_start"`
	Events      int64     `json:"events"`
	Min         float64   `json:"min"`
	Max         float64   `json:"max"`
	Mean        float64   `json:"mean"`
	// CV is the coefficient of variation of all prices shown (null when the mean is 0).
	CV *float64 `json:"cv"`
	// MaxMinRatio is max ÷ min of all prices shown (null when min is 0).
	MaxMinRatio *float64 `json:"max_min_ratio"`
	// SegmentGap is the highest segment mean ÷ the lowest, minus one.
	SegmentGap *float64 `json:"segment_gap"`
	// Explained is η², the share of the price variance that the segment explains.
	Explained float64        `json:"explained_by_segment"`
	Segments  []SegmentPrice `json:"segments"`
	Labels    []LabelPrice   `json:"labels,omitempty"`
	Alert     bool           `json:"alert"`
}

// SegmentPrice is what one segment was shown.
type SegmentPrice struct {
	Segment string  `json:"segment"`
	Events  int64   `json:"events"`
	Mean    float64 `json:"mean"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
}

// LabelPrice compares the mean price shown to subjects with a label with
// the mean shown to those without it, in the same cell.
type LabelPrice struct {
	Label       string  `json:"label"`
	Events      int64   `json:"events"`
	MeanWith    float64 `json:"mean_with"`
	MeanWithout float64 `json:"mean_without"`
	Difference  float64 `json:"difference"`
}

// PriceAlert is raised for a finding whose segment gap is above the
// threshold (FP-1).
type PriceAlert struct {
	Item        string    `json:"item"`
	Context     string    `json:"context"`
	WindowStart time.Time `json:"window_start"`
	Highest     string    `json:"highest_segment"`
	Lowest      string    `json:"lowest_segment"`
	HighestMean float64   `json:"highest_mean"`
	LowestMean  float64   `json:"lowest_mean"`
	Gap         *float64  `json:"gap"` // null when the lowest mean is 0
	Threshold   float64   `json:"threshold"`
	Requirement string    `json:"requirement"`
	Message     string    `json:"message"`
}

// PriceReport is the result of a scan.
type PriceReport struct {
	Events   int64          `json:"events"`
	Cells    int            `json:"cells"`
	Findings []PriceFinding `json:"findings"`
	Alerts   []PriceAlert   `json:"alerts"`
}

// Report lists the cells where at least two segments (each with MinEvents
// events) saw different mean prices, the largest gap first.
func (s *PriceScanner) Report() *PriceReport {
	rep := &PriceReport{Events: s.events, Cells: len(s.cells), Findings: []PriceFinding{}, Alerts: []PriceAlert{}}
	for k, c := range s.cells {
		var segs []SegmentPrice
		var counted []Moments
		for name, st := range c.segments {
			if st.N < s.minEvents {
				continue
			}
			segs = append(segs, SegmentPrice{Segment: name, Events: st.N, Mean: st.Mean, Min: st.min, Max: st.max})
			counted = append(counted, st.Moments)
		}
		if len(segs) < 2 {
			continue
		}
		slices.SortFunc(segs, func(a, b SegmentPrice) int {
			return cmp.Or(cmp.Compare(b.Mean, a.Mean), cmp.Compare(a.Segment, b.Segment))
		})
		hi, lo := segs[0], segs[len(segs)-1]
		if hi.Mean == lo.Mean {
			continue
		}
		f := PriceFinding{Item: k.item, Context: k.context, WindowStart: time.Unix(k.window*s.window, 0).UTC(),
			Events: c.all.N, Min: c.all.min, Max: c.all.max, Mean: c.all.Mean, Segments: segs}
		if c.all.Mean > 0 {
			f.CV = ptr(math.Sqrt(c.all.Variance()) / c.all.Mean)
		}
		if c.all.min > 0 {
			f.MaxMinRatio = ptr(c.all.max / c.all.min)
		}
		if lo.Mean > 0 {
			f.SegmentGap = ptr(hi.Mean/lo.Mean - 1)
		}
		if eta, ok := CorrelationRatio(counted); ok {
			f.Explained = eta * eta
		}
		allSum := c.all.Mean * float64(c.all.N)
		for l, m := range c.labels {
			if m.N == c.all.N {
				continue // everyone has it: it explains nothing
			}
			without := (allSum - m.Mean*float64(m.N)) / float64(c.all.N-m.N)
			f.Labels = append(f.Labels, LabelPrice{Label: l, Events: m.N, MeanWith: m.Mean, MeanWithout: without, Difference: m.Mean - without})
		}
		slices.SortFunc(f.Labels, func(a, b LabelPrice) int {
			return cmp.Or(cmp.Compare(math.Abs(b.Difference), math.Abs(a.Difference)), cmp.Compare(a.Label, b.Label))
		})
		// A zero lowest price against a positive one is the widest gap of all.
		f.Alert = f.SegmentGap == nil || *f.SegmentGap > s.threshold
		if f.Alert {
			msgGap := "a free offer against a paid one"
			if f.SegmentGap != nil {
				msgGap = fmt.Sprintf("%.1f %% more", 100**f.SegmentGap)
			}
			rep.Alerts = append(rep.Alerts, PriceAlert{Item: f.Item, Context: f.Context, WindowStart: f.WindowStart, Highest: hi.Segment, Lowest: lo.Segment, HighestMean: hi.Mean, LowestMean: lo.Mean,
				Gap: f.SegmentGap, Threshold: s.threshold, Requirement: "FP-1",
				Message: fmt.Sprintf("item %q in context %q, window from %s: segment %q paid %.2f on average, segment %q %.2f (%s)",
					f.Item, f.Context, f.WindowStart.Format(time.RFC3339), hi.Segment, hi.Mean, lo.Segment, lo.Mean, msgGap)})
		}
		rep.Findings = append(rep.Findings, f)
	}
	slices.SortFunc(rep.Findings, func(a, b PriceFinding) int {
		return cmp.Or(cmp.Compare(gapOf(b.SegmentGap), gapOf(a.SegmentGap)), cmp.Compare(a.Item, b.Item), a.WindowStart.Compare(b.WindowStart), cmp.Compare(a.Context, b.Context))
	})
	slices.SortFunc(rep.Alerts, func(a, b PriceAlert) int {
		return cmp.Or(cmp.Compare(gapOf(b.Gap), gapOf(a.Gap)), cmp.Compare(a.Item, b.Item), a.WindowStart.Compare(b.WindowStart), cmp.Compare(a.Context, b.Context))
	})
	return rep
}

// gapOf orders an unbounded (null) gap above every finite one.
func gapOf(g *float64) float64 {
	if g == nil {
		return math.MaxFloat64
	}
	return *g
}
