package derive

import (
	"context"
	portrait "github.com/portrait-dev/portrait"
	"sync"
)

// Queue derives in the background what Hook derives in line: ingest hands
// it the pseudonyms of a committed batch and returns at once, and one
// worker derives them in pages, each subject once however many batches
// named it meanwhile. Labels therefore trail the events by the time one
// page takes; the generation check in write keeps a racing withdrawal
// from being overwritten all the same (invariant 5).
type Queue struct {
	e       *Engine
	max     int
	mu      sync.Mutex
	pending map[portrait.Pseudonym]bool
	order   []portrait.Pseudonym
	wake    chan struct{}
	idle    *sync.Cond
	busy    bool
}

// NewQueue starts a worker that runs until ctx ends. When more than max
// subjects wait, Add derives in the caller's goroutine instead, so the
// queue never grows without bound nor drops work.
func (e *Engine) NewQueue(ctx context.Context, max int) *Queue {
	q := &Queue{e: e, max: max, pending: map[portrait.Pseudonym]bool{}, wake: make(chan struct{}, 1)}
	q.idle = sync.NewCond(&q.mu)
	go q.run(ctx)
	return q
}

// Add is an ingest.Options.OnStored function.
func (q *Queue) Add(ctx context.Context, pseudonyms []portrait.Pseudonym) {
	q.mu.Lock()
	if len(q.pending)+len(pseudonyms) > q.max {
		q.mu.Unlock()
		q.derive(ctx, pseudonyms)
		return
	}
	for _, p := range pseudonyms {
		if !q.pending[p] {
			q.pending[p] = true
			q.order = append(q.order, p)
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Wait blocks until every subject added so far has been derived.
func (q *Queue) Wait() {
	q.mu.Lock()
	for len(q.order) > 0 || q.busy {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

func (q *Queue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			if len(q.order) == 0 {
				q.busy = false
				q.idle.Broadcast()
				q.mu.Unlock()
				break
			}
			n := min(len(q.order), q.e.opts.PageSize)
			page := q.order[:n:n]
			q.order = q.order[n:]
			for _, p := range page {
				delete(q.pending, p)
			}
			q.busy = true
			q.mu.Unlock()
			q.derive(ctx, page)
		}
	}
}

func (q *Queue) derive(ctx context.Context, pseudonyms []portrait.Pseudonym) {
	if _, err := q.e.Subjects(ctx, pseudonyms); err != nil && ctx.Err() == nil {
		q.e.opts.Logger.Error("incremental derivation", "subjects", len(pseudonyms), "err", err)
	}
}
