package fairness

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Model is a decision model under test: it sees one subject's attributes and
// decides.
type Model func(row map[string]string) (bool, error)

// FlipResult counts how often changing one attribute, all else equal,
// changes a decision: a direct test of whether the model uses the attribute
// (or, run on a flagged proxy, the proxy).
type FlipResult struct {
	Attribute string `json:"attribute"`
	Subjects  int    `json:"subjects"`
	// Evaluations counts counterfactual runs: each subject once per other value.
	Evaluations int `json:"evaluations"`
	Flips       int `json:"flips"`
	// FlipRate is Flips ÷ Evaluations.
	FlipRate float64 `json:"flip_rate"`
	// SubjectsFlipped counts subjects with at least one flip, and
	// SubjectFlipRate is their share.
	SubjectsFlipped int         `json:"subjects_flipped"`
	SubjectFlipRate float64     `json:"subject_flip_rate"`
	Transitions     []FlipCount `json:"transitions"`
}

// FlipCount is the number of flips from one value to another.
type FlipCount struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Runs  int    `json:"runs"`
	Flips int    `json:"flips"`
}

// FlipTest re-runs model on every row with attribute set to each other value
// in values (or, when values is nil, each value observed in rows), and
// counts the decisions that change. Rows are not modified.
func FlipTest(rows []map[string]string, attribute string, values []string, model Model) (*FlipResult, error) {
	if model == nil {
		return nil, inputErr("flip test: no model")
	}
	if len(rows) == 0 {
		return nil, inputErr("flip test: no subjects")
	}
	for i, r := range rows {
		if _, ok := r[attribute]; !ok {
			return nil, inputErr("flip test: subject %d has no attribute %q", i+1, attribute)
		}
	}
	if values == nil {
		seen := map[string]bool{}
		for _, r := range rows {
			if v := r[attribute]; !seen[v] {
				seen[v] = true
				values = append(values, v)
			}
		}
		sort.Strings(values)
	}
	if len(values) < 2 {
		return nil, inputErr("flip test: attribute %q has %d value(s); a flip needs at least two", attribute, len(values))
	}
	res := &FlipResult{Attribute: attribute, Subjects: len(rows)}
	type pair struct{ from, to string }
	counts := map[pair]*FlipCount{}
	for i, r := range rows {
		orig := r[attribute]
		base, err := model(r)
		if err != nil {
			return nil, fmt.Errorf("flip test: model on subject %d: %w", i+1, err)
		}
		cf := maps.Clone(r)
		flipped := false
		for _, v := range values {
			if v == orig {
				continue
			}
			cf[attribute] = v
			got, err := model(cf)
			if err != nil {
				return nil, fmt.Errorf("flip test: model on subject %d with %s=%q: %w", i+1, attribute, v, err)
			}
			c := counts[pair{orig, v}]
			if c == nil {
				c = &FlipCount{From: orig, To: v}
				counts[pair{orig, v}] = c
			}
			c.Runs++
			res.Evaluations++
			if got != base {
				c.Flips++
				res.Flips++
				flipped = true
			}
		}
		if flipped {
			res.SubjectsFlipped++
		}
	}
	if res.Evaluations > 0 {
		res.FlipRate = float64(res.Flips) / float64(res.Evaluations)
	}
	res.SubjectFlipRate = float64(res.SubjectsFlipped) / float64(res.Subjects)
	for _, c := range counts {
		res.Transitions = append(res.Transitions, *c)
	}
	slices.SortFunc(res.Transitions, func(a, b FlipCount) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return res, nil
}
