package fairness

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Defaults from the rules the report implements.
const (
	// FourFifths is the UGESP 1607.4(D) threshold: an impact ratio below it
	// is evidence of adverse impact (FP-4).
	FourFifths = 0.8
	// DefaultMinShare is the LL144 small-group exclusion: groups under 2 %
	// of the population may be left out of impact ratios if disclosed (FP-3).
	DefaultMinShare = 0.02
	// Alpha is the significance level reported with each alert.
	Alpha = 0.05
	// MaxAttributes bounds the protected attributes of one report; the
	// intersections grow as 2^k.
	MaxAttributes = 6
	// Sep joins the values of an intersection into a group name.
	Sep = " × "
)

// ErrInput marks an error in the data or configuration given to Audit; the
// caller can fix it, so the command exits 2.
var ErrInput = errors.New("invalid input")

func inputErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, args...))
}

// Observation is one automated decision to audit.
type Observation struct {
	Groups     []string // the subject's value of each Config.Attributes entry, in order
	Selected   bool     // the favourable (or flagged) outcome of the decision
	HasOutcome bool     // whether the true outcome is known
	Outcome    bool     // the true outcome, when HasOutcome
	HasScore   bool
	Score      float64 // the model score behind the decision, when HasScore
}

// Config says what to audit.
type Config struct {
	// Attributes names the protected attributes, e.g. ["race", "sex"].
	// Every non-empty combination of them is reported: each alone and
	// each intersection.
	Attributes []string
	// MinShare is the population share under which a group is left out of
	// the impact-ratio reference and comparison, and disclosed (FP-3).
	// Zero excludes nothing; use DefaultMinShare for LL144's 2 %.
	MinShare float64
	// Threshold is the impact ratio under which an alert is raised (FP-4);
	// zero means FourFifths.
	Threshold float64
	// ScoreBands are the upper (inclusive) edges of the calibration bands,
	// ascending. When nil and scores are given, each distinct score is a
	// band if there are at most 20 of them (a decile score), else ten
	// equal-width bands span the observed range.
	ScoreBands []float64
}

// Report is the result of Audit. Every rate is a fraction in [0, 1]; a rate
// whose denominator is zero is null and explained in Notes.
type Report struct {
	Source      *Source     `json:"source,omitempty"`
	N           int         `json:"n"`
	Attributes  []string    `json:"attributes"`
	MinShare    float64     `json:"min_share"`
	Threshold   float64     `json:"threshold"`
	Groups      []Group     `json:"groups"`
	Sections    []Section   `json:"sections"`
	Alerts      []Alert     `json:"alerts"`
	Excluded    []Exclusion `json:"excluded"`
	Calibration []Band      `json:"calibration,omitempty"`
	Notes       []string    `json:"notes,omitempty"`
}

// Source describes where the decisions came from, when they were read
// from a file.
type Source struct {
	File            string   `json:"file"`
	Predicted       string   `json:"predicted"`
	Positive        []string `json:"positive"`
	Outcome         string   `json:"outcome,omitempty"`
	OutcomePositive string   `json:"outcome_positive,omitempty"`
	Score           string   `json:"score,omitempty"`
}

// Group is one group (one attribute value) or intersection (one value of
// each of several attributes).
type Group struct {
	Name          string   `json:"name"`
	Attributes    []string `json:"attributes"`
	Values        []string `json:"values"`
	N             int      `json:"n"`
	Share         float64  `json:"share"`
	Selected      int      `json:"selected"`
	SelectionRate float64  `json:"selection_rate"`
	SelectionCI   Interval `json:"selection_rate_ci95"`
	ImpactRatio   *float64 `json:"impact_ratio"`
	Reference     bool     `json:"reference,omitempty"`
	Excluded      bool     `json:"excluded,omitempty"`
	Test          string   `json:"test,omitempty"`
	PValue        *float64 `json:"p_value,omitempty"`
	*ErrorRates            // present only when outcomes are known
	Calibration   []Band   `json:"calibration,omitempty"`
	Notes         []string `json:"notes,omitempty"`
}

// Interval is a 95 % confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// ErrorRates compares decisions with known true outcomes.
type ErrorRates struct {
	OutcomeKnown      int      `json:"outcome_known"`
	ActualPositives   int      `json:"actual_positives"`
	ActualNegatives   int      `json:"actual_negatives"`
	TruePositives     int      `json:"true_positives"`
	FalsePositives    int      `json:"false_positives"`
	FalseNegatives    int      `json:"false_negatives"`
	TrueNegatives     int      `json:"true_negatives"`
	FalsePositiveRate *float64 `json:"false_positive_rate"`
	FalseNegativeRate *float64 `json:"false_negative_rate"`
	TruePositiveRate  *float64 `json:"true_positive_rate"`
}

// Section summarises one attribute or one intersection of attributes.
type Section struct {
	Name                        string   `json:"name"`
	Attributes                  []string `json:"attributes"`
	Groups                      []string `json:"groups"`
	Reference                   string   `json:"reference,omitempty"`
	ReferenceRate               *float64 `json:"reference_rate"`
	DemographicParityDifference *float64 `json:"demographic_parity_difference"`
	EqualOpportunityDifference  *float64 `json:"equal_opportunity_difference,omitempty"`
	Notes                       []string `json:"notes,omitempty"`
}

// Alert is raised for a group whose impact ratio is below the threshold
// (FP-4). The significance test compares its selection rate with the
// reference group's; a low ratio that is not significant is still an alert,
// and the p-value says how much weight it bears.
type Alert struct {
	Group       string   `json:"group"`
	Attributes  []string `json:"attributes"`
	Reference   string   `json:"reference"`
	Metric      string   `json:"metric"`
	Value       float64  `json:"value"`
	Threshold   float64  `json:"threshold"`
	Test        string   `json:"test"`
	PValue      float64  `json:"p_value"`
	Significant bool     `json:"significant"`
	Requirement string   `json:"requirement"`
	Message     string   `json:"message"`
}

// Exclusion discloses a group left out of the impact-ratio comparison (FP-3).
type Exclusion struct {
	Group       string   `json:"group"`
	Attributes  []string `json:"attributes"`
	N           int      `json:"n"`
	Share       float64  `json:"share"`
	MinShare    float64  `json:"min_share"`
	Requirement string   `json:"requirement"`
	Reason      string   `json:"reason"`
}

// Band is one score band, (previous edge, Upper], of a calibration table: among decisions in the
// band with a known outcome, the share predicted positive against the share
// that turned out positive.
type Band struct {
	Label                 string  `json:"band"`
	Upper                 float64 `json:"upper"`
	N                     int     `json:"n"`
	MeanScore             float64 `json:"mean_score"`
	PredictedPositiveRate float64 `json:"predicted_positive_rate"`
	ObservedOutcomeRate   float64 `json:"observed_outcome_rate"`
}

// cell holds the additive counts of one full intersection; every coarser
// group is a sum of cells, so rows are visited once.
type cell struct {
	n, sel          int
	known, pos      int
	tp, fp          int
	bands           []bandCount
	missingScoreOut int // rows with an outcome but no score
}

type bandCount struct {
	n, sel, pos int
	scoreSum    float64
}

func (c *cell) add(o *cell) {
	c.n += o.n
	c.sel += o.sel
	c.known += o.known
	c.pos += o.pos
	c.tp += o.tp
	c.fp += o.fp
	c.missingScoreOut += o.missingScoreOut
	if c.bands == nil && o.bands != nil {
		c.bands = make([]bandCount, len(o.bands))
	}
	for i, b := range o.bands {
		c.bands[i].n += b.n
		c.bands[i].sel += b.sel
		c.bands[i].pos += b.pos
		c.bands[i].scoreSum += b.scoreSum
	}
}

type key [MaxAttributes]int32

// Audit computes selection rates, impact ratios, error rates and
// calibration per group and per intersection of groups (FP-3), and the
// four-fifths alerts with their significance tests (FP-4). Errors wrap
// ErrInput when the data or configuration is at fault.
func Audit(cfg Config, rows []Observation) (*Report, error) {
	k := len(cfg.Attributes)
	if k == 0 {
		return nil, inputErr("no protected attribute given; name at least one")
	}
	if k > MaxAttributes {
		return nil, inputErr("%d protected attributes given; at most %d can be crossed", k, MaxAttributes)
	}
	for i, a := range cfg.Attributes {
		if strings.TrimSpace(a) == "" {
			return nil, inputErr("protected attribute %d has an empty name", i+1)
		}
		if slices.Index(cfg.Attributes, a) != i {
			return nil, inputErr("protected attribute %q given twice", a)
		}
	}
	if cfg.MinShare < 0 || cfg.MinShare >= 1 || !finite(cfg.MinShare) {
		return nil, inputErr("min share %v out of range; give a fraction in [0, 1), e.g. 0.02", cfg.MinShare)
	}
	threshold := cfg.Threshold
	if threshold == 0 {
		threshold = FourFifths
	}
	if threshold < 0 || threshold > 1 || !finite(threshold) {
		return nil, inputErr("impact-ratio threshold %v out of range; give a fraction in (0, 1]", cfg.Threshold)
	}
	if len(rows) == 0 {
		return nil, inputErr("no decisions to audit")
	}

	var known, pos, scored int
	for i := range rows {
		r := &rows[i]
		if len(r.Groups) != k {
			return nil, inputErr("decision %d has %d group values for %d protected attributes", i+1, len(r.Groups), k)
		}
		if r.HasScore {
			if !finite(r.Score) {
				return nil, inputErr("decision %d has score %v; scores must be finite numbers", i+1, r.Score)
			}
			scored++
		}
		if r.HasOutcome {
			known++
			if r.Outcome {
				pos++
			}
		}
	}
	withOutcome := known > 0
	if withOutcome && (pos == 0 || pos == known) {
		v := "negative"
		if pos == known {
			v = "positive"
		}
		return nil, inputErr("all %d known outcomes are %s; error rates need both outcomes (check the outcome column and its positive value)", known, v)
	}
	rep := &Report{N: len(rows), Attributes: slices.Clone(cfg.Attributes), MinShare: cfg.MinShare, Threshold: threshold,
		Alerts: []Alert{}, Excluded: []Exclusion{}}

	var edges []float64
	var bandLabels []string
	if withOutcome && scored > 0 {
		var err error
		edges, bandLabels, err = scoreBands(cfg.ScoreBands, rows)
		if err != nil {
			return nil, err
		}
	} else if scored > 0 {
		rep.Notes = append(rep.Notes, "scores were given without outcomes; calibration needs both and is left out")
	}

	// Intern values per attribute so a full intersection is a small key.
	ids := make([]map[string]int32, k)
	vals := make([][]string, k)
	for a := range ids {
		ids[a] = map[string]int32{}
	}
	full := map[key]*cell{}
	for i := range rows {
		r := &rows[i]
		var kk key
		for a, v := range r.Groups {
			id, ok := ids[a][v]
			if !ok {
				id = int32(len(vals[a]))
				ids[a][v] = id
				vals[a] = append(vals[a], v)
			}
			kk[a] = id
		}
		c := full[kk]
		if c == nil {
			c = &cell{}
			if edges != nil {
				c.bands = make([]bandCount, len(edges))
			}
			full[kk] = c
		}
		c.n++
		if r.Selected {
			c.sel++
		}
		if r.HasOutcome {
			c.known++
			if r.Outcome {
				c.pos++
				if r.Selected {
					c.tp++
				}
			} else if r.Selected {
				c.fp++
			}
			if edges != nil {
				if r.HasScore {
					b := &c.bands[bandOf(edges, r.Score)]
					b.n++
					b.scoreSum += r.Score
					if r.Selected {
						b.sel++
					}
					if r.Outcome {
						b.pos++
					}
				} else {
					c.missingScoreOut++
				}
			}
		}
	}

	if withOutcome && known < len(rows) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d of %d decisions have no known outcome; error rates count only the %d that do", len(rows)-known, len(rows), known))
	}
	if edges != nil {
		var total cell
		for _, c := range full {
			total.add(c)
		}
		rep.Calibration = bandsOf(total.bands, edges, bandLabels)
		if total.missingScoreOut > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d decisions with an outcome have no score and are left out of calibration", total.missingScoreOut))
		}
		rep.Notes = append(rep.Notes, "calibration lists only score bands with members")
	}

	// Sections: each attribute alone, then intersections by size.
	var masks []int
	for m := 1; m < 1<<k; m++ {
		masks = append(masks, m)
	}
	sort.SliceStable(masks, func(i, j int) bool { return popcount(masks[i]) < popcount(masks[j]) })
	for _, m := range masks {
		agg := map[key]*cell{}
		for kk, c := range full {
			var sub key
			for a := range k {
				if m&(1<<a) == 0 {
					sub[a] = -1
				} else {
					sub[a] = kk[a]
				}
			}
			g := agg[sub]
			if g == nil {
				g = &cell{}
				agg[sub] = g
			}
			g.add(c)
		}
		rep.section(m, agg, vals, withOutcome, edges, bandLabels)
	}
	return rep, nil
}

func popcount(m int) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}

func (rep *Report) section(mask int, agg map[key]*cell, vals [][]string, withOutcome bool, edges []float64, labels []string) {
	var attrs []string
	possible := 1
	for a, name := range rep.Attributes {
		if mask&(1<<a) != 0 {
			attrs = append(attrs, name)
			possible *= len(vals[a])
		}
	}
	sec := Section{Name: strings.Join(attrs, Sep), Attributes: attrs}
	if len(agg) < possible {
		sec.Notes = append(sec.Notes, fmt.Sprintf("%d of %d possible combinations have no members and are not listed", possible-len(agg), possible))
	}
	N := float64(rep.N)
	groups := make([]Group, 0, len(agg))
	for kk, c := range agg {
		var values []string
		for a := range rep.Attributes {
			if kk[a] >= 0 {
				values = append(values, vals[a][kk[a]])
			}
		}
		g := Group{
			Name:          strings.Join(values, Sep),
			Attributes:    attrs,
			Values:        values,
			N:             c.n,
			Share:         float64(c.n) / N,
			Selected:      c.sel,
			SelectionRate: float64(c.sel) / float64(c.n),
			Excluded:      float64(c.n)/N < rep.MinShare,
		}
		lo, hi, _ := Wilson(c.sel, c.n)
		g.SelectionCI = Interval{lo, hi}
		if withOutcome {
			neg := c.known - c.pos
			er := &ErrorRates{
				OutcomeKnown: c.known, ActualPositives: c.pos, ActualNegatives: neg,
				TruePositives: c.tp, FalsePositives: c.fp, FalseNegatives: c.pos - c.tp, TrueNegatives: neg - c.fp,
			}
			er.FalsePositiveRate = ratio(c.fp, neg)
			er.FalseNegativeRate = ratio(c.pos-c.tp, c.pos)
			er.TruePositiveRate = ratio(c.tp, c.pos)
			if neg == 0 {
				g.Notes = append(g.Notes, "no actual negatives: false-positive rate undefined (null)")
			}
			if c.pos == 0 {
				g.Notes = append(g.Notes, "no actual positives: false-negative and true-positive rates undefined (null)")
			}
			g.ErrorRates = er
			if edges != nil {
				g.Calibration = bandsOf(c.bands, edges, labels)
			}
		}
		groups = append(groups, g)
	}
	// Largest groups first: the reader looks for where most people are.
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].N != groups[j].N {
			return groups[i].N > groups[j].N
		}
		return groups[i].Name < groups[j].Name
	})

	ref := -1
	for i, g := range groups {
		if g.Excluded {
			continue
		}
		if ref < 0 || g.SelectionRate > groups[ref].SelectionRate {
			ref = i
		}
	}
	switch {
	case ref < 0:
		sec.Notes = append(sec.Notes, fmt.Sprintf("every group is under the minimum share %s; no impact ratios", pct(rep.MinShare)))
	case groups[ref].SelectionRate == 0:
		sec.Notes = append(sec.Notes, "no group has any selection; impact ratios undefined (null)")
		sec.ReferenceRate = ptr(0)
	default:
		sec.Reference = groups[ref].Name
		sec.ReferenceRate = ptr(groups[ref].SelectionRate)
		groups[ref].Reference = true
		groups[ref].ImpactRatio = ptr(1)
		r := &groups[ref]
		for i := range groups {
			g := &groups[i]
			if g.Excluded || i == ref {
				continue
			}
			ir := g.SelectionRate / r.SelectionRate
			g.ImpactRatio = ptr(ir)
			test, p, _ := CompareRates(g.Selected, g.N, r.Selected, r.N)
			g.Test, g.PValue = test, ptr(p)
			// The tolerance keeps a ratio of exactly the threshold (4/6 ÷ 5/6)
			// from alerting through rounding.
			if ir < rep.Threshold-1e-12 {
				rep.Alerts = append(rep.Alerts, Alert{
					Group: g.Name, Attributes: attrs, Reference: r.Name,
					Metric: "impact_ratio", Value: ir, Threshold: rep.Threshold,
					Test: test, PValue: p, Significant: p < Alpha, Requirement: "FP-4",
					Message: fmt.Sprintf("%s: selection rate %s is %.3f of %s's %s (below %.2f); %s p = %s%s",
						g.Name, pct(g.SelectionRate), ir, r.Name, pct(r.SelectionRate), rep.Threshold,
						testLabel(test), fmtP(p), significance(p)),
				})
			}
		}
	}

	var minSel, maxSel, minTPR, maxTPR float64
	nSel, nTPR := 0, 0
	for i := range groups {
		g := &groups[i]
		sec.Groups = append(sec.Groups, g.Name)
		if g.Excluded {
			g.Notes = append(g.Notes, fmt.Sprintf("share %s is under the minimum %s: left out of impact ratios and differences (FP-3)", pct(g.Share), pct(rep.MinShare)))
			rep.Excluded = append(rep.Excluded, Exclusion{
				Group: g.Name, Attributes: attrs, N: g.N, Share: g.Share, MinShare: rep.MinShare, Requirement: "FP-3",
				Reason: fmt.Sprintf("%d of %d decisions (%s) is under the minimum share %s", g.N, rep.N, pct(g.Share), pct(rep.MinShare)),
			})
			continue
		}
		if nSel == 0 || g.SelectionRate < minSel {
			minSel = g.SelectionRate
		}
		if nSel == 0 || g.SelectionRate > maxSel {
			maxSel = g.SelectionRate
		}
		nSel++
		if g.ErrorRates != nil && g.TruePositiveRate != nil {
			t := *g.TruePositiveRate
			if nTPR == 0 || t < minTPR {
				minTPR = t
			}
			if nTPR == 0 || t > maxTPR {
				maxTPR = t
			}
			nTPR++
		}
	}
	if nSel >= 2 {
		sec.DemographicParityDifference = ptr(maxSel - minSel)
	} else {
		sec.Notes = append(sec.Notes, "fewer than two groups are compared: demographic-parity difference undefined (null)")
	}
	if withOutcome {
		if nTPR >= 2 {
			sec.EqualOpportunityDifference = ptr(maxTPR - minTPR)
		} else {
			sec.Notes = append(sec.Notes, "fewer than two compared groups have actual positives: equal-opportunity difference undefined (null)")
		}
	}
	rep.Groups = append(rep.Groups, groups...)
	rep.Sections = append(rep.Sections, sec)
}

func ptr(x float64) *float64 { return &x }

func ratio(num, den int) *float64 {
	if den == 0 {
		return nil
	}
	return ptr(float64(num) / float64(den))
}

func testLabel(t string) string {
	if t == TestFisher {
		return "Fisher's exact test"
	}
	return "two-proportion z-test"
}

func significance(p float64) string {
	if p < Alpha {
		return ", significant at 5 %"
	}
	return ", not significant at 5 %"
}

func fmtP(p float64) string {
	if p < 1e-4 {
		return strconv.FormatFloat(p, 'e', 2, 64)
	}
	return strconv.FormatFloat(p, 'f', 4, 64)
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + " %" }

// scoreBands returns the upper edges and labels of the calibration bands.
func scoreBands(given []float64, rows []Observation) ([]float64, []string, error) {
	if given != nil {
		if len(given) == 0 {
			return nil, nil, inputErr("empty score band list")
		}
		for i, e := range given {
			if !finite(e) || (i > 0 && e <= given[i-1]) {
				return nil, nil, inputErr("score band edges must be finite and strictly ascending; got %v", given)
			}
		}
		labels := make([]string, len(given))
		for i, e := range given {
			if i == 0 {
				labels[i] = "≤ " + fmtNum(e)
			} else {
				labels[i] = fmtNum(given[i-1]) + "–" + fmtNum(e)
			}
		}
		return slices.Clone(given), labels, nil
	}
	const maxDistinct = 20
	distinct := map[float64]struct{}{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range rows {
		if !rows[i].HasScore {
			continue
		}
		s := rows[i].Score
		lo, hi = math.Min(lo, s), math.Max(hi, s)
		if len(distinct) <= maxDistinct {
			distinct[s] = struct{}{}
		}
	}
	if len(distinct) <= maxDistinct {
		edges := make([]float64, 0, len(distinct))
		for s := range distinct {
			edges = append(edges, s)
		}
		slices.Sort(edges)
		labels := make([]string, len(edges))
		for i, e := range edges {
			labels[i] = fmtNum(e)
		}
		return edges, labels, nil
	}
	const nb = 10
	w := (hi - lo) / nb
	edges := make([]float64, nb)
	labels := make([]string, nb)
	for i := range edges {
		edges[i] = lo + float64(i+1)*w
		labels[i] = fmtNum(lo+float64(i)*w) + "–" + fmtNum(edges[i])
	}
	edges[nb-1] = hi
	return edges, labels, nil
}

// bandOf finds the band whose upper edge is the first at or above s; scores
// above the last edge fall in the last band.
func bandOf(edges []float64, s float64) int {
	i := sort.SearchFloat64s(edges, s)
	return min(i, len(edges)-1)
}

func bandsOf(bc []bandCount, edges []float64, labels []string) []Band {
	var out []Band
	for i, b := range bc {
		if b.n == 0 {
			continue
		}
		n := float64(b.n)
		band := Band{Label: labels[i], Upper: edges[i], N: b.n, MeanScore: b.scoreSum / n,
			PredictedPositiveRate: float64(b.sel) / n, ObservedOutcomeRate: float64(b.pos) / n}
		out = append(out, band)
	}
	return out
}

func fmtNum(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
