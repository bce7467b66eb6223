package apply_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/policy"
)

// stallingStore holds the first kind-index read made after it is armed
// until released, telling when it began.
type stallingStore struct {
	portrait.Store
	armed   chan struct{} // closed: the next read stalls
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stallingStore) LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error) {
	select {
	case <-s.armed:
		stall := false
		s.once.Do(func() { stall = true })
		if stall {
			close(s.entered)
			<-s.release
		}
	default:
	}
	return s.Store.LogEntriesOfKind(ctx, kinds, from, to)
}

// TestMarkedReadsWithoutLock: a decision whose read of the log's mark
// index is slow (a descheduled goroutine, a busy disk) does not hold up
// the other decisions' mark checks — the index's lock guards memory only,
// never a store read — and both answer from the marks as logged (CN-11,
// AD-2).
func TestMarkedReadsWithoutLock(t *testing.T) {
	base := newEnv(t)
	st := &stallingStore{Store: base.store, armed: make(chan struct{}), entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnvOn(t, t.TempDir(), st)
	e.grant("dave", "credit")
	e.grant("erin", "credit")
	dave, erin := e.keys.Pseudonym("dave"), e.keys.Pseudonym("erin")
	if _, err := e.svc.ShowNotice(ctx, operator, dave, "credit_limit"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RefuseAutomation(ctx, operator, erin, "credit_limit", true); err != nil {
		t.Fatal(err)
	}
	close(st.armed)
	slow := make(chan error, 1)
	go func() {
		shown, err := e.svc.Marked(ctx, "notice", dave, "credit_limit")
		if err == nil && !shown {
			err = fmt.Errorf("dave's notice not found")
		}
		slow <- err
	}()
	<-st.entered
	fast := make(chan error, 1)
	go func() {
		refused, err := e.svc.Marked(ctx, "automation", erin, "credit_limit")
		if err == nil && !refused {
			err = fmt.Errorf("erin's refusal not found")
		}
		fast <- err
	}()
	select {
	case err := <-fast:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(st.release)
		t.Fatal("a mark check waited for another's stalled store read")
	}
	close(st.release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// TestMarksConcurrent: callers that read the log's marks at the same time
// merge what they read in log order, so the newest mark of each subject
// wins whatever the order their reads finish in; this node's index and a
// fresh node's, which reads the whole log, agree (AD-2). Run with -race.
func TestMarksConcurrent(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		const subjects, rounds = 4, 12
		ps := make([]portrait.Pseudonym, subjects)
		for i := range ps {
			id := fmt.Sprintf("s%d", i)
			e.grant(id, "credit")
			ps[i] = e.keys.Pseudonym(id)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*subjects)
		for i, p := range ps {
			wg.Add(2)
			go func() { // the subject toggles its refusal, ending on i%2 == 0
				defer wg.Done()
				for r := range rounds + i%2 {
					if err := e.svc.RefuseAutomation(ctx, operator, p, "credit_limit", r%2 == 0); err != nil {
						errs <- err
						return
					}
				}
			}()
			go func() { // decisions check it meanwhile
				defer wg.Done()
				for range 3 * rounds {
					if _, err := e.svc.Marked(ctx, "automation", p, "credit_limit"); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		this := e.svc
		fresh := e.node(loadCatalog(t))
		for i, p := range ps {
			want := (rounds+i%2-1)%2 == 0
			for name, svc := range map[string]interface {
				Marked(context.Context, string, portrait.Pseudonym, string) (bool, error)
			}{"this node": this, "fresh node": fresh} {
				got, err := svc.Marked(ctx, "automation", p, "credit_limit")
				if err != nil || got != want {
					t.Errorf("%s: subject %d refused = %v, %v; want %v", name, i, got, err, want)
				}
			}
		}
	})
}

// countingStore counts the reads of the log's kind index.
type countingStore struct {
	portrait.Store
	mu       sync.Mutex
	reads    int // of the kind index
	subjects int // of subjects' rows
	sizes    int // of the log's size (the wrapper hides SQLite's size in memory)
}

func (s *countingStore) LogSize(ctx context.Context) (int64, error) {
	s.mu.Lock()
	s.sizes++
	s.mu.Unlock()
	return s.Store.LogSize(ctx)
}

func (s *countingStore) Subjects(ctx context.Context, ps []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error) {
	s.mu.Lock()
	s.subjects++
	s.mu.Unlock()
	return s.Store.Subjects(ctx, ps)
}

func (s *countingStore) LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error) {
	s.mu.Lock()
	s.reads++
	s.mu.Unlock()
	return s.Store.LogEntriesOfKind(ctx, kinds, from, to)
}

func (s *countingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.reads
	s.reads = 0
	return n
}

// decidedOnce is an env on a countingStore over base's store where dave,
// granted credit and profiled, has been shown credit_limit's notice and
// decided once.
func decidedOnce(t *testing.T, base *env) (*env, *countingStore, portrait.Pseudonym) {
	t.Helper()
	st := &countingStore{Store: base.store}
	e := newEnvOn(t, t.TempDir(), st)
	if _, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
		t.Fatal(err)
	}
	e.grant("dave", "credit")
	e.events(profileEvent("dave", 30, 10000))
	p := e.keys.Pseudonym("dave")
	if _, err := e.svc.ShowNotice(ctx, operator, p, "credit_limit"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Determine(ctx, operator, p, "credit_limit"); err != nil {
		t.Fatal(err)
	}
	return e, st, p
}

// determineAutomated decides credit_limit for p n times, each automated.
func determineAutomated(t *testing.T, e *env, p portrait.Pseudonym, n int) {
	t.Helper()
	for range n {
		if d, err := e.svc.Determine(ctx, operator, p, "credit_limit"); err != nil || d.Status != apply.StatusAutomated {
			t.Fatalf("%+v, %v", d, err)
		}
	}
}

// TestDecisionPassesItsOwnRecord: a decision's own audit record is not a
// mark, so the next decision's mark checks need not read the log for it;
// a mark appended in between is still read and binds the next decision
// (AD-2: a refusal of automated decisions sends it to a human).
func TestDecisionPassesItsOwnRecord(t *testing.T) {
	e, st, p := decidedOnce(t, newEnv(t))
	st.count()
	determineAutomated(t, e, p, 3)
	if n := st.count(); n != 0 {
		t.Errorf("3 decisions in a row read the kind index %d times, want 0", n)
	}
	if err := e.svc.RefuseAutomation(ctx, operator, p, "credit_limit", true); err != nil {
		t.Fatal(err)
	}
	d, err := e.svc.Determine(ctx, operator, p, "credit_limit")
	if err != nil || d.Status != apply.StatusPendingReview || d.Outcome != nil {
		t.Fatalf("after a refusal: %+v, %v; want pending review without an outcome", d, err)
	}
	if n := st.count(); n == 0 {
		t.Error("the refusal's mark was not read")
	}
}

// Invariant 4, 5: a decision keeps the subject's opened key for the
// governance generation it read the subject's state at, as a
// recommendation does, so decisions in a row read the subject's row once;
// an erasure moves the generation, and the next decision finds no subject
// (crypto-shredded), and after the subject comes back, decides with its
// new key. On both engines.
func TestDecisionKeyKeptForGeneration(t *testing.T) {
	onEachStore(t, func(t *testing.T, base *env) {
		st := &countingStore{Store: base.store}
		e := newEnvOn(t, t.TempDir(), st)
		if _, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
			t.Fatal(err)
		}
		prepare := func() portrait.Pseudonym {
			e.grant("dave", "credit")
			e.events(profileEvent("dave", 30, 10000))
			p := e.keys.Pseudonym("dave")
			if _, err := e.svc.ShowNotice(ctx, operator, p, "credit_limit"); err != nil {
				t.Fatal(err)
			}
			return p
		}
		p := prepare()
		st.mu.Lock()
		st.subjects = 0
		st.mu.Unlock()
		determineAutomated(t, e, p, 3)
		st.mu.Lock()
		n := st.subjects
		st.mu.Unlock()
		if n != 1 {
			t.Errorf("3 decisions in a row read the subject's row %d times, want once", n)
		}
		d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: p}, Action: policy.Erase, Caller: policy.Caller{Role: policy.System}})
		if err := base.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, d.Grant) }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Determine(ctx, operator, p, "credit_limit"); portrait.ErrorCode(err) == "" {
			t.Fatal("a decision on an erased subject succeeded")
		}
		prepare()
		if d, err := e.svc.Determine(ctx, operator, p, "credit_limit"); err != nil || d.Status != apply.StatusAutomated || d.Detail.Features["income"] != 10000.0 {
			t.Fatalf("after erasure and a new profile: %+v, %v", d, err)
		}
	})
}

// TestDecisionReadsLogSizeOnce: a decision checks both its marks (the
// pre-use notice at the gate, CN-11; a refusal of automation, AD-2) at
// one read of the log's size, where the engine keeps no size in memory
// (PostgreSQL; SQLite behind a wrapper here); a refusal recorded between
// two decisions still sends the next one to a human.
func TestDecisionReadsLogSizeOnce(t *testing.T) {
	onEachStore(t, func(t *testing.T, base *env) {
		e, st, p := decidedOnce(t, base)
		st.mu.Lock()
		st.sizes = 0
		st.mu.Unlock()
		determineAutomated(t, e, p, 3)
		st.mu.Lock()
		n := st.sizes
		st.mu.Unlock()
		if n != 3 {
			t.Errorf("3 decisions read the log's size %d times outside their transactions, want 3", n)
		}
		if err := e.svc.RefuseAutomation(ctx, operator, p, "credit_limit", true); err != nil {
			t.Fatal(err)
		}
		if d, err := e.svc.Determine(ctx, operator, p, "credit_limit"); err != nil || d.Status != apply.StatusPendingReview || d.Outcome != nil {
			t.Fatalf("after a refusal: %+v, %v; want pending review", d, err)
		}
	})
}
