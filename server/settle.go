package server

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// DefaultStoreTimeout is how long a request waits for a settled call
// (Config.StoreTimeout): far above a decision's milliseconds, below what
// a client or proxy would wait before giving up on its own.
const DefaultStoreTimeout = 5 * time.Second

// storeWait is the refusal of a request whose settled call outlasted
// Config.StoreTimeout; problem answers it with Retry-After.
type storeWait struct{ after time.Duration }

func (e *storeWait) Error() string {
	return fmt.Sprintf("the store did not answer within %s", e.after)
}

// settle runs fn with r's context without its cancellation (settled)
// and waits for it at most Config.StoreTimeout. A call past that is
// answered 503 with Retry-After, and runs on to its own end — commit or
// roll back — on its own goroutine: nothing cancels it halfway, neither
// the client hanging up nor this bound, so the all-or-nothing write
// (invariant 3) is never cut into, and the statements carry no
// cancellation watchers (a context with a deadline would add two per
// statement, what settled removed). The cost is one goroutine and a
// timer per call. A wedged store thus keeps its callers' goroutines
// until it answers, but not their requests: the client is told at once,
// and may find that a decision answered 503 was recorded after all
// (GET /v1/me/decisions, the audit log).
//
// The calls left running so are bounded: while maxOverdue of them have
// not ended, a new call is not started and its request is answered 503
// at once, so a store that stops answering costs at most maxOverdue
// goroutines (and whatever connections they hold), not one per request.
func settle[T any](s *Server, r *http.Request, fn func(ctx context.Context) (T, error)) (T, error) {
	if s.overdue.Load() >= maxOverdue {
		var zero T
		return zero, &portrait.Error{Code: portrait.EUNAVAILABLE, Err: &storeWait{s.cfg.StoreTimeout},
			Message: fmt.Sprintf("the store has not answered %d calls past %s; retry later", maxOverdue, s.cfg.StoreTimeout)}
	}
	ctx := settled(r)
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1) // the call never blocks on a request gone
	// state is running until the call ends (ended) or its request is
	// answered 503 first (abandoned); whichever side loses the swap knows
	// the other happened, so overdue counts each abandoned call once and
	// exactly until it ends.
	var state atomic.Int32
	const (
		running = iota
		ended
		abandoned
	)
	go func() {
		var res result
		defer func() {
			if v := recover(); v != nil {
				s.cfg.Logger.Error("panic", s.logAttrs(r, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))...)
				res = result{err: portrait.Errorf(portrait.EINTERNAL, "internal error")}
			}
			done <- res
			if !state.CompareAndSwap(running, ended) {
				s.overdue.Add(-1)
			}
		}()
		res.v, res.err = fn(ctx)
	}()
	t := time.NewTimer(s.cfg.StoreTimeout)
	defer t.Stop()
	select {
	case res := <-done:
		return res.v, res.err
	case <-t.C:
		if !state.CompareAndSwap(running, abandoned) {
			res := <-done // ended just now: its answer is on its way
			return res.v, res.err
		}
		s.overdue.Add(1)
		var zero T
		return zero, &portrait.Error{Code: portrait.EUNAVAILABLE, Err: &storeWait{s.cfg.StoreTimeout},
			Message: fmt.Sprintf("the store did not answer within %s; the request goes on and may still be recorded: retry later", s.cfg.StoreTimeout)}
	}
}

// maxOverdue bounds the settled calls left running after their requests
// were answered 503 (settle).
const maxOverdue = 1024
