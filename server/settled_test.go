package server_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/sqlite"
)

// doneSpy is a store that notes, per read, whether the context it was
// given can be cancelled.
type doneSpy struct {
	portrait.Store
	mu          sync.Mutex
	cancellable map[string]int
}

func (s *doneSpy) note(what string, ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.Done() != nil {
		s.cancellable[what]++
	}
}

func (s *doneSpy) Subjects(ctx context.Context, ps []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error) {
	s.note("Subjects", ctx)
	return s.Store.Subjects(ctx, ps)
}

func (s *doneSpy) Profile(ctx context.Context, g policy.Grant) ([]portrait.ProfileValue, error) {
	s.note("Profile", ctx)
	return s.Store.Profile(ctx, g)
}

func (s *doneSpy) APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error) {
	s.note("APIKey", ctx)
	return s.Store.APIKey(ctx, hash)
}

// TestDecisionReadsSettled: the staff key check and a decision's reads run
// under a context without the request's cancellation — under one that
// can be cancelled every statement costs two watcher goroutines, a third
// of the decision's CPU (BenchmarkDecisionHTTP) — while the request's
// values stay (the decision is still made, audited and answered).
func TestDecisionReadsSettled(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	spy := &doneSpy{Store: st, cancellable: map[string]int{}}
	h := newHarnessOn(t, spy)
	h.point.SetCatalog(liveCatalog(t))
	op, adm := h.staff(policy.Operator), h.staff(policy.Admin)
	h.daveAwaitsCredit(op, adm)
	spy.mu.Lock()
	clear(spy.cancellable)
	spy.mu.Unlock()
	var d decisionResp
	if resp := h.json("POST", "/v1/decisions", op, map[string]string{"usecase": "credit_limit", "subject": "dave"}, &d); resp.StatusCode != 201 || d.Outcome == nil {
		t.Fatalf("decision: %d %+v", resp.StatusCode, d)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if len(spy.cancellable) != 0 {
		t.Errorf("reads under a cancellable context: %v", spy.cancellable)
	}
}

// daveAwaitsCredit readies dave for a credit_limit decision: consent to
// credit, a profile, the use-case's assessment (by adm) and its notice
// shown (by op).
func (h *harness) daveAwaitsCredit(op, adm string) {
	h.t.Helper()
	h.consent("dave", "credit", "granted")
	evs := []portrait.Event{{SubjectID: "dave", Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"age": 35.0, "income": 9000.0}}}
	if resp := h.json("POST", "/v1/events", op, evs, nil); resp.StatusCode != 200 {
		h.t.Fatalf("profile: %d", resp.StatusCode)
	}
	if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", adm, art56, nil); resp.StatusCode != 201 {
		h.t.Fatalf("assess: %d", resp.StatusCode)
	}
	if resp := h.json("POST", "/v1/subjects/dave/usecases/credit_limit/notice", op, nil, nil); resp.StatusCode != 201 {
		h.t.Fatalf("notice: %d", resp.StatusCode)
	}
}
