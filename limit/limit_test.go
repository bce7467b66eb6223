package limit

import (
	"testing"
	"time"
)

// TestLimiter: burst at once, then one per rate, per client; refilled
// buckets are dropped when the map is full.
func TestLimiter(t *testing.T) {
	l := New(time.Minute, 3)
	now := time.Unix(0, 0)
	for i := range 3 {
		if !l.Allow("a", now) {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	if l.Allow("a", now) {
		t.Error("a fourth request at once allowed")
	}
	if !l.Allow("b", now) {
		t.Error("another client refused")
	}
	if l.Allow("a", now.Add(30*time.Second)) {
		t.Error("allowed before a token refilled")
	}
	if !l.Allow("a", now.Add(61*time.Second)) {
		t.Error("refused after a token refilled")
	}
	for i := range maxBuckets {
		l.buckets[string(rune(i))+"x"] = &bucket{tokens: 3, at: now}
	}
	l.Allow("new", now.Add(time.Hour))
	if len(l.buckets) > maxBuckets {
		t.Errorf("%d buckets kept, at most %d", len(l.buckets), maxBuckets)
	}
}
