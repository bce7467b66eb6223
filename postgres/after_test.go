package postgres

import (
	"math/rand/v2"
	"testing"
)

// TestIDFloor: the floor for a horizon comes from the newest sample taken
// at or before it, the highest floor among samples that old, whatever
// order reads finish in; nothing older than every sample has a floor; and
// thinning the list only ever lowers a floor (never raises it past what a
// sample that old said), so a bounded read stays sound.
func TestIDFloor(t *testing.T) {
	var f idFloor
	if _, ok := f.below(100); ok {
		t.Fatal("a floor with no sample")
	}
	f.add(10, 5)
	f.add(30, 20)
	f.add(20, 25) // finished after the one at 30: raises its floor too
	f.add(40, 0)  // saw no event: no sample
	for _, c := range []struct {
		h, floor int64
		ok       bool
	}{
		{9, 0, false},
		{10, 5, true},
		{19, 5, true},
		{20, 25, true},
		{35, 25, true},
		{1000, 25, true},
	} {
		if floor, ok := f.below(c.h); floor != c.floor || ok != c.ok {
			t.Errorf("below(%d) = %d, %v; want %d, %v", c.h, floor, ok, c.floor, c.ok)
		}
	}

	// Many samples in a shuffled order: for every horizon, the floor is
	// at most the best one any sample that old gave, and the list stays
	// bounded and ordered.
	var g idFloor
	type s struct{ next, floor int64 }
	var all []s
	for i := range 5000 {
		all = append(all, s{int64(10 + 3*i), int64(1 + 2*i + rand.IntN(5))})
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, x := range all {
		g.add(x.next, x.floor)
	}
	if len(g.samples) > maxSamples {
		t.Errorf("%d samples kept, bound %d", len(g.samples), maxSamples)
	}
	for i := 1; i < len(g.samples); i++ {
		if a, b := g.samples[i-1], g.samples[i]; a.next >= b.next || a.floor > b.floor {
			t.Fatalf("samples out of order at %d: %+v, %+v", i, a, b)
		}
	}
	for h := int64(0); h < 16000; h += 7 {
		var best int64
		var any bool
		for _, x := range all {
			if x.next <= h {
				best, any = max(best, x.floor), true
			}
		}
		floor, ok := g.below(h)
		if ok && (!any || floor > best) {
			t.Fatalf("below(%d) = %d; the samples that old allow at most %d (any: %v)", h, floor, best, any)
		}
	}
	// The newest samples are kept densely: a recent horizon gets the
	// floor exactly.
	if floor, ok := g.below(10 + 3*4999); !ok || floor < 1+2*4999 {
		t.Errorf("newest horizon: floor %d, %v", floor, ok)
	}
}
