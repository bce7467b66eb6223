package apply

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// randomCatalog makes n items over cats categories: one to three
// categories each (sometimes one given twice), with update times and
// popularity drawn from few values half of the time, so that scores tie.
func randomCatalog(rng *rand.Rand, n, cats int) (*itemSet, *Model) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ties := rng.IntN(2) == 0
	list := make([]portrait.Item, n)
	m := &Model{Purpose: "personalization", Popularity: map[string]float64{}, Lift: map[string]map[string]float64{}}
	for i := range list {
		it := portrait.Item{ID: fmt.Sprintf("i%07d-%05d", rng.IntN(10_000_000), i)}
		for range 1 + rng.IntN(3) {
			it.Categories = append(it.Categories, fmt.Sprintf("c%02d", rng.IntN(cats)))
		}
		if ties {
			it.Updated = t0.Add(time.Duration(rng.IntN(3)) * time.Hour)
			if rng.IntN(4) == 0 {
				m.Popularity[it.ID] = float64(rng.IntN(3))
			}
		} else {
			it.Updated = t0.Add(time.Duration(rng.IntN(1_000_000)) * time.Second)
			if rng.IntN(3) > 0 {
				m.Popularity[it.ID] = float64(rng.IntN(500))
			}
		}
		list[i] = it
	}
	for _, key := range []string{"fan", "seg#0", "seg#1", "seg#2"} {
		m.Lift[key] = map[string]float64{}
		for range rng.IntN(cats + 1) {
			m.Lift[key][fmt.Sprintf("c%02d", rng.IntN(cats+2))] = []float64{0.5, 1, 1.5, 2, 3, rng.Float64() * 3}[rng.IntN(6)]
		}
	}
	return newItemSet(list, t0), m
}

func randomInput(rng *rand.Rand, items *itemSet, cats int) input {
	in := input{N: 1 + rng.IntN(MaxItems), Diversity: DefaultDiversity, History: map[string]float64{}, Consumed: map[string]bool{}}
	if rng.IntN(2) == 0 {
		in.N = 1 + rng.IntN(20)
	}
	if rng.IntN(3) == 0 {
		in.Diversity = Diversity{MinCategories: rng.IntN(6), MaxShare: []float64{0, 0.2, 0.5, 1}[rng.IntN(4)],
			Explore: []float64{0, 0.1, 0.3}[rng.IntN(3)], Repeats: rng.IntN(2) == 0}
	}
	// The dial as Recommend sets it: level / 100, with 0, 100 and the
	// levels in between all drawn often.
	switch rng.IntN(3) {
	case 0:
		in.Weight = 1
	case 1:
		in.Weight = 0
	default:
		in.Weight = float64(1+rng.IntN(99)) / 100
	}
	if in.Weight > 0 {
		for _, key := range []string{"fan", "seg#0", "seg#1", "seg#2", "unknown"} {
			if rng.IntN(2) == 0 {
				in.Labels = append(in.Labels, key)
			}
		}
		for range rng.IntN(6) {
			// Event weights as configured: whole numbers (view 1, purchase 3).
			in.History[fmt.Sprintf("c%02d", rng.IntN(cats+2))] += float64(1 + rng.IntN(3)*2)
		}
	}
	for range rng.IntN(len(items.list) / 2) {
		in.Consumed[items.list[rng.IntN(len(items.list))].ID] = true
	}
	if rng.IntN(10) == 0 {
		in.Consumed["not-an-item"] = true
	}
	return in
}

// TestRankMatchesReference: on random catalogs, models and requests, the
// candidate-list ranking returns exactly what scoring every item returned
// — the same items in the same order with the same marks and reasons —
// so that the dial's weight, the labels' reasons, the diversity floor,
// exploration and no repeats work as they did. (The legal behaviour
// itself is asserted by TestRecommend and the server's tests; this test
// asserts only that ranking did not change.)
func TestRankMatchesReference(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	fast, runs := 0, 150
	if testing.Short() {
		runs = 40
	}
	for run := range runs {
		cats := 1 + rng.IntN(40)
		items, m := randomCatalog(rng, 150+rng.IntN(3000), cats)
		for range 5 {
			in := randomInput(rng, items, cats)
			want := referenceRank(m, items, in)
			got := rank(m, items, in)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("run %d (seed %d): %d items, %d categories, weight %v, n %d, diversity %+v, labels %v, history %v:\n got %v\nwant %v",
					run, seed, len(items.list), cats, in.Weight, in.N, in.Diversity, in.Labels, in.History, got, want)
			}
			sc := getScratch(len(items.catNames), len(items.list))
			sc.affinity(items.ranking(m), items, in)
			in.why = sc.why
			if _, ok := sc.rankHead(items.ranking(m), items, in); ok {
				fast++
			}
			putScratch(sc)
		}
	}
	// Most requests must take the fast path, or this test proves little.
	if fast < runs*5/2 {
		t.Errorf("only %d of %d requests were ranked from the candidate lists", fast, runs*5)
	}
	t.Logf("%d of %d requests ranked from the candidate lists", fast, runs*5)
}

// TestRankAllocations: a request over 10⁴ items allocates a bounded
// amount, not one entry per item.
func TestRankAllocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	items, m := randomCatalog(rng, 10_000, 20)
	in := input{N: 20, Diversity: DefaultDiversity, Weight: 1, Labels: []string{"fan"}, History: map[string]float64{"c01": 3, "c02": 1}}
	rank(m, items, in) // build the lists
	if _, ok := func() ([]Recommended, bool) {
		sc := getScratch(len(items.catNames), len(items.list))
		defer putScratch(sc)
		sc.affinity(items.ranking(m), items, in)
		in.why = sc.why
		return sc.rankHead(items.ranking(m), items, in)
	}(); !ok {
		t.Fatal("the request fell back to ranking every item")
	}
	allocs := testing.AllocsPerRun(20, func() { rank(m, items, in) })
	// The answer itself (20 items, their reasons) and diversify's maps.
	if allocs > 120 {
		t.Errorf("%v allocations per request, want at most 120", allocs)
	}
	t.Logf("%v allocations per request", allocs)
}

// TestRankingRebuilt: the candidate lists follow a new model of the same
// purpose — popularity moved — rather than serving the old order.
func TestRankingRebuilt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	items, m := randomCatalog(rng, 1000, 5)
	in := input{N: 5, Diversity: Diversity{MinCategories: 1, MaxShare: 1}}
	first := rank(m, items, in)
	m2 := &Model{Purpose: m.Purpose, Popularity: map[string]float64{}, Lift: m.Lift}
	last := items.list[len(items.list)-1].ID
	m2.Popularity[last] = 1e9
	got := rank(m2, items, in)
	if got[0].ID != last || got[0].ID == first[0].ID {
		t.Errorf("after popularity moved to %s: %v (before %v)", last, got, first)
	}
	if !reflect.DeepEqual(got, referenceRank(m2, items, in)) {
		t.Errorf("new model: fast path and reference differ")
	}
}

// BenchmarkRankingBuild: what an item import or a relearnt model costs
// once, to build the candidate lists over 10⁴ items.
func BenchmarkRankingBuild(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	items, m := randomCatalog(rng, 10_000, 20)
	for b.Loop() {
		fresh := *m
		items.ranking(&fresh)
	}
}
