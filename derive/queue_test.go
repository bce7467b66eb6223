package derive_test

import (
	"context"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

// gateStore holds the first write transaction until open is closed, and
// runs before, once, ahead of each write transaction while set.
type gateStore struct {
	portrait.Store
	entered chan struct{} // closed when the first write transaction waits
	open    chan struct{}
	before  func()
	n       int
}

func newGate(s portrait.Store) *gateStore {
	return &gateStore{Store: s, entered: make(chan struct{}), open: make(chan struct{})}
}

func (g *gateStore) Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error {
	g.n++
	if g.n == 1 {
		close(g.entered)
		<-g.open
	}
	if f := g.before; f != nil {
		g.before = nil
		f()
	}
	return g.Store.Update(ctx, fn)
}

// queued wires e for the background queue over store s: an engine over
// s, a queue of at most max subjects, and ingest handing the queue what
// it stores and marking it in the store.
func (e *env) queued(t *testing.T, ctx context.Context, s portrait.Store, max int) *derive.Queue {
	t.Helper()
	eng, err := derive.New(derive.Deps{Store: s, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.eng = eng
	q := eng.NewQueue(ctx, max)
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log},
		ingest.Options{Now: e.clock, OnStored: q.Add, Pending: q.Mark})
	return q
}

// waiting lists the subjects the store records as waiting for derivation.
func (e *env) waiting(t *testing.T) []portrait.Pseudonym {
	t.Helper()
	ps, err := e.store.Pending(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// A subject named by many batches while it waits in the queue is derived
// once, in one page with the others waiting.
func TestQueueCoalesces(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		gate := newGate(e.store)
		q := e.queued(t, ctx, gate, 100)
		for _, s := range []string{"ann", "fay", "gus"} {
			e.consent(t, s, "personalization", policy.Granted)
		}
		e.ingest(t, fiveSportsViews("ann", e.now)...)
		<-gate.entered // the worker holds ann's page
		for i := range 4 {
			e.ingest(t, view("fay", "sports", time.Duration(i+1)*time.Minute, e.now), view("gus", "sports", time.Duration(i+1)*time.Minute, e.now))
		}
		if n := q.Len(); n != 2 {
			t.Errorf("%d subjects waiting after four batches of fay and gus, want 2", n)
		}
		close(gate.open)
		q.Wait()
		st := e.eng.Status()
		if st.Calls != 2 || st.Incremental.Subjects != 3 {
			t.Errorf("%d derivations of %d subjects, want 2 of 3 (ann, then fay and gus once)", st.Calls, st.Incremental.Subjects)
		}
		for _, s := range []string{"ann", "fay"} {
			if v := e.labels(t, s, "personalization")["sports_fan"]; s == "fay" && v.EventCount != 4 {
				t.Errorf("fay's sports_fan read %d events, want 4", v.EventCount)
			}
		}
		if w := e.waiting(t); len(w) != 0 {
			t.Errorf("%d subjects still marked waiting after the queue drained", len(w))
		}
	})
}

// A full queue derives in the caller's goroutine (back-pressure on
// ingest): the batch returns with its labels stored, and nothing is
// dropped.
func TestQueueFullDerivesInLine(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		gate := newGate(e.store)
		q := e.queued(t, ctx, gate, 2)
		for _, s := range []string{"ann", "fay", "gus", "hal"} {
			e.consent(t, s, "personalization", policy.Granted)
		}
		e.ingest(t, fiveSportsViews("ann", e.now)...)
		<-gate.entered // the worker holds ann's page; the queue is empty
		e.ingest(t, append(fiveSportsViews("fay", e.now), fiveSportsViews("gus", e.now)...)...)
		if n := q.Len(); n != 2 {
			t.Fatalf("%d waiting, want fay and gus", n)
		}
		e.ingest(t, fiveSportsViews("hal", e.now)...) // a third does not fit
		if !e.labels(t, "hal", "personalization")["sports_fan"].Bool {
			t.Error("hal: the batch returned before its subject was derived, with the queue full")
		}
		close(gate.open)
		q.Wait()
		for _, s := range []string{"ann", "fay", "gus"} {
			if !e.labels(t, s, "personalization")["sports_fan"].Bool {
				t.Errorf("%s: not derived", s)
			}
		}
	})
}

// A process that stops with subjects queued loses no derivation: ingest
// marked them in the batch's transaction, and the next process's queue
// derives them on start (Recover) and clears the marks.
func TestQueueRecoversAfterStop(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		stopped, stop := context.WithCancel(context.Background())
		stop() // the worker of the first process never runs
		e.queued(t, stopped, e.store, 100)
		for _, s := range []string{"ann", "fay"} {
			e.consent(t, s, "personalization", policy.Granted)
			e.ingest(t, fiveSportsViews(s, e.now)...)
		}
		if got := e.stored(t, "ann"); len(got) != 0 {
			t.Fatalf("labels %v derived by a stopped queue", got)
		}
		if w := e.waiting(t); len(w) != 2 {
			t.Fatalf("%d subjects marked waiting, want 2", len(w))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := e.queued(t, ctx, e.store, 100) // the next process
		q.Recover(ctx)
		q.Wait()
		for _, s := range []string{"ann", "fay"} {
			if !e.labels(t, s, "personalization")["sports_fan"].Bool {
				t.Errorf("%s: not derived after the restart", s)
			}
		}
		if w := e.waiting(t); len(w) != 0 {
			t.Errorf("%d subjects still marked waiting", len(w))
		}
	})
}

// A batch stored while its subject's page is being derived marks the
// subject again, and the page's write deletes only the marks it read
// before reading the events: the new mark stays for the next derivation,
// even if the process stops before the queue hears of the batch.
func TestQueueKeepsMarkAddedMeanwhile(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		race := newGate(e.store)
		close(race.open)
		q := e.queued(t, ctx, race, 100)
		e.consent(t, "ann", "personalization", policy.Granted)
		marking := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log},
			ingest.Options{Now: e.clock, Pending: q.Mark}) // stores and marks; the queue never hears of it
		race.before = func() {
			if _, _, err := marking.Ingest(ctx, operator, []ingest.Item{{Event: view("ann", "books", time.Minute, e.now)}}); err != nil {
				t.Error(err)
			}
		}
		e.ingest(t, fiveSportsViews("ann", e.now)...)
		q.Wait()
		if w := e.waiting(t); len(w) != 1 {
			t.Errorf("%d subjects marked waiting after a batch stored during the derivation, want ann", len(w))
		}
	})
}

// CN-4, invariant 5: a withdrawal between queueing a subject and the
// write of its page binds: no label is stored under the withdrawn
// consent, whether the withdrawal lands while the subject waits in the
// queue or after its page was computed and before it is written.
func TestQueueWithdrawalBeforePageWrite(t *testing.T) {
	for _, when := range []string{"while queued", "between compute and write"} {
		t.Run(when, func(t *testing.T) {
			eachStore(t, func(t *testing.T, e *env) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				gate := newGate(e.store)
				q := e.queued(t, ctx, gate, 100)
				for _, s := range []string{"ann", "erin"} {
					e.consent(t, s, "personalization", policy.Granted)
				}
				e.ingest(t, fiveSportsViews("ann", e.now)...)
				<-gate.entered // the worker holds ann's page
				e.ingest(t, fiveSportsViews("erin", e.now)...)
				withdraw := func() { e.consent(t, "erin", "personalization", policy.Withdrawn) }
				if when == "while queued" {
					withdraw()
				} else {
					gate.before = func() { gate.before = withdraw } // the second write: erin's page
				}
				close(gate.open)
				q.Wait()
				if got := e.stored(t, "erin"); len(got) != 0 {
					t.Errorf("erin: labels %v stored under a withdrawn consent", got)
				}
				if !e.labels(t, "ann", "personalization")["sports_fan"].Bool {
					t.Error("ann: not derived")
				}
			})
		})
	}
}
