package derive_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
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
// s, a queue of at most max subjects waiting delay, and ingest handing the queue what
// it stores and marking it in the store.
func (e *env) queued(t *testing.T, ctx context.Context, s portrait.Store, max int, delay time.Duration) *derive.Queue {
	t.Helper()
	eng, err := derive.New(derive.Deps{Store: s, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.eng = eng
	q := eng.NewQueue(ctx, max, delay)
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log},
		ingest.Options{Now: e.clock, OnStored: q.Add, Pending: q.Mark})
	return q
}

// waiting lists the subjects the store's marks name as waiting for
// derivation.
func (e *env) waiting(t *testing.T) []portrait.Pseudonym {
	t.Helper()
	marks, err := e.store.Pending(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []portrait.Pseudonym
	for _, m := range marks {
		for _, p := range m.Pseudonyms {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// A subject named by many batches while it waits in the queue is derived
// once, in one page with the others waiting.
func TestQueueCoalesces(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		gate := newGate(e.store)
		q := e.queued(t, ctx, gate, 100, 0)
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
		q := e.queued(t, ctx, gate, 2, 0)
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
		e.queued(t, stopped, e.store, 100, 0)
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
		q := e.queued(t, ctx, e.store, 100, 0) // the next process
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
		q := e.queued(t, ctx, race, 100, 0)
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
				q := e.queued(t, ctx, gate, 100, 0)
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

// BenchmarkQueue measures incremental derivation as serve runs it: the
// queue derives a page of n subjects (each with 50 events and derived
// labels, one new purchase each, stored and marked by ingest) in one
// read of each kind, one write transaction and one audit record, and
// deletes their marks. It reports, per derivation, the wall time from
// handing the page to the queue to its labels committed (amortised over
// the page), the CPU of this process, and the compute and store parts
// (derive.Summary); and the median time of a whole page, which is how
// long a subject's labels trail its events.
func BenchmarkQueue(b *testing.B) {
	for _, st := range []struct {
		name string
		open func(testing.TB) portrait.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		for _, n := range []int{64, 500} {
			b.Run(fmt.Sprintf("%s/page=%d", st.name, n), func(b *testing.B) {
				if st.name == "postgres" && os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
					b.Skip("PORTRAIT_TEST_POSTGRES is not set")
				}
				benchQueue(b, newEnvOn(b, st.open), n)
			})
		}
	}
}

func benchQueue(b *testing.B, e *env, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := e.eng.NewQueue(ctx, 1<<20, 0)
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock, Pending: q.Mark})
	pss := make([]portrait.Pseudonym, n)
	var evs []portrait.Event
	for i := range n {
		id := fmt.Sprintf("sub-%d", i)
		pss[i] = e.keys.Pseudonym(id)
		e.consent(b, id, "personalization", policy.Granted)
		for j := range 50 {
			evs = append(evs, view(id, "sports", time.Duration(j+1)*time.Hour, e.now))
		}
	}
	e.ingest(b, evs...)
	q.Add(ctx, pss)
	q.Wait()
	var wall, cpu, compute, store time.Duration
	var pages []time.Duration
	round := 0
	for b.Loop() {
		b.StopTimer()
		round++
		e.purchaseRound(b, n, round)
		before := e.eng.Status().Incremental
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		q.Add(ctx, pss)
		q.Wait()
		d := time.Since(start)
		cpu += cpuTime() - cpu0
		wall += d
		pages = append(pages, d)
		after := e.eng.Status().Incremental
		if after.Subjects-before.Subjects != n || after.Written == before.Written {
			b.Fatalf("page derived %d subjects, wrote %d values; want %d subjects", after.Subjects-before.Subjects, after.Written-before.Written, n)
		}
		compute += after.Compute - before.Compute
		store += after.Store - before.Store
	}
	if w, err := e.store.Pending(ctx, 0, 1); err != nil || len(w) != 0 {
		b.Fatalf("marks left after the queue drained: %v %v", w, err)
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N*n) }
	slices.Sort(pages)
	b.ReportMetric(per(wall), "µs/derivation")
	b.ReportMetric(per(cpu), "cpu-µs/derivation")
	b.ReportMetric(per(compute), "compute-µs/derivation")
	b.ReportMetric(per(store), "store-µs/derivation")
	b.ReportMetric(float64(pages[len(pages)/2].Nanoseconds())/1e6, "page-median-ms")
}

// With a delay, a subject waits in the queue for the delay, and a subject
// ingested again meanwhile is derived once.
func TestQueueDelay(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const delay = 300 * time.Millisecond
	q := e.queued(t, ctx, e.store, 100, delay)
	for _, s := range []string{"ann", "fay"} {
		e.consent(t, s, "personalization", policy.Granted)
	}
	start := time.Now()
	for i := range 3 {
		e.ingest(t, view("ann", "sports", time.Duration(i+1)*time.Minute, e.now), view("fay", "sports", time.Duration(i+1)*time.Minute, e.now))
	}
	if c := e.eng.Status().Calls; c != 0 && time.Since(start) < delay {
		t.Errorf("%d derivations before the delay passed", c)
	}
	q.Wait()
	if d := time.Since(start); d < delay {
		t.Errorf("derived after %v, before the delay", d)
	}
	if st := e.eng.Status(); st.Calls != 1 || st.Incremental.Subjects != 2 {
		t.Errorf("%d derivations of %d subjects, want ann and fay once, in one page", st.Calls, st.Incremental.Subjects)
	}
	if v := e.labels(t, "ann", "personalization")["sports_fan"]; v.EventCount != 3 {
		t.Errorf("ann's sports_fan read %d events, want 3", v.EventCount)
	}
}

// hidingStore answers PendingCommitted with nothing while hide is set: a
// batch's transaction still open when the page's derivation starts.
type hidingStore struct {
	portrait.Store
	hide bool
}

func (h *hidingStore) PendingCommitted(ctx context.Context, ids []int64) ([]int64, error) {
	if h.hide {
		return nil, nil
	}
	return h.Store.PendingCommitted(ctx, ids)
}

// A page covers a mark only once a read sees the mark committed, since
// only then does its events read see the batch's events: a mark not yet
// seen stays, and the next derivation of the subject clears it.
func TestQueueCoversOnlyCommittedMarks(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := &hidingStore{Store: e.store, hide: true}
		q := e.queued(t, ctx, h, 100, 0)
		e.consent(t, "ann", "personalization", policy.Granted)
		e.ingest(t, fiveSportsViews("ann", e.now)...)
		q.Wait()
		if w := e.waiting(t); len(w) != 1 {
			t.Fatalf("%d subjects marked waiting after a page that could not see the mark, want ann", len(w))
		}
		h.hide = false
		q.Add(ctx, []portrait.Pseudonym{e.keys.Pseudonym("ann")})
		q.Wait()
		if w := e.waiting(t); len(w) != 0 {
			t.Errorf("%d subjects still marked waiting after a page that saw the mark", len(w))
		}
	})
}

// SR-3: erasure takes the subject out of the derivation marks in its own
// transaction, so no pseudonym of an erased subject waits in the store
// for a queue to get round to it: a mark naming only the subject goes, a
// batch's mark naming others keeps them, and the next process derives
// those others and nothing of the erased subject.
func TestQueueErasureClearsMarks(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		stopped, stop := context.WithCancel(context.Background())
		stop() // the worker of the first process never runs
		e.queued(t, stopped, e.store, 100, 0)
		for _, s := range []string{"ann", "fay"} {
			e.consent(t, s, "personalization", policy.Granted)
		}
		e.ingest(t, fiveSportsViews("ann", e.now)...)
		e.ingest(t, append(fiveSportsViews("ann", e.now), fiveSportsViews("fay", e.now)...)...)
		ann, fay := e.keys.Pseudonym("ann"), e.keys.Pseudonym("fay")
		if w := e.waiting(t); len(w) != 2 {
			t.Fatalf("%d subjects marked waiting, want 2", len(w))
		}
		if err := e.store.Update(context.Background(), func(ctx context.Context, tx portrait.Tx) error {
			return tx.Erase(ctx, storetest.Grant(t, ann, policy.Erase))
		}); err != nil {
			t.Fatal(err)
		}
		if w := e.waiting(t); !slices.Equal(w, []portrait.Pseudonym{fay}) {
			t.Fatalf("marked waiting after ann's erasure: %v, want only fay", w)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := e.queued(t, ctx, e.store, 100, 0) // the next process
		q.Recover(ctx)
		q.Wait()
		if !e.labels(t, "fay", "personalization")["sports_fan"].Bool {
			t.Error("fay: not derived after ann's erasure and a restart")
		}
		if got := e.stored(t, "ann"); len(got) != 0 {
			t.Errorf("ann's labels %v stored after her erasure", got)
		}
		if subs, err := e.store.Subjects(ctx, []portrait.Pseudonym{ann}); err != nil || len(subs) != 0 {
			t.Errorf("ann's subject row after her erasure: %v, %v", subs, err)
		}
		if w := e.waiting(t); len(w) != 0 {
			t.Errorf("%v still marked waiting", w)
		}
	})
}
