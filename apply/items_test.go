package apply_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
)

// TestItemSetKeptUpToDate: items put on this node rank at once; items put
// on another node rank here within the reload interval; a reload that
// finds the same items keeps the set, and with it the candidate lists.
func TestItemSetKeptUpToDate(t *testing.T) {
	e := newEnv(t)
	putItems(t, e, 3)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	here, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, apply.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ids, first, err := here.ItemSet(ctx)
	if err != nil || len(ids) != 3*len(categories) {
		t.Fatalf("%d items, %v", len(ids), err)
	}

	advance(time.Minute)
	_, again, err := here.ItemSet(ctx)
	if err != nil || again != first {
		t.Errorf("reloading the same items replaced the set (%v)", err)
	}

	// Another node (e.svc) imports an item: seen here after the interval.
	other := portrait.Item{ID: "zz-other", Categories: []string{"books"}, Price: 1}
	if _, err := e.svc.PutItems(ctx, operator, []portrait.Item{other}); err != nil {
		t.Fatal(err)
	}
	if ids, _, _ := here.ItemSet(ctx); slices.Contains(ids, other.ID) {
		t.Errorf("reloaded before the interval")
	}
	advance(time.Minute)
	ids, next, err := here.ItemSet(ctx)
	if err != nil || next == first || !slices.Contains(ids, other.ID) {
		t.Errorf("the other node's item is not ranked after the interval: %v", err)
	}

	// This node imports an item: ranked by the very next request.
	mine := portrait.Item{ID: "zz-mine", Categories: []string{"sports"}, Price: 1}
	if _, err := here.PutItems(ctx, operator, []portrait.Item{mine}); err != nil {
		t.Fatal(err)
	}
	if ids, _, _ := here.ItemSet(ctx); !slices.Contains(ids, mine.ID) {
		t.Errorf("this node's item is not ranked at once")
	}
	// A changed category is a change.
	moved := mine
	moved.Categories = []string{"books"}
	_, before, _ := here.ItemSet(ctx)
	if _, err := here.PutItems(ctx, operator, []portrait.Item{moved}); err != nil {
		t.Fatal(err)
	}
	if _, after, _ := here.ItemSet(ctx); after == before {
		t.Errorf("a changed category kept the old set")
	}
}
