package derive

import (
	"context"
	"slices"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// Queue derives in the background what Hook derives in line: ingest hands
// it the pseudonyms of a committed batch and returns at once, and one
// worker derives them in pages (one read of each kind, one write
// transaction and one audit record a page), each subject once however
// many batches named it meanwhile. Labels therefore trail the events by
// the time one page takes; the generation check in write keeps a racing
// withdrawal from being overwritten all the same (invariant 5).
//
// It is bounded: when more than max subjects wait, Add derives in the
// caller's goroutine instead (back-pressure on ingest), so the queue
// never grows without bound nor drops work. And it loses nothing when the
// process stops: ingest marks each batch's subjects in the store in the
// batch's own transaction (Mark, through ingest.Options.Pending), a
// page's write deletes the marks its derivation covered, and Recover
// queues whatever marks a stopped process left.
type Queue struct {
	e       *Engine
	max     int
	mu      sync.Mutex
	pending map[portrait.Pseudonym]bool
	order   []portrait.Pseudonym
	since   []time.Time // when each of order was queued
	delay   time.Duration
	wake    chan struct{}
	idle    *sync.Cond
	busy    bool
	loading bool // Recover is queueing what a stopped process left
}

// NewQueue starts a worker that runs until ctx ends. When more than max
// subjects wait, Add derives in the caller's goroutine instead.
//
// delay is how long a subject may wait for its derivation when its page
// is not full: a page is derived once it holds Options.PageSize subjects
// or its oldest subject has waited delay. A subject ingested again while
// it waits is derived once, so under steady ingest a delay turns many
// derivations of a subject into one, at the price of labels trailing
// their events by up to delay (plus a page's time). Zero derives as soon
// as the worker is free.
func (e *Engine) NewQueue(ctx context.Context, max int, delay time.Duration) *Queue {
	q := &Queue{e: e, max: max, delay: delay, pending: map[portrait.Pseudonym]bool{}, wake: make(chan struct{}, 1)}
	q.idle = sync.NewCond(&q.mu)
	go q.run(ctx)
	return q
}

// Mark is an ingest.Options.Pending function: it records, in the
// transaction that stores their events, that pseudonyms' labels wait for
// derivation.
func (q *Queue) Mark(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error {
	return tx.MarkPending(ctx, pseudonyms)
}

// Recover queues, in the background, every subject a process that
// stopped left marked (Mark) and did not derive. Start it once the node
// knows it derives its own subjects (not with serve --cluster, whose work
// stream carries them).
func (q *Queue) Recover(ctx context.Context) {
	ps := q.e.store
	q.mu.Lock()
	q.loading = true
	q.mu.Unlock()
	go func() {
		defer func() {
			q.mu.Lock()
			q.loading = false
			q.idle.Broadcast()
			q.mu.Unlock()
		}()
		var after portrait.Pseudonym
		for ctx.Err() == nil {
			page, err := ps.Pending(ctx, after, q.e.opts.PageSize)
			if err != nil {
				q.e.opts.Logger.Error("derivation queue: read the subjects left waiting; they are derived at the next start", "err", err)
				return
			}
			if len(page) == 0 {
				return
			}
			q.Add(ctx, page)
			after = page[len(page)-1]
		}
	}()
}

// Add is an ingest.Options.OnStored function.
func (q *Queue) Add(ctx context.Context, pseudonyms []portrait.Pseudonym) {
	q.mu.Lock()
	if len(q.pending)+len(pseudonyms) > q.max {
		q.mu.Unlock()
		q.derive(ctx, pseudonyms)
		return
	}
	now := time.Now()
	for _, p := range pseudonyms {
		if !q.pending[p] {
			q.pending[p] = true
			q.order = append(q.order, p)
			q.since = append(q.since, now)
		}
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Wait blocks until every subject added so far has been derived, and what
// Recover found with them.
func (q *Queue) Wait() {
	q.mu.Lock()
	for len(q.order) > 0 || q.busy || q.loading {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// Len returns how many subjects wait.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
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
			if wait := q.wait(); wait > 0 {
				q.busy = false
				q.mu.Unlock()
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				case <-q.wake: // more subjects: the page may be full
					t.Stop()
				}
				continue
			}
			n := min(len(q.order), q.e.opts.PageSize)
			page := q.order[:n:n]
			q.order, q.since = q.order[n:], q.since[n:]
			for _, p := range page {
				delete(q.pending, p)
			}
			q.busy = true
			q.mu.Unlock()
			q.derive(ctx, page)
		}
	}
}

// wait returns how long the next page should wait for more subjects: zero
// when it is full or its oldest subject has waited the delay. q.mu is
// held.
func (q *Queue) wait() time.Duration {
	if q.delay <= 0 || len(q.order) >= q.e.opts.PageSize {
		return 0
	}
	return time.Until(q.since[0].Add(q.delay))
}

// derive derives pseudonyms a page at a time. Each page first reads the
// marks of its subjects, before its derivation reads their events, and
// its write transaction deletes those marks and no others: a batch
// stored after the read adds a mark of its own, which stays until the
// subject is derived again (Add has queued it once more).
func (q *Queue) derive(ctx context.Context, pseudonyms []portrait.Pseudonym) {
	for page := range slices.Chunk(pseudonyms, q.e.opts.PageSize) {
		ids, err := q.e.store.PendingMarks(ctx, page)
		if err != nil {
			q.e.opts.Logger.Error("derivation queue: read marks; the page's marks stay for the next start", "subjects", len(page), "err", err)
		}
		if _, err := q.e.Subjects(withMarks(ctx, ids), page); err != nil && ctx.Err() == nil {
			q.e.opts.Logger.Error("incremental derivation", "subjects", len(page), "err", err)
		}
	}
}

type marksKey struct{}

// withMarks returns ctx carrying the marks a page's write deletes.
func withMarks(ctx context.Context, ids []int64) context.Context {
	if len(ids) == 0 {
		return ctx
	}
	return context.WithValue(ctx, marksKey{}, ids)
}

func marksFrom(ctx context.Context) []int64 {
	ids, _ := ctx.Value(marksKey{}).([]int64)
	return ids
}

// clearMarks deletes, in a page's write transaction, the marks its
// derivation covered (Queue.derive).
func clearMarks(ctx context.Context, tx portrait.Tx) error {
	ids := marksFrom(ctx)
	if len(ids) == 0 {
		return nil
	}
	return tx.ClearPending(ctx, ids)
}
