package fairness

import (
	"fmt"
	"math"
	"sort"
)

// DefaultProxyThreshold is the association above which a feature is
// flagged as a proxy for a protected attribute (FP-6). 0.3 is the usual
// boundary between a weak and a moderate association for Cramér's V.
const DefaultProxyThreshold = 0.3

// MaxLevels bounds the distinct values of a categorical column in a proxy
// scan; an identifier-like column with more levels is reported as untested
// rather than filling memory with a useless contingency table.
const MaxLevels = 1000

// CramersV returns Cramér's V for a contingency table of counts (rows ×
// columns). With biasCorrected it applies Bergsma's (2013) correction, which
// removes the upward bias of V in small samples and many levels. Empty rows
// and columns are ignored; a table with fewer than two non-empty rows or
// columns has no association to measure and returns ok = false.
func CramersV(table [][]int64, biasCorrected bool) (v float64, ok bool) {
	var rowSum []float64
	var colSum []float64
	for _, r := range table {
		var s float64
		for j, x := range r {
			if x < 0 {
				return 0, false
			}
			for len(colSum) <= j {
				colSum = append(colSum, 0)
			}
			colSum[j] += float64(x)
			s += float64(x)
		}
		rowSum = append(rowSum, s)
	}
	var n float64
	r, k := 0, 0
	for _, s := range rowSum {
		if s > 0 {
			r++
			n += s
		}
	}
	for _, s := range colSum {
		if s > 0 {
			k++
		}
	}
	if r < 2 || k < 2 {
		return 0, false
	}
	var chi2 float64
	for i, row := range table {
		if rowSum[i] == 0 {
			continue
		}
		for j, s := range colSum {
			if s == 0 {
				continue
			}
			var o float64
			if j < len(row) {
				o = float64(row[j])
			}
			e := rowSum[i] * s / n
			chi2 += (o - e) * (o - e) / e
		}
	}
	phi2 := chi2 / n
	rf, kf := float64(r), float64(k)
	if !biasCorrected {
		return clamp01(math.Sqrt(phi2 / math.Min(rf-1, kf-1))), true
	}
	if n <= 1 {
		return 0, false
	}
	phi2c := math.Max(0, phi2-(rf-1)*(kf-1)/(n-1))
	rc := rf - (rf-1)*(rf-1)/(n-1)
	kc := kf - (kf-1)*(kf-1)/(n-1)
	d := math.Min(rc-1, kc-1)
	if d <= 0 {
		return 0, false
	}
	return clamp01(math.Sqrt(phi2c / d)), true
}

// CorrelationRatio returns η, the correlation ratio of a numeric variable
// on a categorical one: the square root of the share of the variance of the
// values that the categories explain. groups[c] summarises the values in
// category c. A constant variable has no variance to explain: ok = false.
func CorrelationRatio(groups []Moments) (eta float64, ok bool) {
	var all Moments
	for _, g := range groups {
		all.Merge(g)
	}
	if all.N < 2 || all.M2 <= 0 {
		return 0, false
	}
	var between float64
	for _, g := range groups {
		if g.N > 0 {
			d := g.Mean - all.Mean
			between += float64(g.N) * d * d
		}
	}
	return clamp01(math.Sqrt(between / all.M2)), true
}

// Moments accumulates count, mean and the sum of squared deviations with
// Welford's method, which stays accurate where Σx² − (Σx)²/n cancels.
type Moments struct {
	N    int64
	Mean float64
	M2   float64
}

// Add adds one value.
func (m *Moments) Add(x float64) {
	m.N++
	d := x - m.Mean
	m.Mean += d / float64(m.N)
	m.M2 += d * (x - m.Mean)
}

// Merge adds every value o has seen (Chan et al.'s parallel update).
func (m *Moments) Merge(o Moments) {
	if o.N == 0 {
		return
	}
	if m.N == 0 {
		*m = o
		return
	}
	n := m.N + o.N
	d := o.Mean - m.Mean
	m.Mean += d * float64(o.N) / float64(n)
	m.M2 += o.M2 + d*d*float64(m.N)*float64(o.N)/float64(n)
	m.N = n
}

// Variance is the population variance, zero for fewer than two values.
func (m Moments) Variance() float64 {
	if m.N < 2 {
		return 0
	}
	return m.M2 / float64(m.N)
}

// ProxyScanner measures, in one pass over subjects, the association of
// every feature with every protected attribute (FP-6): Cramér's V for a
// categorical feature, the correlation ratio η for a numeric one. Memory is
// bounded by the levels of the columns, not by the number of subjects.
type ProxyScanner struct {
	protected []string
	cat, num  []string
	threshold float64
	corrected bool

	pLevels []map[string]int
	fLevels []map[string]int
	tooMany []bool
	// tables[f][p][featureLevel][protectedLevel]
	tables [][][][]int64
	// moments[f][p][protectedLevel]
	moments [][][]Moments
	n       int64
}

// ProxyOptions configures a ProxyScanner.
type ProxyOptions struct {
	Protected   []string // protected-attribute names
	Categorical []string // categorical feature names
	Numeric     []string // numeric feature names
	// Threshold above which a feature is flagged; zero means
	// DefaultProxyThreshold.
	Threshold float64
	// BiasCorrected applies Bergsma's correction to Cramér's V.
	BiasCorrected bool
}

// NewProxyScanner checks opts and returns an empty scanner.
func NewProxyScanner(opts ProxyOptions) (*ProxyScanner, error) {
	if len(opts.Protected) == 0 {
		return nil, inputErr("proxy scan: no protected attribute")
	}
	if len(opts.Categorical)+len(opts.Numeric) == 0 {
		return nil, inputErr("proxy scan: no feature to test")
	}
	seen := map[string]bool{}
	for _, n := range append(append(append([]string{}, opts.Protected...), opts.Categorical...), opts.Numeric...) {
		if seen[n] {
			return nil, inputErr("proxy scan: column %q named twice; a protected attribute cannot also be a feature (FP-2)", n)
		}
		seen[n] = true
	}
	th := opts.Threshold
	if th == 0 {
		th = DefaultProxyThreshold
	}
	if !(th > 0 && th <= 1) {
		return nil, inputErr("proxy scan: threshold %v out of (0, 1]", opts.Threshold)
	}
	s := &ProxyScanner{protected: opts.Protected, cat: opts.Categorical, num: opts.Numeric, threshold: th, corrected: opts.BiasCorrected}
	s.pLevels = make([]map[string]int, len(opts.Protected))
	for i := range s.pLevels {
		s.pLevels[i] = map[string]int{}
	}
	s.fLevels = make([]map[string]int, len(opts.Categorical))
	for i := range s.fLevels {
		s.fLevels[i] = map[string]int{}
	}
	s.tooMany = make([]bool, len(opts.Categorical))
	s.tables = make([][][][]int64, len(opts.Categorical))
	for i := range s.tables {
		s.tables[i] = make([][][]int64, len(opts.Protected))
	}
	s.moments = make([][][]Moments, len(opts.Numeric))
	for i := range s.moments {
		s.moments[i] = make([][]Moments, len(opts.Protected))
	}
	return s, nil
}

// Add adds one subject: its protected values, categorical feature values
// and numeric feature values, each in the order given to NewProxyScanner.
func (s *ProxyScanner) Add(protected, categorical []string, numeric []float64) error {
	if len(protected) != len(s.protected) || len(categorical) != len(s.cat) || len(numeric) != len(s.num) {
		return inputErr("proxy scan: subject %d has %d/%d/%d values, want %d protected, %d categorical, %d numeric",
			s.n+1, len(protected), len(categorical), len(numeric), len(s.protected), len(s.cat), len(s.num))
	}
	for j, x := range numeric {
		if !finite(x) {
			return inputErr("proxy scan: subject %d: feature %q is %v, not a finite number", s.n+1, s.num[j], x)
		}
	}
	var pl [8]int
	pIdx := pl[:0]
	for p, v := range protected {
		pIdx = append(pIdx, level(s.pLevels[p], v))
	}
	for f, v := range categorical {
		if s.tooMany[f] {
			continue
		}
		fl := level(s.fLevels[f], v)
		if fl >= MaxLevels {
			s.tooMany[f] = true
			s.tables[f] = nil
			continue
		}
		for p, pi := range pIdx {
			t := s.tables[f][p]
			for len(t) <= fl {
				t = append(t, nil)
			}
			row := t[fl]
			for len(row) <= pi {
				row = append(row, 0)
			}
			row[pi]++
			t[fl] = row
			s.tables[f][p] = t
		}
	}
	for f, x := range numeric {
		for p, pi := range pIdx {
			m := s.moments[f][p]
			for len(m) <= pi {
				m = append(m, Moments{})
			}
			m[pi].Add(x)
			s.moments[f][p] = m
		}
	}
	s.n++
	return nil
}

func level(m map[string]int, v string) int {
	if i, ok := m[v]; ok {
		return i
	}
	i := len(m)
	m[v] = i
	return i
}

// ProxyFinding is the association of one feature with one protected
// attribute.
type ProxyFinding struct {
	Feature     string  `json:"feature"`
	Protected   string  `json:"protected"`
	Measure     string  `json:"measure"` // "cramers_v", "cramers_v_corrected" or "correlation_ratio"
	Value       float64 `json:"value"`
	Flagged     bool    `json:"flagged"`
	Requirement string  `json:"requirement,omitempty"`
	Note        string  `json:"note,omitempty"`
}

// Findings returns one finding per feature and protected attribute, the
// strongest association first. A flagged feature is to be treated as
// sensitive until a reviewer clears it (FP-6); the caller records the flag.
func (s *ProxyScanner) Findings() []ProxyFinding {
	var out []ProxyFinding
	vName := "cramers_v"
	if s.corrected {
		vName = "cramers_v_corrected"
	}
	for f, name := range s.cat {
		for p, pname := range s.protected {
			pf := ProxyFinding{Feature: name, Protected: pname, Measure: vName}
			if s.tooMany[f] {
				pf.Note = fmt.Sprintf("more than %d distinct values: not tested (an identifier cannot be judged by association)", MaxLevels)
			} else if v, ok := CramersV(s.tables[f][p], s.corrected); ok {
				pf.Value = v
			} else {
				pf.Note = "fewer than two values on one side: no association to measure"
			}
			out = append(out, s.flag(pf))
		}
	}
	for f, name := range s.num {
		for p, pname := range s.protected {
			pf := ProxyFinding{Feature: name, Protected: pname, Measure: "correlation_ratio"}
			if v, ok := CorrelationRatio(s.moments[f][p]); ok {
				pf.Value = v
			} else {
				pf.Note = "constant feature: no association to measure"
			}
			out = append(out, s.flag(pf))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Value > out[j].Value })
	return out
}

func (s *ProxyScanner) flag(pf ProxyFinding) ProxyFinding {
	if pf.Note == "" && pf.Value > s.threshold {
		pf.Flagged = true
		pf.Requirement = "FP-6"
		pf.Note = fmt.Sprintf("association %.3f above %.2f: treat %q as sensitive until a reviewer clears it", pf.Value, s.threshold, pf.Feature)
	}
	return pf
}
