package server

import (
	"context"
	"net/http/httptest"
	"testing"
)

// BenchmarkSettle is what settle adds to a call (a goroutine, a channel
// and a timer), against the call made directly: the rest of a request is
// the same either way.
func BenchmarkSettle(b *testing.B) {
	s := New(Config{})
	r := httptest.NewRequest("POST", "/v1/decisions", nil)
	fn := func(ctx context.Context) (int, error) { return 1, nil }
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			fn(settled(r))
		}
	})
	b.Run("settle", func(b *testing.B) {
		for b.Loop() {
			settle(s, r, fn)
		}
	})
}
