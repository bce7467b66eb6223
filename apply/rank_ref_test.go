package apply

import (
	"math"
	"slices"
)

// referenceRank is the scorer as it was before the candidate lists
// (rank.go): it scores every item on every request. It is kept, verbatim
// but for its name, only as the reference that the fast path must
// reproduce exactly (TestRankMatchesReference) and as the "reference"
// benchmark.
func referenceRank(m *Model, items *itemSet, in input) []Recommended {
	base := items.ranking(m).base
	hist := sum(in.History)
	// Category affinity: the lift above 1 of every held label, plus the
	// subject's own share of the category.
	aff := make([]float64, len(items.catNames))
	why := make([][]string, len(items.catNames))
	in.why = why
	if in.Weight > 0 {
		idx := make(map[string]int, len(items.catNames))
		for k, c := range items.catNames {
			idx[c] = k
		}
		for _, key := range in.Labels {
			for cat, lift := range m.Lift[key] {
				if k, ok := idx[cat]; ok && lift > 1 {
					aff[k] += lift - 1
					why[k] = append(why[k], labelOf(key))
				}
			}
		}
		for cat, w := range in.History {
			if k, ok := idx[cat]; ok {
				aff[k] += w / hist
				why[k] = append(why[k], "history")
			}
		}
	}
	maxAff := 0.0
	for _, v := range aff {
		maxAff = max(maxAff, v)
	}
	cands := make([]scored, len(items.list))
	for i := range items.list {
		c := scored{i: i, base: base[i]}
		if maxAff > 0 {
			for _, k := range items.cats[i] {
				if a := aff[k] / maxAff; a > c.personal {
					c.personal, c.why = a, k
				}
			}
		}
		c.score = (1-in.Weight)*c.base + in.Weight*c.personal
		if in.Consumed[items.list[i].ID] && !in.Diversity.Repeats {
			// Kept in place, so that cands[i] is item i, but never shown.
			c.score = math.Inf(-1)
		}
		cands[i] = c
	}
	// Only the head of the ranking, and of each category's ranking (for
	// the diversity floor and exploration), can be shown: rank those fully
	// and fall back to the whole list only if the floor is not kept.
	if k := max(200, 10*in.N); len(cands) > k {
		head := referenceBest(cands, k)
		seen := make(map[int]bool, len(head))
		for _, c := range head {
			seen[c.i] = true
		}
		var buf []scored
		for _, g := range items.groups {
			buf = buf[:0]
			for _, i := range g {
				buf = append(buf, cands[i])
			}
			for _, c := range referenceBest(buf, in.N) {
				if !seen[c.i] {
					head = append(head, c)
				}
			}
		}
		slices.SortFunc(head, byRank)
		if out := diversify(head, items, in); len(out) == min(in.N, referenceShown(cands)) && categoriesIn(out, items) >= min(in.Diversity.MinCategories, in.N, items.categories) {
			return out
		}
	}
	slices.SortFunc(cands, byRank)
	return diversify(cands, items, in)
}

// referenceBest returns the k best candidates in rank order, with a bounded heap
// whose root is the worst kept.
func referenceBest(cands []scored, k int) []scored {
	h := make([]scored, 0, k)
	down := func(i int) {
		for {
			l, w := 2*i+1, i
			if l < len(h) && byRank(h[l], h[w]) > 0 {
				w = l
			}
			if r := l + 1; r < len(h) && byRank(h[r], h[w]) > 0 {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for _, c := range cands {
		if len(h) < k {
			h = append(h, c)
			for i := len(h) - 1; i > 0; {
				p := (i - 1) / 2
				if byRank(h[i], h[p]) <= 0 {
					break
				}
				h[i], h[p] = h[p], h[i]
				i = p
			}
			continue
		}
		if byRank(c, h[0]) < 0 {
			h[0] = c
			down(0)
		}
	}
	slices.SortFunc(h, byRank)
	return h
}

func referenceShown(cands []scored) int {
	n := 0
	for _, c := range cands {
		if !math.IsInf(c.score, -1) {
			n++
		}
	}
	return n
}
