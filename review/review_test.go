package review_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/portrait-dev/portrait/examples/demo"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

var (
	ctx      = context.Background()
	operator = policy.Caller{Role: policy.Operator, ID: "operator-1"}
	admin    = policy.Caller{Role: policy.Admin, ID: "admin-1"}
)

type env struct {
	store  portrait.Store
	keys   *keys.Keyring
	ledger *consent.Ledger
	in     *ingest.Ingester
	apply  *apply.Service
	review *review.Service
	now    time.Time
}

func newEnv(t *testing.T) *env { return newEnvOn(t, openSQLite) }

func openSQLite(t *testing.T) portrait.Store {
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// openPostgres opens a throwaway PostgreSQL database; it skips t where
// PORTRAIT_TEST_POSTGRES is not set.
func openPostgres(t *testing.T) portrait.Store {
	store, err := postgres.Open(ctx, storetest.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// eachStore runs f on SQLite and on PostgreSQL (invariant 7).
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnvOn(t, openSQLite)) })
	t.Run("postgres", func(t *testing.T) { f(t, newEnvOn(t, openPostgres)) })
}

func newEnvOn(t *testing.T, open func(*testing.T) portrait.Store) *env {
	t.Helper()
	cat, err := catalog.Load("../apply/testdata/catalog.yaml", label.Check)
	if err != nil {
		t.Fatal(err)
	}
	store := open(t)
	t.Cleanup(func() { store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, _ := keys.New(master)
	point := policy.New(cat)
	log, _ := audit.New("portrait.test/log", kr.LogKey())
	ledger, err := consent.New(consent.Deps{Store: store, Point: point, Log: log, Keys: kr}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, keys: kr, ledger: ledger, now: time.Now()}
	e.in = ingest.New(ingest.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, ingest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if e.apply, err = apply.New(apply.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, apply.Options{}); err != nil {
		t.Fatal(err)
	}
	if e.review, err = review.New(review.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, review.Options{Now: func() time.Time { return e.now }}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.apply.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
		t.Fatal(err)
	}
	return e
}

// decide makes a credit decision about id and returns its id and pseudonym.
func (e *env) decide(t *testing.T, id string) (string, string) {
	t.Helper()
	if _, err := e.ledger.Record(ctx, operator, consent.ByID(id), consent.Change{Purpose: "credit", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	res, _, err := e.in.Ingest(ctx, operator, []ingest.Item{{Event: portrait.Event{SubjectID: id, Type: "profile", Time: time.Now().Add(-time.Minute),
		Fields: map[string]any{"age": 30.0, "income": 12000.0}}}})
	if err != nil || res[0].Status != ingest.Accepted {
		t.Fatalf("ingest: %v %+v", err, res)
	}
	p := e.keys.Pseudonym(id)
	if _, err := e.apply.ShowNotice(ctx, operator, p, "credit_limit"); err != nil {
		t.Fatal(err)
	}
	d, err := e.apply.Determine(ctx, operator, p, "credit_limit")
	if err != nil {
		t.Fatal(err)
	}
	return d.ID, string(p)
}

func code(err error) string { return portrait.ErrorCode(err) }

func requirement(err error) string {
	if e, ok := err.(*portrait.Error); ok {
		return e.Requirement
	}
	return ""
}

// TestAppealAndReview runs an appeal end to end (AD-3, AD-7, RO-7), on
// both engines (invariant 7).
func TestAppealAndReview(t *testing.T) { eachStore(t, testAppealAndReview) }

func testAppealAndReview(t *testing.T, e *env) {
	decID, dave := e.decide(t, "dave")
	_, erin := e.decide(t, "erin")
	asDave := policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(dave)}
	asErin := policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(erin)}

	// AD-3: only the subject may appeal their decision; to anyone else it
	// does not exist.
	if _, err := e.review.Appeal(ctx, asErin, decID, review.KindAppeal, "not mine"); code(err) != portrait.ENOTFOUND {
		t.Fatalf("erin appealed dave's decision: %v", err)
	}
	if _, err := e.review.Appeal(ctx, operator, decID, review.KindAppeal, "x"); code(err) != portrait.EFORBIDDEN {
		t.Fatalf("staff appealed: %v", err)
	}
	if _, err := e.review.Appeal(ctx, asDave, decID, review.KindAppeal, "  "); code(err) != portrait.EINVALID {
		t.Fatalf("empty statement: %v", err)
	}
	r, err := e.review.Appeal(ctx, asDave, decID, review.KindAppeal, "My income rose last month.")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.review.Appeal(ctx, asDave, decID, review.KindAppeal, "again"); code(err) != portrait.ECONFLICT {
		t.Fatalf("second open appeal: %v", err)
	}
	if d, _ := e.store.DeterminationByID(ctx, decID); d.Status != apply.StatusPendingReview {
		t.Errorf("decision status %s, want pending_review", d.Status)
	}

	// The queue, and the case with explanation and statement.
	ann := policy.Caller{Role: policy.Reviewer, ID: "audit-team/ann"}
	if _, err := e.review.Queue(ctx, operator); code(err) != portrait.EFORBIDDEN {
		t.Errorf("operator read the queue: %v", err)
	}
	q, err := e.review.Queue(ctx, ann)
	if err != nil || len(q) != 1 || q[0].ID != r.ID {
		t.Fatalf("queue %+v %v", q, err)
	}
	c, err := e.review.Case(ctx, ann, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Statement != "My income rose last month." || c.Detail == nil || !strings.Contains(c.Detail.Explanation["en"], "income") || c.Conflict != "" {
		t.Fatalf("case %+v", c)
	}

	// RO-7: the model's and the use-case's owners cannot review; nobody
	// reviews their own appeal.
	for _, who := range []policy.Caller{
		{Role: policy.Reviewer, ID: "risk-models/bo"},
		{Role: policy.Reviewer, ID: "risk-team"},
		{Role: policy.Reviewer, ID: "Risk-Models/bo"},
		{Role: policy.Reviewer, ID: "audit-team/dave"},
	} {
		_, err := e.review.Conclude(ctx, who, r.ID, review.Overturned, "looks fine")
		if code(err) != portrait.EFORBIDDEN || requirement(err) != "RO-7" {
			t.Errorf("%s reviewed: %v", who.ID, err)
		}
	}
	if _, err := e.review.Conclude(ctx, ann, r.ID, "maybe", "x"); code(err) != portrait.EINVALID {
		t.Errorf("bad outcome: %v", err)
	}
	if _, err := e.review.Conclude(ctx, ann, r.ID, review.Overturned, ""); code(err) != portrait.EINVALID {
		t.Errorf("no reason: %v", err)
	}
	closed, err := e.review.Conclude(ctx, ann, r.ID, review.Overturned, "Payslip shows higher income.")
	if err != nil {
		t.Fatal(err)
	}
	if closed.Status != review.StatusClosed || closed.Reviewer != "audit-team/ann" {
		t.Errorf("closed %+v", closed)
	}
	if _, err := e.review.Conclude(ctx, ann, r.ID, review.Upheld, "again"); code(err) != portrait.ECONFLICT {
		t.Errorf("closed twice: %v", err)
	}

	// The subject sees the outcome and the reason.
	mine, err := e.review.Decisions(ctx, asDave, portrait.Pseudonym(dave))
	if err != nil || len(mine) != 1 {
		t.Fatalf("mine: %+v %v", mine, err)
	}
	m := mine[0]
	if m.Status != apply.StatusOverturned || m.Final == nil || *m.Final == *m.Outcome || len(m.Reviews) != 1 || m.Reviews[0].Reason != "Payslip shows higher income." {
		t.Errorf("subject's view: %+v", m)
	}
}

// TestModify: a reviewer may accept, correct or reverse an automated
// decision (采纳、修正或者推翻); a correction keeps the decision's direction,
// and the subject reads what changed in the reason (AD-3).
func TestModify(t *testing.T) {
	e := newEnv(t)
	decID, dave := e.decide(t, "dave")
	asDave := policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(dave)}
	r, err := e.review.Appeal(ctx, asDave, decID, review.KindAppeal, "The limit is too low for my income.")
	if err != nil {
		t.Fatal(err)
	}
	ann := policy.Caller{Role: policy.Reviewer, ID: "audit-team/ann"}
	if _, err := e.review.Conclude(ctx, ann, r.ID, review.Modified, "Limit raised to 8,000 after the payslip was checked."); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.store.DeterminationByID(ctx, decID); d.Status != apply.StatusModified {
		t.Errorf("decision status %s, want modified", d.Status)
	}
	mine, err := e.review.Decisions(ctx, asDave, portrait.Pseudonym(dave))
	if err != nil || len(mine) != 1 {
		t.Fatalf("mine: %+v %v", mine, err)
	}
	if m := mine[0]; m.Final == nil || *m.Final != *m.Outcome || m.Reviews[0].Outcome != review.Modified {
		t.Errorf("subject's view of a modified decision: %+v", m)
	}
}

// TestRefusalAndDeadlines: a refusal of automation goes to a human, whose
// outcome the subject sees; overdue cases are reported (AD-2, AD-5).
func TestRefusalAndDeadlines(t *testing.T) {
	e := newEnv(t)
	_, dave := e.decide(t, "dave")
	asDave := policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(dave)}
	if err := e.apply.RefuseAutomation(ctx, asDave, portrait.Pseudonym(dave), "credit_limit", true); err != nil {
		t.Fatal(err)
	}
	d, err := e.apply.Determine(ctx, operator, portrait.Pseudonym(dave), "credit_limit")
	if err != nil || d.Status != apply.StatusPendingReview {
		t.Fatalf("%+v %v", d, err)
	}
	mine, _ := e.review.Decisions(ctx, asDave, portrait.Pseudonym(dave))
	var pending review.Mine
	for _, m := range mine {
		if m.ID == d.ID {
			pending = m
		}
	}
	if pending.Outcome != nil || pending.Detail != nil || pending.Final != nil {
		t.Errorf("AD-2: an automated outcome was shown while a human decides: %+v", pending)
	}
	ann := policy.Caller{Role: policy.Reviewer, ID: "audit-team/ann"}
	if over, err := e.review.Overdue(ctx, ann); err != nil || len(over) != 0 {
		t.Fatalf("overdue now: %v %v", over, err)
	}
	e.now = e.now.Add(apply.DefaultReviewDeadline + time.Hour)
	over, err := e.review.Overdue(ctx, ann)
	if err != nil || len(over) != 1 || over[0].DeterminationID != d.ID {
		t.Fatalf("overdue after the deadline: %+v %v", over, err)
	}
	if _, err := e.review.Conclude(ctx, ann, over[0].ID, review.Upheld, "Checked by hand."); err != nil {
		t.Fatal(err)
	}
	mine, _ = e.review.Decisions(ctx, asDave, portrait.Pseudonym(dave))
	for _, m := range mine {
		if m.ID == d.ID && (m.Final == nil || m.Outcome == nil || *m.Final != *m.Outcome || m.Status != apply.StatusUpheld) {
			t.Errorf("after the human decided: %+v", m)
		}
	}
}

// TestConcurrentOutcomes: two reviewers closing one review at the same
// moment, with opposite outcomes. Exactly one wins; the other gets a
// conflict, and the log holds one outcome (AD-3). Before the status was
// checked inside the write transaction both won about one time in five.
func TestConcurrentOutcomes(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ann := policy.Caller{Role: policy.Reviewer, ID: "audit-team/ann"}
		bea := policy.Caller{Role: policy.Reviewer, ID: "audit-team/bea"}
		const rounds = 25
		for i := range rounds {
			decID, p := e.decide(t, fmt.Sprintf("subject-%d", i))
			r, err := e.review.Appeal(ctx, policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(p)}, decID, review.KindAppeal, "please look again")
			if err != nil {
				t.Fatal(err)
			}
			before, err := e.store.LogSize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var (
				start sync.WaitGroup
				done  sync.WaitGroup
				errs  [2]error
				got   [2]portrait.Review
			)
			start.Add(1)
			for j, c := range []policy.Caller{ann, bea} {
				outcome := []string{review.Upheld, review.Overturned}[j]
				done.Add(1)
				go func() {
					defer done.Done()
					start.Wait()
					got[j], errs[j] = e.review.Conclude(ctx, c, r.ID, outcome, "decided by "+c.ID)
				}()
			}
			start.Done()
			done.Wait()
			won := -1
			for j, err := range errs {
				switch {
				case err == nil:
					if won >= 0 {
						t.Fatalf("round %d: both outcomes were accepted", i)
					}
					won = j
				case code(err) != portrait.ECONFLICT:
					t.Fatalf("round %d: loser got %v, want a conflict", i, err)
				}
			}
			if won < 0 {
				t.Fatalf("round %d: no outcome was accepted: %v", i, errs)
			}
			stored, err := e.store.ReviewByID(ctx, r.ID)
			if err != nil || stored.Outcome != got[won].Outcome || stored.Reviewer != got[won].Reviewer {
				t.Fatalf("round %d: stored %+v, winner %+v (%v)", i, stored, got[won], err)
			}
			d, _ := e.store.DeterminationByID(ctx, decID)
			if d.Status != got[won].Outcome {
				t.Fatalf("round %d: decision status %s, winner said %s", i, d.Status, got[won].Outcome)
			}
			after, _ := e.store.LogSize(ctx)
			if after != before+1 {
				t.Fatalf("round %d: the log grew by %d records, want one outcome", i, after-before)
			}
		}
	})
}
