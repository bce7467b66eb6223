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
		if out := referenceDiversify(head, items, in); len(out) == min(in.N, referenceShown(cands)) && categoriesIn(out, items) >= min(in.Diversity.MinCategories, in.N, items.categories) {
			return out
		}
	}
	slices.SortFunc(cands, byRank)
	return referenceDiversify(cands, items, in)
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

// referenceDiversify is diversify as it was, with strings as keys.
func referenceDiversify(cands []scored, items *itemSet, in input) []Recommended {
	shown := 0
	distinct := map[string]bool{}
	for _, c := range cands {
		if !math.IsInf(c.score, -1) {
			shown++
			distinct[primary(items, c.i)] = true
		}
	}
	n := min(in.N, shown)
	d := in.Diversity
	explore := int(float64(n) * d.Explore)
	maxPer := max(1, int(float64(n)*d.MaxShare))
	minCats := min(d.MinCategories, n, len(distinct))
	if d.MaxShare <= 0 || d.MaxShare >= 1 {
		maxPer = n
	}
	per := map[string]int{}
	taken := make([]bool, len(cands))
	for j, c := range cands {
		taken[j] = math.IsInf(c.score, -1)
	}
	var out []Recommended
	add := func(j int, reasons []string, personalized bool) {
		taken[j] = true
		per[primary(items, cands[j].i)]++
		out = append(out, Recommended{ID: items.list[cands[j].i].ID, Personalized: personalized, Reasons: reasons})
	}
	main := n - explore
	for pass := 0; pass < 2 && len(out) < main; pass++ {
		for j, c := range cands {
			if len(out) >= main {
				break
			}
			cat := primary(items, c.i)
			if taken[j] || (pass == 0 && per[cat] >= maxPer) {
				continue
			}
			// Keep room for the categories the floor still needs.
			if need := minCats - len(per); need > 0 && per[cat] > 0 && main-len(out) <= need {
				continue
			}
			personalized := in.Weight > 0 && c.personal > 0
			reasons := []string{"popular"}
			if personalized {
				reasons = uniq(in.why[c.why])
			}
			add(j, reasons, personalized)
		}
	}
	// Exploration: the most popular items of the least-shown categories.
	for len(out) < n {
		best, bestCount := -1, math.MaxInt
		for j, c := range cands {
			if taken[j] {
				continue
			}
			k := per[primary(items, c.i)]
			if k < bestCount || (k == bestCount && c.base > cands[best].base) {
				best, bestCount = j, k
			}
		}
		if best < 0 {
			break
		}
		add(best, []string{"explore"}, false)
	}
	return out
}
