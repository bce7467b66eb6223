package label

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

// RFMScore is a subject's recency, frequency and monetary value over one
// purchase event type, their quintile scores over the population (1 worst,
// 5 best) and the customer class they fall in.
type RFMScore struct {
	Recency   float64      `json:"recency"` // days since the last purchase; 1e9 if none
	Frequency int          `json:"frequency"`
	Monetary  float64      `json:"monetary"`
	R         int          `json:"r"`
	F         int          `json:"f"`
	M         int          `json:"m"`
	Class     string       `json:"class"`
	Name      catalog.Text `json:"name"` // sealed as null by batch derivation; decoding words it from Class
}

// RFM classes, from best to worst, with their names. The grid reads R and F
// (M only separates champions), as in the usual RFM segment maps.
var rfmClasses = map[string]catalog.Text{
	"champions":      {"zh-CN": "重要价值客户", "en": "champions"},
	"loyal":          {"zh-CN": "忠诚客户", "en": "loyal customers"},
	"new":            {"zh-CN": "新客户", "en": "new customers"},
	"potential":      {"zh-CN": "潜力客户", "en": "potential loyalists"},
	"need_attention": {"zh-CN": "需要关注的客户", "en": "customers needing attention"},
	"at_risk":        {"zh-CN": "有流失风险的客户", "en": "customers at risk"},
	"hibernating":    {"zh-CN": "沉睡客户", "en": "hibernating customers"},
}

// RFMClassName returns the zh-CN and en names of an RFM class.
func RFMClassName(class string) catalog.Text { return rfmClasses[class] }

// RFMClass places quintile scores r, f and m (1 worst, 5 best) in the
// RFM grid: the class id that RFMClassName names. Incremental derivation
// scores a subject against a stored population and classes it here, so
// that it and RFM can never disagree.
func RFMClass(r, f, m int) string {
	switch {
	case r >= 4 && f >= 4 && m >= 4:
		return "champions"
	case r >= 3 && f >= 4:
		return "loyal"
	case r >= 4 && f == 1:
		return "new"
	case r >= 4:
		return "potential"
	case r == 3:
		return "need_attention"
	case f >= 3:
		return "at_risk"
	}
	return "hibernating"
}

// RFM scores every subject at now over its events of eventType, summing
// amountField for the monetary value. A quintile score is
// 1 + ⌊5 · (subjects strictly worse) / n⌋, so ties share a score and the
// result does not depend on map order. Subjects without a purchase are
// scored too, as the worst on all three.
func RFM(now time.Time, subjects map[string][]Event, eventType, amountField string) map[string]RFMScore {
	ids := slices.Sorted(maps.Keys(subjects))
	out := make(map[string]RFMScore, len(ids))
	rec := make([]float64, len(ids))
	freq := make([]float64, len(ids))
	mon := make([]float64, len(ids))
	for i, id := range ids {
		var last time.Time
		var s RFMScore
		for _, e := range subjects[id] {
			if e.Type != eventType || e.Time.After(now) {
				continue
			}
			s.Frequency++
			if x, ok := toFloat(e.Fields[amountField]); ok {
				s.Monetary = Add(s.Monetary, x)
			}
			if e.Time.After(last) {
				last = e.Time
			}
		}
		s.Recency = 1e9
		if s.Frequency > 0 {
			s.Recency = now.Sub(last).Hours() / 24
		}
		out[id] = s
		rec[i], freq[i], mon[i] = -s.Recency, float64(s.Frequency), s.Monetary
	}
	r, f, m := quintiles(rec), quintiles(freq), quintiles(mon)
	for i, id := range ids {
		s := out[id]
		s.R, s.F, s.M = r[i], f[i], m[i]
		s.Class = RFMClass(s.R, s.F, s.M)
		s.Name = rfmClasses[s.Class]
		out[id] = s
	}
	return out
}

// quintiles scores each value 1..5 by how many values are strictly lower.
func quintiles(vals []float64) []int {
	n := len(vals)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] < vals[order[b]] })
	out := make([]int, n)
	for i := 0; i < n; {
		j := i
		for j < n && vals[order[j]] == vals[order[i]] {
			j++
		}
		q := 1 + 5*i/n
		for _, k := range order[i:j] {
			out[k] = q
		}
		i = j
	}
	return out
}
