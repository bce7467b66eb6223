package apply

import (
	"cmp"
	"math"
	"slices"
	"sync"
)

// How a request is ranked without scoring every item.
//
// An item's score is (1-w)·base + w·personal. Its base depends only on the
// item and the learnt model; its personal part is the largest affinity,
// relative to the subject's strongest, among the item's categories. So an
// item's score is met exactly in one list: the list of its best counted
// category, or, when none of its categories counts, the list of all items.
// Each list is sorted by base, so that along it the score can only fall,
// and the head of a list bounds everything left in it. rank walks the
// lists that count for the request together from their heads (a heap of
// cursors), keeps the k best in a bounded heap, and stops as soon as no
// head can beat the worst kept — Fagin's threshold algorithm. A request
// touches a few hundred entries however large the catalog, and allocates
// nothing per item: its buffers come from a pool.
//
// The lists are built once per item set and learnt model — when items are
// imported or the model is relearnt, which is when popularity moves — and
// are read-only afterwards, shared by every request.

// lists is the item catalog as candidate lists, all in one order.
type lists struct {
	all     list
	byCat   []list          // per category index: the items having it
	byGroup []list          // per primary category (group): its items
	byPair  map[uint64]list // per group and category: the group's items having it
}

// list is one candidate list: item indexes, and for each position the end
// of its run — the entries after it that tie with it on score at any
// weight and follow it in index order, so can be skipped together.
type list struct {
	items []int32
	end   []int32
}

func pairKey(g int32, k int) uint64 { return uint64(g)<<32 | uint64(uint32(k)) }

// newLists arranges the items in the order of perm; tie says whether two
// neighbours in it score the same at any weight.
func newLists(items *itemSet, perm []int32, tie func(a, b int32) bool) *lists {
	ls := &lists{byCat: make([]list, len(items.catNames)), byGroup: make([]list, len(items.groups)), byPair: map[uint64]list{}}
	ls.all.items = perm
	for _, i := range perm {
		g := items.group[i]
		ls.byGroup[g].items = append(ls.byGroup[g].items, i)
		for _, k := range items.cats[i] {
			l := &ls.byCat[k]
			if n := len(l.items); n > 0 && l.items[n-1] == i {
				continue // a category given twice
			}
			l.items = append(l.items, i)
			p := ls.byPair[pairKey(g, k)]
			p.items = append(p.items, i)
			ls.byPair[pairKey(g, k)] = p
		}
	}
	runs := func(l *list) {
		l.end = make([]int32, len(l.items))
		for j := len(l.items) - 1; j >= 0; j-- {
			if j+1 < len(l.items) && tie(l.items[j], l.items[j+1]) {
				l.end[j] = l.end[j+1]
			} else {
				l.end[j] = int32(j + 1)
			}
		}
	}
	runs(&ls.all)
	for k := range ls.byCat {
		runs(&ls.byCat[k])
	}
	for g := range ls.byGroup {
		runs(&ls.byGroup[g])
	}
	for key, l := range ls.byPair {
		runs(&l)
		ls.byPair[key] = l
	}
	return ls
}

// ranking is what rank needs of one learnt model over one item set.
type ranking struct {
	model *Model
	base  []float64 // per item
	// byBase holds the lists by base, highest first, then by index: the
	// order of scores for any weight below 1.
	byBase *lists
	// lift holds, per held label key, the categories it lifts (lift > 1)
	// and by how much: a label's candidate categories.
	lift map[string][]catLift
	// nan says some base is not a number (negative event weights): such
	// a ranking is sorted in full.
	nan bool
}

type catLift struct {
	k int
	d float64 // lift - 1
}

// ranking returns the ranking of m over the items, building it the first
// time m is seen.
func (items *itemSet) ranking(m *Model) *ranking {
	b := &items.ranked
	b.Lock()
	defer b.Unlock()
	if r := b.by[m.Purpose]; r != nil && r.model == m {
		return r
	}
	r := &ranking{model: m, lift: map[string][]catLift{}}
	maxPop := 0.0
	for _, v := range m.Popularity {
		maxPop = max(maxPop, v)
	}
	span := items.newest.Sub(items.oldest).Seconds()
	r.base = make([]float64, len(items.list))
	for i, it := range items.list {
		pop := 0.0
		if maxPop > 0 {
			pop = math.Log1p(m.Popularity[it.ID]) / math.Log1p(maxPop)
		}
		rec := 1.0
		if span > 0 {
			rec = it.Updated.Sub(items.oldest).Seconds() / span
		}
		r.base[i] = 0.8*pop + 0.2*rec
		r.nan = r.nan || math.IsNaN(r.base[i])
	}
	perm := make([]int32, len(items.list))
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(a, b int32) int {
		if c := cmp.Compare(r.base[b], r.base[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	r.byBase = newLists(items, perm, func(a, b int32) bool { return r.base[a] == r.base[b] })
	for key, cats := range m.Lift {
		for cat, lift := range cats {
			if k, ok := items.catIdx[cat]; ok && lift > 1 {
				r.lift[key] = append(r.lift[key], catLift{k, lift - 1})
			}
		}
	}
	if b.by == nil || len(b.by) > 16 {
		b.by = map[string]*ranking{}
	}
	b.by[m.Purpose] = r
	return r
}

// byIndex returns the lists in index order: the order of scores at
// weight 1, where the base does not count and every list ties.
func (items *itemSet) byIndex() *lists {
	items.indexOnce.Do(func() {
		perm := make([]int32, len(items.list))
		for i := range perm {
			perm[i] = int32(i)
		}
		items.indexLists = newLists(items, perm, func(a, b int32) bool { return true })
	})
	return items.indexLists
}

// cursor walks one list; score is the score of the entry at j as that
// list sees it, exact for the items whose best category the list carries.
type cursor struct {
	l     int // index into scratch.lists: no pointers, so no write barriers when the heap moves cursors
	j     int
	k     int     // the category the list carries, -1 for none
	p     float64 // its relative affinity, 0 for none
	i     int32
	score float64
}

// scratch is one request's working memory, reused through a pool.
type scratch struct {
	aff, ratio []float64 // per category
	why        [][]string
	touched    []int // categories with an affinity
	counted    []int // categories whose affinity counts (ratio > 0)
	heap       []cursor
	lists      []list
	top        []scored
	head       []scored
	seen       []uint64
}

var scratches sync.Pool

func getScratch(cats, items int) *scratch {
	sc, _ := scratches.Get().(*scratch)
	if sc == nil {
		sc = new(scratch)
	}
	if len(sc.aff) < cats {
		sc.aff, sc.ratio, sc.why = make([]float64, cats), make([]float64, cats), make([][]string, cats)
	}
	if w := (items + 63) / 64; len(sc.seen) < w {
		sc.seen = make([]uint64, w)
	}
	return sc
}

// putScratch clears what the request set and returns sc to the pool.
func putScratch(sc *scratch) {
	for _, k := range sc.touched {
		sc.aff[k], sc.ratio[k], sc.why[k] = 0, 0, sc.why[k][:0]
	}
	for _, c := range sc.head {
		sc.seen[c.i/64] = 0
	}
	clear(sc.lists)
	sc.touched, sc.counted, sc.heap, sc.lists, sc.top, sc.head = sc.touched[:0], sc.counted[:0], sc.heap[:0], sc.lists[:0], sc.top[:0], sc.head[:0]
	scratches.Put(sc)
}

// affinity fills the subject's affinity per category — the lift above 1
// of every held label, plus the subject's own share of the category — and
// the reasons each counted, and which categories count: those whose
// affinity relative to the strongest is above 0.
func (sc *scratch) affinity(r *ranking, items *itemSet, in input) {
	touch := func(k int, reason string) {
		if len(sc.why[k]) == 0 {
			sc.touched = append(sc.touched, k)
		}
		sc.why[k] = append(sc.why[k], reason)
	}
	if in.Weight > 0 {
		hist := sum(in.History)
		for _, key := range in.Labels {
			for _, c := range r.lift[key] {
				sc.aff[c.k] += c.d
				touch(c.k, labelOf(key))
			}
		}
		for cat, w := range in.History {
			if k, ok := items.catIdx[cat]; ok {
				sc.aff[k] += w / hist
				touch(k, "history")
			}
		}
	}
	maxAff := 0.0
	for _, k := range sc.touched {
		maxAff = max(maxAff, sc.aff[k])
	}
	if maxAff > 0 {
		for _, k := range sc.touched {
			if sc.ratio[k] = sc.aff[k] / maxAff; sc.ratio[k] > 0 {
				sc.counted = append(sc.counted, k)
			}
		}
	}
	slices.Sort(sc.counted)
}

// personal is item i's relative affinity: that of its first category with
// the largest, and that category.
func (sc *scratch) personal(items *itemSet, i int) (p float64, why int) {
	for _, k := range items.cats[i] {
		if a := sc.ratio[k]; a > p {
			p, why = a, k
		}
	}
	return p, why
}

func blend(w, base, personal float64) float64 { return (1-w)*base + w*personal }

// rank is the bare scorer: it blends the non-personalised ranking
// (popularity, recency) with the personalised one (label lifts and the
// subject's own category history) by in.Weight, then keeps the diversity
// floor. It reads nothing and checks nothing; Recommend wraps it.
//
// Only the head of the ranking, and of each category's ranking (for the
// diversity floor and exploration), can be shown: rank selects those from
// the candidate lists and falls back to ranking every item only if the
// floor is not kept among them, or for small catalogs.
func rank(m *Model, items *itemSet, in input) []Recommended {
	r := items.ranking(m)
	sc := getScratch(len(items.catNames), len(items.list))
	defer putScratch(sc)
	sc.affinity(r, items, in)
	in.why = sc.why
	if out, ok := sc.rankHead(r, items, in); ok {
		return out
	}
	return rankAll(r, items, in, sc)
}

// rankHead ranks the head of the ranking and of each category's ranking,
// selected from the candidate lists; ok is false if that does not keep
// the floor, or the catalog is small enough to rank in full.
func (sc *scratch) rankHead(r *ranking, items *itemSet, in input) (out []Recommended, ok bool) {
	k := max(200, 10*in.N)
	if len(items.list) <= k || r.nan {
		return nil, false
	}
	ls := r.byBase
	if in.Weight == 1 {
		ls = items.byIndex()
	}
	sc.head = append(sc.head, sc.best(r, items, in, k, ls.all, func(k int) (list, bool) { return ls.byCat[k], true })...)
	for _, c := range sc.head {
		sc.seen[c.i/64] |= 1 << (c.i % 64)
	}
	for g := range items.groups {
		for _, c := range sc.best(r, items, in, in.N, ls.byGroup[g], func(k int) (list, bool) {
			l, ok := ls.byPair[pairKey(int32(g), k)]
			return l, ok
		}) {
			if sc.seen[c.i/64]&(1<<(c.i%64)) == 0 {
				sc.seen[c.i/64] |= 1 << (c.i % 64)
				sc.head = append(sc.head, c)
			}
		}
	}
	slices.SortFunc(sc.head, byRank)
	shown := len(items.list)
	if !in.Diversity.Repeats {
		for id, yes := range in.Consumed {
			if _, ok := items.index[id]; ok && yes {
				shown--
			}
		}
	}
	out = diversify(sc.head, items, in)
	return out, len(out) == min(in.N, shown) && categoriesIn(out, items) >= min(in.Diversity.MinCategories, in.N, items.categories)
}

// rankAll scores and sorts every item.
func rankAll(r *ranking, items *itemSet, in input, sc *scratch) []Recommended {
	cands := make([]scored, len(items.list))
	for i := range items.list {
		c := scored{i: i, base: r.base[i]}
		c.personal, c.why = sc.personal(items, i)
		c.score = blend(in.Weight, c.base, c.personal)
		if in.Consumed[items.list[i].ID] && !in.Diversity.Repeats {
			c.score = math.Inf(-1) // never shown
		}
		cands[i] = c
	}
	slices.SortFunc(cands, byRank)
	return diversify(cands, items, in)
}

// best returns the k best items in rank order,
// leaving out those the subject already consumed, that the list of all
// items (plain) and the lists of the counted categories reach. The result
// is in sc.top, valid until the next call.
func (sc *scratch) best(r *ranking, items *itemSet, in input, k int, plain list, of func(k int) (list, bool)) []scored {
	h, ls := sc.heap[:0], sc.lists[:0]
	add := func(l list, cat int, p float64) {
		if len(l.items) > 0 {
			ls = append(ls, l)
			c := cursor{l: len(ls) - 1, k: cat, p: p}
			c.at(r, ls, in.Weight)
			h = append(h, c)
		}
	}
	add(plain, -1, 0)
	for _, cat := range sc.counted {
		if l, ok := of(cat); ok {
			add(l, cat, sc.ratio[cat])
		}
	}
	for j := len(h)/2 - 1; j >= 0; j-- {
		cursorDown(h, j)
	}
	top := sc.top[:0]
	for len(h) > 0 {
		c := &h[0]
		l := &ls[c.l]
		if len(top) == k && byRank(scored{i: int(c.i), score: c.score}, top[k-1]) >= 0 {
			if c.score < top[k-1].score {
				break // no list holds anything better than the worst kept
			}
			// The rest of this run ties with the head and comes after it.
			c.j = int(l.end[c.j])
		} else {
			sc.take(r, items, in, c, &top, k)
			c.j++
		}
		if c.j < len(l.items) {
			c.at(r, ls, in.Weight)
		} else {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		cursorDown(h, 0)
	}
	sc.heap, sc.lists, sc.top = h, ls, top
	return top
}

// at sets the cursor's item and score at its position.
func (c *cursor) at(r *ranking, ls []list, w float64) {
	c.i = ls[c.l].items[c.j]
	c.score = blend(w, r.base[c.i], c.p)
}

// take offers the cursor's item to the k best kept in top, in rank order,
// if this list is where its score is met. Items mostly come in rank
// order, so the place is found from the end, mostly at once.
func (sc *scratch) take(r *ranking, items *itemSet, in input, c *cursor, top *[]scored, k int) {
	i := int(c.i)
	p, why := sc.personal(items, i)
	if (c.k < 0 && p != 0) || (c.k >= 0 && why != c.k) {
		return // its score is met in another list
	}
	if len(in.Consumed) > 0 && !in.Diversity.Repeats && in.Consumed[items.list[i].ID] {
		return
	}
	s := scored{i: i, score: c.score, base: r.base[i], personal: p, why: why}
	h := *top
	if len(h) == k && byRank(s, h[k-1]) >= 0 {
		return
	}
	j := len(h)
	for j > 0 && byRank(s, h[j-1]) < 0 {
		j--
	}
	if len(h) < k {
		h = append(h, scored{})
	}
	copy(h[j+1:], h[j:len(h)-1])
	h[j] = s
	*top = h
}

// cursorDown restores the heap of cursors, whose root is the best head.
func cursorDown(h []cursor, i int) {
	less := func(a, b *cursor) bool { // a ranks before b
		return a.score > b.score || (a.score == b.score && a.i < b.i)
	}
	for {
		l, w := 2*i+1, i
		if l < len(h) && less(&h[l], &h[w]) {
			w = l
		}
		if r := l + 1; r < len(h) && less(&h[r], &h[w]) {
			w = r
		}
		if w == i {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}
