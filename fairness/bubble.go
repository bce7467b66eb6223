package fairness

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Entropy is the Shannon entropy, in bits, of a distribution given as
// counts (say, recommendations per category), and the same divided by
// log2 of the number of categories, so 1 means spread evenly and 0 means all
// in one. categories is the catalogue's category count; zero or less means
// the categories present in counts. With one category the normalised value
// is 0: a list that can only be one thing is as narrow as it gets.
func Entropy(counts []float64, categories int) (bits, normalised float64, ok bool) {
	var total float64
	present := 0
	for _, c := range counts {
		if c < 0 || !finite(c) {
			return 0, 0, false
		}
		if c > 0 {
			total += c
			present++
		}
	}
	if total == 0 {
		return 0, 0, false
	}
	for _, c := range counts {
		if c > 0 {
			p := c / total
			bits -= p * math.Log2(p)
		}
	}
	k := categories
	if k <= 0 {
		k = present
	}
	if k < present {
		return 0, 0, false
	}
	if k > 1 {
		normalised = clamp01(bits / math.Log2(float64(k)))
	}
	return math.Max(0, bits), normalised, true
}

// IntraListDiversity is the share of pairs of items in one recommendation
// list whose categories differ: 0 when every item is of one category, 1
// when no two share one. A list of fewer than two items has no pairs.
func IntraListDiversity(categories []string) (float64, bool) {
	n := len(categories)
	if n < 2 {
		return 0, false
	}
	same := 0
	count := map[string]int{}
	for _, c := range categories {
		count[c]++
	}
	for _, k := range count {
		same += k * (k - 1) / 2
	}
	pairs := n * (n - 1) / 2
	return 1 - float64(same)/float64(pairs), true
}

// IntraListDiversityFunc is 1 − the mean similarity over all pairs of the n
// items of a list, for item similarities in [0, 1] (the definition of
// Ziegler et al., 2005). Similarities outside [0, 1] are refused.
func IntraListDiversityFunc(n int, sim func(i, j int) float64) (float64, error) {
	if n < 2 {
		return 0, inputErr("intra-list diversity: %d items; need at least two", n)
	}
	var total float64
	for i := range n {
		for j := i + 1; j < n; j++ {
			s := sim(i, j)
			if !(s >= 0 && s <= 1) {
				return 0, inputErr("intra-list diversity: similarity of items %d and %d is %v, outside [0, 1]", i, j, s)
			}
			total += s
		}
	}
	return clamp01(1 - total/float64(n*(n-1)/2)), nil
}

// Coverage is the share of the catalogue that was recommended at least once.
func Coverage(distinctShown, catalogue int) (float64, bool) {
	if catalogue <= 0 || distinctShown < 0 || distinctShown > catalogue {
		return 0, false
	}
	return float64(distinctShown) / float64(catalogue), true
}

// Gini is the Gini coefficient of exposure counts: 0 when every item is
// shown equally, approaching 1 when one item takes every impression. Items
// of the catalogue never shown count as zeros: pass catalogue > len(counts)
// to include them without listing them.
func Gini(counts []float64, catalogue int) (float64, bool) {
	n := max(catalogue, len(counts))
	if n == 0 {
		return 0, false
	}
	xs := make([]float64, 0, len(counts))
	var total float64
	for _, c := range counts {
		if c < 0 || !finite(c) {
			return 0, false
		}
		if c > 0 {
			xs = append(xs, c)
			total += c
		}
	}
	if total == 0 {
		return 0, false
	}
	slices.Sort(xs)
	zeros := n - len(xs) // they sort first
	var s float64
	for j, x := range xs {
		rank := float64(zeros + j + 1)
		s += (2*rank - float64(n) - 1) * x
	}
	return clamp01(s / (float64(n) * total)), true
}

// Slope is the least-squares slope of a series over its index (one step per
// period), the trend of a diversity measure.
func Slope(series []float64) (float64, bool) {
	n := len(series)
	if n < 2 {
		return 0, false
	}
	var mx, my float64
	for i, y := range series {
		if !finite(y) {
			return 0, false
		}
		mx += float64(i)
		my += y
	}
	mx /= float64(n)
	my /= float64(n)
	var sxy, sxx float64
	for i, y := range series {
		dx := float64(i) - mx
		sxy += dx * (y - my)
		sxx += dx * dx
	}
	return sxy / sxx, true
}

// DiversityTrend is a diversity measure of one recommender or one subject
// over time, checked against its floor (FB-1, FB-2).
type DiversityTrend struct {
	Scope  string  `json:"scope"`  // "recommender:home" or "subject:…"
	Metric string  `json:"metric"` // e.g. "category_entropy"
	Latest float64 `json:"latest"`
	// Slope is the change per period; null with a single period.
	Slope       *float64 `json:"slope"`
	Floor       float64  `json:"floor"`
	BelowFloor  bool     `json:"below_floor"`
	Requirement string   `json:"requirement,omitempty"`
	Message     string   `json:"message,omitempty"`
}

// CheckDiversity reads a per-period series (oldest first) and raises an
// alert when its latest value is below floor (FB-2); the slope says whether
// it is getting narrower.
func CheckDiversity(scope, metric string, series []float64, floor float64) (DiversityTrend, error) {
	if len(series) == 0 {
		return DiversityTrend{}, inputErr("diversity %s of %s: empty series", metric, scope)
	}
	for i, v := range series {
		if !finite(v) {
			return DiversityTrend{}, inputErr("diversity %s of %s: period %d is %v", metric, scope, i+1, v)
		}
	}
	d := DiversityTrend{Scope: scope, Metric: metric, Latest: series[len(series)-1], Floor: floor}
	if s, ok := Slope(series); ok {
		d.Slope = ptr(s)
	}
	if d.Latest < floor {
		d.BelowFloor = true
		d.Requirement = "FB-2"
		trend := ""
		if d.Slope != nil && *d.Slope < 0 {
			trend = fmt.Sprintf(", falling %.3f per period", -*d.Slope)
		}
		d.Message = fmt.Sprintf("%s: %s %.3f is below the floor %.3f%s", scope, metric, d.Latest, floor, trend)
	}
	return d, nil
}

// ExposureLog accumulates impressions per scope (a recommender or a subject)
// and period, to report category entropy, catalogue coverage and exposure
// concentration per period and their trend (FB-1). It keeps counts per
// distinct item and category, not the impressions.
type ExposureLog struct {
	items, categories int
	scopes            map[string]map[int64]*exposure
}

type exposure struct {
	n     int64
	items map[string]float64
	cats  map[string]float64
}

// NewExposureLog returns a log for a catalogue of items and categories;
// coverage and normalised entropy are relative to them.
func NewExposureLog(catalogueItems, catalogueCategories int) (*ExposureLog, error) {
	if catalogueItems <= 0 || catalogueCategories <= 0 {
		return nil, inputErr("exposure log: catalogue of %d items in %d categories; both must be positive", catalogueItems, catalogueCategories)
	}
	return &ExposureLog{items: catalogueItems, categories: catalogueCategories, scopes: map[string]map[int64]*exposure{}}, nil
}

// Add records that item, of category, was shown in scope during period.
func (l *ExposureLog) Add(scope string, period int64, item, category string) {
	ps := l.scopes[scope]
	if ps == nil {
		ps = map[int64]*exposure{}
		l.scopes[scope] = ps
	}
	e := ps[period]
	if e == nil {
		e = &exposure{items: map[string]float64{}, cats: map[string]float64{}}
		ps[period] = e
	}
	e.n++
	e.items[item]++
	e.cats[category]++
}

// PeriodDiversity is one scope's diversity in one period.
type PeriodDiversity struct {
	Period      int64   `json:"period"`
	Impressions int64   `json:"impressions"`
	Entropy     float64 `json:"category_entropy"` // normalised, 0–1
	Coverage    float64 `json:"coverage"`
	Gini        float64 `json:"exposure_gini"`
}

// ScopeDiversity is one scope's diversity over time.
type ScopeDiversity struct {
	Scope   string            `json:"scope"`
	Periods []PeriodDiversity `json:"periods"`
	Trend   DiversityTrend    `json:"entropy_trend"`
}

// Report returns each scope's per-period diversity, oldest period first,
// with the trend of category entropy checked against floor (FB-2).
func (l *ExposureLog) Report(floor float64) ([]ScopeDiversity, error) {
	var out []ScopeDiversity
	for scope, ps := range l.scopes {
		sd := ScopeDiversity{Scope: scope}
		for p, e := range ps {
			cats := make([]float64, 0, len(e.cats))
			for _, c := range e.cats {
				cats = append(cats, c)
			}
			items := make([]float64, 0, len(e.items))
			for _, c := range e.items {
				items = append(items, c)
			}
			_, h, ok := Entropy(cats, max(l.categories, len(cats)))
			if !ok {
				return nil, fmt.Errorf("exposure log: entropy of %s period %d", scope, p)
			}
			cov, _ := Coverage(min(len(e.items), l.items), l.items)
			g, _ := Gini(items, l.items)
			sd.Periods = append(sd.Periods, PeriodDiversity{Period: p, Impressions: e.n, Entropy: h, Coverage: cov, Gini: g})
		}
		slices.SortFunc(sd.Periods, func(a, b PeriodDiversity) int { return cmp.Compare(a.Period, b.Period) })
		series := make([]float64, len(sd.Periods))
		for i, p := range sd.Periods {
			series[i] = p.Entropy
		}
		t, err := CheckDiversity(scope, "category_entropy", series, floor)
		if err != nil {
			return nil, err
		}
		sd.Trend = t
		out = append(out, sd)
	}
	slices.SortFunc(out, func(a, b ScopeDiversity) int { return cmp.Compare(a.Scope, b.Scope) })
	return out, nil
}
