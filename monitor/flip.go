package monitor

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/fairness"
	"github.com/portrait-dev/portrait/label"
)

// FlipCheck is one counterfactual flip test of a use-case's model: the
// model re-run on each subject's features with one thing changed.
type FlipCheck struct {
	// Changed is the protected attribute or the flagged proxy feature.
	Changed string `json:"changed"`
	Kind    string `json:"kind"` // protected or proxy
	// Protected is the attribute the groups are taken from.
	Protected string `json:"protected"`
	Method    string `json:"method"`
	// Result counts the flips; its transitions run from the subject's own
	// group to each other group.
	Result *fairness.FlipResult `json:"result,omitempty"`
	Note   string               `json:"note,omitempty"`
}

// flipSubject is what the flip test knows of one subject.
type flipSubject struct {
	features  map[string]float64
	protected map[string]string
}

// flipTests re-runs uc's declared model (catalog Label.Model, as
// apply.Decide does) on the current features of each subject with a
// decision in uc: once per protected attribute changed to each other
// value, everything else equal, and once per flagged proxy that the model
// reads, moved to the same rank within each other group of the attribute
// it is a proxy of (FP-3, FP-4, FP-6). proxies maps a feature to that
// attribute. Alerts go to rep.
func (m *Monitor) flipTests(cat *catalog.Catalog, uc string, attrs []string, subjects []*subjectData, proxies map[string]string, rep *Report) ([]FlipCheck, string) {
	decl := cat.UseCase(uc)
	if decl == nil || decl.Model == "" {
		return nil, "no flip test: the use-case declares no model to re-run"
	}
	lbl := cat.Label(decl.Model)
	if lbl == nil || lbl.Model == nil {
		return nil, fmt.Sprintf("no flip test: model %q is not a declared score label with a model", decl.Model)
	}
	model := label.Model(*lbl.Model)
	features := make([]string, 0, len(model.Weights))
	for f := range model.Weights {
		features = append(features, f)
	}
	slices.Sort(features)
	var subs []flipSubject
	missing := 0
	for _, s := range subjects {
		if !slices.ContainsFunc(s.decisions, func(d portrait.StoredDetermination) bool { return d.UseCase == uc }) {
			continue
		}
		fs := flipSubject{features: map[string]float64{}, protected: s.protected}
		ok := true
		for _, f := range features {
			x, has := s.numeric[f]
			if !has {
				// apply reads a numeric string as a number too.
				v, err := strconv.ParseFloat(s.category[f], 64)
				x, has = v, err == nil && finite(v)
			}
			fs.features[f] = x
			ok = ok && has
		}
		if !ok {
			missing++
			continue
		}
		subs = append(subs, fs)
	}
	note := ""
	if missing > 0 {
		note = fmt.Sprintf("%d subjects left out of the flip tests: their profile lacks a feature of model %q", missing, lbl.ID)
	}
	if len(subs) == 0 {
		return nil, strings.TrimSpace(note + " no subject to re-run the model on")
	}
	decide := func(v map[string]float64) (bool, error) {
		score, _, err := model.Score(v)
		if err != nil {
			return false, err
		}
		return model.Outcome(score), nil
	}
	var out []FlipCheck
	for _, a := range attrs {
		fc := FlipCheck{Changed: a, Kind: "protected", Protected: a,
			Method: "the protected attribute set to each other value, every feature kept: the model never reads it (FP-2), so any flip means it reaches the model some other way"}
		var rows []map[string]string
		for _, s := range subs {
			if v, ok := s.protected[a]; ok {
				rows = append(rows, flipRow(s, a, v))
			}
		}
		res, err := fairness.FlipTest(rows, a, nil, func(r map[string]string) (bool, error) { return decide(rowFeatures(r, features)) })
		if err != nil {
			fc.Note = err.Error()
		}
		fc.Result = res
		if res != nil && res.Flips > 0 {
			rep.Alerts = append(rep.Alerts, Alert{Kind: "fairness", Requirement: "FP-4", Metric: "flip_rate", Value: res.FlipRate, Threshold: 0,
				Scope: uc + "/flip:" + a, Message: fmt.Sprintf("use-case %s: changing %s alone flips %d of %d decisions of model %s", uc, a, res.Flips, res.Evaluations, lbl.ID),
				Facts: &Facts{UseCase: uc, Protected: a, Model: lbl.ID, Flips: res.Flips, Evaluations: res.Evaluations}})
		}
		out = append(out, fc)
	}
	var unread []string
	for _, f := range slices.Sorted(maps.Keys(proxies)) {
		a := proxies[f]
		if _, reads := model.Weights[f]; !reads {
			unread = append(unread, f)
			continue
		}
		fc := FlipCheck{Changed: f, Kind: "proxy", Protected: a,
			Method: fmt.Sprintf("%s moved to the same rank within each other %s group (quantile mapping), everything else kept", f, a)}
		res, err := proxyFlip(subs, features, f, a, decide)
		if err != nil {
			fc.Note = err.Error()
		}
		fc.Result = res
		if res != nil && res.FlipRate > m.opts.FlipThreshold {
			rep.Alerts = append(rep.Alerts, Alert{Kind: "fairness", Requirement: "FP-6", Metric: "proxy_flip_rate", Value: res.FlipRate, Threshold: m.opts.FlipThreshold,
				Scope: uc + "/flip:" + f + "~" + a, Message: fmt.Sprintf("use-case %s: moving proxy %s to another %s group's level flips %d of %d decisions of model %s (%.1f %% > %.1f %%)",
					uc, f, a, res.Flips, res.Evaluations, lbl.ID, 100*res.FlipRate, 100*m.opts.FlipThreshold),
				Facts: &Facts{UseCase: uc, Feature: f, Protected: a, Model: lbl.ID, Flips: res.Flips, Evaluations: res.Evaluations}})
		}
		out = append(out, fc)
	}
	if len(unread) > 0 {
		note = strings.TrimSpace(note + fmt.Sprintf(" flagged proxies the model does not read, so cannot flip: %s", strings.Join(unread, ", ")))
	}
	return out, note
}

func flipRow(s flipSubject, col, v string) map[string]string {
	r := make(map[string]string, len(s.features)+1)
	for f, x := range s.features {
		r["f:"+f] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	r[col] = v
	return r
}

func rowFeatures(r map[string]string, features []string) map[string]float64 {
	v := make(map[string]float64, len(features))
	for _, f := range features {
		v[f], _ = strconv.ParseFloat(r["f:"+f], 64)
	}
	return v
}

// proxyFlip moves feature f of each subject to the value at the same rank
// (mid-rank quantile) within each other group of attribute a, and counts
// the decisions that change.
func proxyFlip(subs []flipSubject, features []string, f, a string, decide func(map[string]float64) (bool, error)) (*fairness.FlipResult, error) {
	byGroup := map[string][]float64{}
	for _, s := range subs {
		if g, ok := s.protected[a]; ok {
			byGroup[g] = append(byGroup[g], s.features[f])
		}
	}
	for _, xs := range byGroup {
		sort.Float64s(xs)
	}
	col := "as:" + a
	var rows []map[string]string
	for _, s := range subs {
		g, ok := s.protected[a]
		if !ok {
			continue
		}
		r := flipRow(s, col, g)
		r["own"] = g
		r["q"] = strconv.FormatFloat(rankOf(byGroup[g], s.features[f]), 'g', -1, 64)
		rows = append(rows, r)
	}
	return fairness.FlipTest(rows, col, nil, func(r map[string]string) (bool, error) {
		v := rowFeatures(r, features)
		if g := r[col]; g != r["own"] {
			q, _ := strconv.ParseFloat(r["q"], 64)
			v[f] = quantile(byGroup[g], q)
		}
		return decide(v)
	})
}

// rankOf is x's mid-rank quantile in sorted xs, in [0, 1].
func rankOf(xs []float64, x float64) float64 {
	if len(xs) < 2 {
		return 0.5
	}
	lo := sort.SearchFloat64s(xs, x)
	hi := sort.Search(len(xs), func(i int) bool { return xs[i] > x })
	return (float64(lo+hi-1) / 2) / float64(len(xs)-1)
}

// quantile is the q-quantile of sorted xs, linearly interpolated.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 1 {
		return xs[0]
	}
	pos := q * float64(len(xs)-1)
	i := int(math.Floor(pos))
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	return xs[i] + (pos-float64(i))*(xs[i+1]-xs[i])
}
