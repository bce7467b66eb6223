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

	// The store's marks (Mark) this process knows of, the subjects each
	// still waits for, and the marks naming each subject.
	marks   map[int64]*mark
	named   map[portrait.Pseudonym][]int64
	orphans []int64 // marks left with no subject by derivations that ran at once: cleared by the next write
}

// mark is one stored batch's mark: the subjects it names that no
// derivation has covered since it committed.
type mark struct {
	left      map[portrait.Pseudonym]bool
	committed bool      // a read has seen it: a derivation reading after that sees its events
	staged    time.Time // when Mark made it, inside its batch's transaction
}

// staleMark is how long a mark made by Mark may stay unseen before the
// queue forgets it: its batch's transaction rolled back. Were it only
// slow, the mark stays in the store and the next start derives its
// subjects again.
const staleMark = time.Minute

// NewQueue starts a worker that runs until ctx ends. When more than max
// subjects wait, Add derives in the caller's goroutine instead.
//
// delay is how long a subject waits in the queue before it is derived: a
// page is taken once its oldest subject has waited delay. A subject
// ingested again while it waits is derived once, so under steady ingest a
// delay turns many derivations of a subject into one, at the price of
// labels trailing their events by up to delay (plus a page's time). Zero
// derives as soon as the worker is free.
func (e *Engine) NewQueue(ctx context.Context, max int, delay time.Duration) *Queue {
	q := &Queue{e: e, max: max, delay: delay, pending: map[portrait.Pseudonym]bool{}, wake: make(chan struct{}, 1),
		marks: map[int64]*mark{}, named: map[portrait.Pseudonym][]int64{}}
	q.idle = sync.NewCond(&q.mu)
	go q.run(ctx)
	return q
}

// Mark is an ingest.Options.Pending function: it records, in the
// transaction that stores their events, that pseudonyms' labels wait for
// derivation (one row for the batch), and remembers the mark until a
// derivation of each of its subjects has read after it committed.
func (q *Queue) Mark(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error {
	id, err := tx.MarkPending(ctx, pseudonyms)
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.stage(id, pseudonyms, false)
	q.mu.Unlock()
	return nil
}

// stage remembers mark id naming pseudonyms. q.mu is held.
func (q *Queue) stage(id int64, pseudonyms []portrait.Pseudonym, committed bool) {
	if m := q.marks[id]; m != nil {
		m.committed = m.committed || committed
		return
	}
	m := &mark{left: make(map[portrait.Pseudonym]bool, len(pseudonyms)), committed: committed, staged: time.Now()}
	for _, p := range pseudonyms {
		if !m.left[p] {
			m.left[p] = true
			q.named[p] = append(q.named[p], id)
		}
	}
	q.marks[id] = m
}

// Recover queues, in the background, the subjects of every mark a
// process that stopped left (Mark) and did not derive. Start it once the
// node knows it derives its own subjects (not with serve --cluster, whose
// work stream carries them).
func (q *Queue) Recover(ctx context.Context) {
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
		var after int64
		for ctx.Err() == nil {
			marks, err := q.e.store.Pending(ctx, after, 100)
			if err != nil {
				q.e.opts.Logger.Error("derivation queue: read the subjects left waiting; they are derived at the next start", "err", err)
				return
			}
			if len(marks) == 0 {
				return
			}
			for _, m := range marks {
				q.mu.Lock()
				q.stage(m.ID, m.Pseudonyms, true)
				q.mu.Unlock()
				q.Add(ctx, m.Pseudonyms)
				after = m.ID
			}
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
				case <-q.wake:
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

// wait returns how long the next page should wait: until its oldest
// subject has waited the delay. A backlog older than the delay is derived
// page after page without waiting. q.mu is held.
func (q *Queue) wait() time.Duration {
	if q.delay <= 0 {
		return 0
	}
	return time.Until(q.since[0].Add(q.delay))
}

// derive derives pseudonyms a page at a time. Each page first learns
// which marks naming its subjects have committed (a read now sees them),
// before its derivation reads the subjects' events; the page covers those
// marks for its subjects, and its write transaction deletes every mark it
// leaves with no subject. A mark not yet committed (its batch's
// transaction is still open) is not covered: its batch queues the subject
// again once it commits.
func (q *Queue) derive(ctx context.Context, pseudonyms []portrait.Pseudonym) {
	for page := range slices.Chunk(pseudonyms, q.e.opts.PageSize) {
		clear, done := q.cover(ctx, page)
		_, err := q.e.Subjects(withMarks(ctx, clear), page)
		done(err == nil)
		if err != nil && ctx.Err() == nil {
			q.e.opts.Logger.Error("incremental derivation", "subjects", len(page), "err", err)
		}
	}
}

// cover returns the marks a page's write deletes, and a function to call
// with whether that write committed.
func (q *Queue) cover(ctx context.Context, page []portrait.Pseudonym) ([]int64, func(bool)) {
	q.mu.Lock()
	var ask []int64
	for _, p := range page {
		for _, id := range q.named[p] {
			if m := q.marks[id]; m != nil && !m.committed && !slices.Contains(ask, id) {
				ask = append(ask, id)
			}
		}
	}
	q.mu.Unlock()
	if len(ask) > 0 {
		seen, err := q.e.store.PendingCommitted(ctx, ask)
		if err != nil {
			q.e.opts.Logger.Error("derivation queue: read marks; they stay for the next derivation", "err", err)
		}
		q.mu.Lock()
		for _, id := range seen {
			if m := q.marks[id]; m != nil {
				m.committed = true
			}
		}
		for _, id := range ask {
			if m := q.marks[id]; m != nil && !m.committed && time.Since(m.staged) > staleMark {
				q.forget(id)
			}
		}
		q.mu.Unlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	covered := map[int64][]portrait.Pseudonym{}
	for _, p := range page {
		for _, id := range q.named[p] {
			if m := q.marks[id]; m != nil && m.committed {
				covered[id] = append(covered[id], p)
			}
		}
	}
	var clear []int64
	for id, ps := range covered {
		ps = slices.Compact(slices.Sorted(slices.Values(ps))) // a page may name a subject twice
		covered[id] = ps
		if len(ps) == len(q.marks[id].left) {
			clear = append(clear, id)
		}
	}
	orphans := q.orphans
	q.orphans = nil
	clear = append(clear, orphans...)
	return clear, func(ok bool) {
		q.mu.Lock()
		defer q.mu.Unlock()
		if !ok {
			q.orphans = append(q.orphans, orphans...)
			return
		}
		for id, ps := range covered {
			m := q.marks[id]
			if m == nil {
				continue
			}
			for _, p := range ps {
				delete(m.left, p)
				q.unname(p, id)
			}
			if len(m.left) == 0 {
				delete(q.marks, id)
				if !slices.Contains(clear, id) {
					q.orphans = append(q.orphans, id) // covered in parts by derivations that ran at once
				}
			}
		}
	}
}

// forget drops mark id from memory. q.mu is held.
func (q *Queue) forget(id int64) {
	for p := range q.marks[id].left {
		q.unname(p, id)
	}
	delete(q.marks, id)
}

// unname removes mark id from the marks naming p. q.mu is held.
func (q *Queue) unname(p portrait.Pseudonym, id int64) {
	ids := slices.DeleteFunc(q.named[p], func(x int64) bool { return x == id })
	if len(ids) == 0 {
		delete(q.named, p)
	} else {
		q.named[p] = ids
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
// derivation leaves with no subject (Queue.cover).
func clearMarks(ctx context.Context, tx portrait.Tx) error {
	ids := marksFrom(ctx)
	if len(ids) == 0 {
		return nil
	}
	return tx.ClearPending(ctx, ids)
}
