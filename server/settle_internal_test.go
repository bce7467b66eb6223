package server

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// A store that stops answering costs at most maxOverdue running calls:
// past that, settle answers 503 at once and starts nothing, and once the
// store answers again the calls end, the count falls back to zero and
// calls run again. (TestStoreTimeout wedges real stores; this checks the
// bound, which would take a thousand wedged connections there.)
func TestSettleBoundsOverdueCalls(t *testing.T) {
	s := &Server{cfg: Config{StoreTimeout: time.Millisecond}}
	r := httptest.NewRequest("POST", "/v1/decisions", nil)
	stuck := make(chan struct{})
	var wg sync.WaitGroup
	for range maxOverdue {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := settle(s, r, func(context.Context) (int, error) { <-stuck; return 0, nil })
			if portrait.ErrorCode(err) != portrait.EUNAVAILABLE {
				t.Errorf("a call past the timeout: %v, want unavailable", err)
			}
		}()
	}
	wg.Wait()
	if n := s.overdue.Load(); n != maxOverdue {
		t.Fatalf("overdue = %d, want %d", n, maxOverdue)
	}
	started := false
	_, err := settle(s, r, func(context.Context) (int, error) { started = true; return 1, nil })
	if portrait.ErrorCode(err) != portrait.EUNAVAILABLE || started {
		t.Fatalf("past the bound: err %v, started %v; want unavailable and not started", err, started)
	}
	close(stuck)
	deadline := time.Now().Add(10 * time.Second)
	for s.overdue.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("overdue = %d after the store answered, want 0", s.overdue.Load())
		}
		time.Sleep(time.Millisecond)
	}
	s.cfg.StoreTimeout = time.Minute
	if v, err := settle(s, r, func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("after recovery: %d, %v; want 7, nil", v, err)
	}
}
