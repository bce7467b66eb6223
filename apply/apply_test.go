package apply_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portrait-dev/portrait/examples/demo"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/sqlite/sqlitetest"
	"github.com/portrait-dev/portrait/storetest"
)

var (
	ctx      = context.Background()
	operator = policy.Caller{Role: policy.Operator, ID: "operator-1"}
	admin    = policy.Caller{Role: policy.Admin, ID: "admin-1"}
	reg      = policy.Caller{Role: policy.Regulator, ID: "regulator-1"}
)

// env is a whole apply stack on a fresh SQLite file.
type env struct {
	t      testing.TB
	dir    string
	store  portrait.Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	in     *ingest.Ingester
	svc    *apply.Service
}

func loadCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.Load("testdata/catalog.yaml", label.Check)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "portrait.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newEnvOn(t, dir, store)
}

// newPostgresEnv is newEnv on a throwaway PostgreSQL database.
func newPostgresEnv(t testing.TB) *env {
	t.Helper()
	store, err := postgres.Open(ctx, storetest.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newEnvOn(t, t.TempDir(), store)
}

// onEachStore runs f on a SQLite env and, with PORTRAIT_TEST_POSTGRES
// set, on a PostgreSQL one.
func onEachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(t, newPostgresEnv(t))
	})
}

func newEnvOn(t testing.TB, dir string, store portrait.Store) *env {
	t.Helper()
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, store: store, keys: kr}
	e.node(loadCatalog(t))
	return e
}

// node wires a fresh decision point, ledger and service over the env's
// store, as a second server process would.
func (e *env) node(cat *catalog.Catalog) *apply.Service {
	e.t.Helper()
	var err error
	e.point = policy.New(cat)
	if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
		e.t.Fatal(err)
	}
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{}); err != nil {
		e.t.Fatal(err)
	}
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e.svc, err = apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, apply.Options{Assessments: filepath.Join(e.dir, "assessments")})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.svc
}

func (e *env) grant(id, purpose string) {
	e.t.Helper()
	if _, err := e.ledger.Record(ctx, operator, consent.ByID(id), consent.Change{Purpose: purpose, Status: policy.Granted, NoticeVersion: "1"}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) events(evs ...portrait.Event) {
	e.t.Helper()
	items := make([]ingest.Item, len(evs))
	for i, ev := range evs {
		items[i] = ingest.Item{Event: ev}
	}
	res, _, err := e.in.Ingest(ctx, operator, items)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != ingest.Accepted {
			e.t.Fatalf("event %d not accepted: %+v", i, r)
		}
	}
}

// setLabel stores a label value the way package derive seals it.
func (e *env) setLabel(id string, v label.Value) {
	e.t.Helper()
	p := e.keys.Pseudonym(id)
	st, err := e.ledger.State(ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	d := e.point.Decide(policy.Request{State: st, Purpose: "personalization", Labels: []string{v.Label}, Action: policy.Derive, Caller: policy.Caller{Role: policy.System}})
	if !d.Allow {
		e.t.Fatalf("derive %s: %v", v.Label, d.Err())
	}
	subs, _ := e.store.Subjects(ctx, []portrait.Pseudonym{p})
	c, err := e.keys.Open(subs[p])
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	err = e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: d.Grant, Pseudonym: p, Label: v.Label, Version: 1,
			Sealed: c.Seal(b, keys.LabelAD(p, v.Label)), Computed: time.Now()}})
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func wantErr(t *testing.T, err error, code, req, inMessage string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %s error, got none", code, req)
	}
	var d *policy.Denied
	if code == portrait.EDENIED && req != "" && asDenied(err, &d) {
		if d.Reasons[0].Requirement != req || !strings.Contains(err.Error(), inMessage) {
			t.Fatalf("got %v (%s), want %s containing %q", err, d.Reasons[0].Requirement, req, inMessage)
		}
		return
	}
	var pe *portrait.Error
	if !asError(err, &pe) || pe.Code != code || pe.Requirement != req || !strings.Contains(pe.Message, inMessage) {
		t.Fatalf("got %#v, want code %s requirement %q containing %q", err, code, req, inMessage)
	}
}

// TestGate walks the refusals of the use-case gate: each names its reason
// and requirement, and lifting the cause lets the request through.
func TestGate(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		e.grant("dave", "credit")
		st, _ := e.ledger.State(ctx, e.keys.Pseudonym("dave"))

		// RO-9: undeclared, wrong kind, not live.
		_, err := e.svc.Gate(ctx, "nope", apply.KindRecommendation, nil)
		wantErr(t, err, portrait.EINVALID, "RO-9", "not declared")
		_, err = e.svc.Gate(ctx, "home_feed", apply.KindDecision, nil)
		wantErr(t, err, portrait.EINVALID, "", "not a decision")
		_, err = e.svc.Gate(ctx, "beta_feed", apply.KindRecommendation, nil)
		wantErr(t, err, portrait.EDENIED, "RO-9", "not live")
		if _, err := e.svc.Gate(ctx, "home_feed", apply.KindRecommendation, nil); err != nil {
			t.Fatalf("minimal live use-case refused: %v", err)
		}

		// RO-6: a regulator's suspension of the use-case, then of its model.
		if err := e.ledger.Suspend(ctx, reg, policy.Suspension{Kind: policy.TargetUseCase, ID: "home_feed", Reason: "inquiry 7"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Gate(ctx, "home_feed", apply.KindRecommendation, nil)
		wantErr(t, err, portrait.EDENIED, "RO-6", "inquiry 7")
		if err := e.ledger.Lift(ctx, reg, policy.TargetUseCase, "home_feed"); err != nil {
			t.Fatal(err)
		}

		// AD-5, FA-1: high tier without an assessment; RO-9 graded: minimal needs none.
		_, err = e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st)
		wantErr(t, err, portrait.EDENIED, "AD-5", "no impact assessment")
		if _, err := e.svc.Assess(ctx, operator, "credit_limit", demo.Answers()); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Fatalf("operator assessed: %v", err)
		}
		a, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers())
		if err != nil {
			t.Fatal(err)
		}
		if a.Model == nil || a.Model.Weights["income"] != 0.0002 || len(a.Sensitive) == 0 && len(a.Fields) == 0 || a.Tier != "high" {
			t.Errorf("assessment does not describe the configuration: %+v", a)
		}
		// CN-11: the pre-use notice must have been shown to this subject.
		_, err = e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st)
		wantErr(t, err, portrait.EDENIED, "CN-11", "pre-use notice")
		n, err := e.svc.ShowNotice(ctx, operator, st.Pseudonym, "credit_limit")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(n.Text["en"], "high-risk") {
			t.Errorf("notice does not say a high-risk system is used: %q", n.Text["en"])
		}
		if _, err := e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st); err != nil {
			t.Fatalf("assessed, notified: %v", err)
		}

		// RO-6 on the model.
		if err := e.ledger.Suspend(ctx, reg, policy.Suspension{Kind: policy.TargetModel, ID: "credit_score", Reason: "bias review"}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st)
		wantErr(t, err, portrait.EDENIED, "RO-6", "bias review")
		if err := e.ledger.Lift(ctx, reg, policy.TargetModel, "credit_score"); err != nil {
			t.Fatal(err)
		}

		// AD-7: only an overseer halts; a halt reaches another node and is
		// lifted apart from any suspension.
		if err := e.svc.Halt(ctx, operator, "credit_limit", "x"); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Fatalf("operator halted: %v", err)
		}
		if err := e.svc.Halt(ctx, admin, "credit_limit", "complaints spike"); err != nil {
			t.Fatal(err)
		}
		other := newNodeOver(t, e)
		st2, _ := other.ledger.State(ctx, st.Pseudonym) // refreshes suspensions on that node
		_, err = other.svc.Gate(ctx, "credit_limit", apply.KindDecision, st2)
		wantErr(t, err, portrait.EDENIED, "AD-7", "halted by a human overseer")
		if err := e.svc.Resume(ctx, admin, "credit_limit"); err != nil {
			t.Fatal(err)
		}
		st2, _ = other.ledger.State(ctx, st.Pseudonym)
		if _, err := other.svc.Gate(ctx, "credit_limit", apply.KindDecision, st2); err != nil {
			t.Fatalf("after resume, on the other node: %v", err)
		}

		// AD-5: a changed configuration needs a new assessment.
		changed := loadCatalog(t)
		changed.Label("credit_score").Model.Weights["income"] = 0.0003
		e.point.SetCatalog(changed)
		_, err = e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st)
		wantErr(t, err, portrait.EDENIED, "AD-5", "configuration")
		// The gate's remembered digests follow the catalog in force:
		// the assessed configuration, loaded again, passes again.
		e.point.SetCatalog(loadCatalog(t))
		if _, err := e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st); err != nil {
			t.Fatalf("assessed configuration loaded again: %v", err)
		}
		e.point.SetCatalog(changed)
		_, err = e.svc.Gate(ctx, "credit_limit", apply.KindDecision, st)
		wantErr(t, err, portrait.EDENIED, "AD-5", "configuration")
	})
}

type nodeEnv struct {
	ledger *consent.Ledger
	svc    *apply.Service
}

func newNodeOver(t *testing.T, e *env) nodeEnv {
	point := policy.New(loadCatalog(t))
	log, _ := audit.New("portrait.test/log", e.keys.LogKey())
	led, err := consent.New(consent.Deps{Store: e.store, Point: point, Log: log, Keys: e.keys}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := apply.New(apply.Deps{Store: e.store, Point: point, Ledger: led, Keys: e.keys, Log: log}, apply.Options{Assessments: filepath.Join(e.dir, "assessments")})
	if err != nil {
		t.Fatal(err)
	}
	return nodeEnv{led, svc}
}

// TestAssessmentFiles: assessments on disk are verified at load; a
// tampered one is refused (FA-1).
func TestAssessmentFiles(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		if _, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(e.dir, "assessments", "credit_limit.json")
		pub := e.keys.ReceiptKey().Public().(ed25519.PublicKey)
		list, err := apply.LoadAssessments(filepath.Dir(path), pub)
		if err != nil || len(list) != 1 {
			t.Fatalf("load: %v %d", err, len(list))
		}
		b, _ := os.ReadFile(path)
		os.WriteFile(path, []byte(strings.Replace(string(b), `"tier": "high"`, `"tier": "minimal"`, 1)), 0o600)
		if _, err := apply.LoadAssessments(filepath.Dir(path), pub); err == nil || !strings.Contains(err.Error(), "signature") {
			t.Fatalf("tampered assessment loaded: %v", err)
		}
	})
}

var categories = []string{"sports", "books", "home", "toys", "food"}

func putItems(t testing.TB, e *env, perCategory int) {
	t.Helper()
	var items []portrait.Item
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for c, cat := range categories {
		for i := range perCategory {
			items = append(items, portrait.Item{ID: fmt.Sprintf("%s-%d", cat, i), Categories: []string{cat}, Price: float64(10 + i),
				Updated: base.Add(time.Duration(c*perCategory+i) * time.Hour)})
		}
	}
	if _, err := e.svc.PutItems(ctx, operator, items); err != nil {
		t.Fatal(err)
	}
}

func view(id, item, cat string, ago time.Duration) portrait.Event {
	return portrait.Event{SubjectID: id, Type: "view", Time: time.Now().Add(-ago), Fields: map[string]any{"item": item, "category": cat}}
}

// population: fans view sports, readers view books; books are the most
// popular overall.
func population(t testing.TB, e *env) {
	var evs []portrait.Event
	for f := range 3 {
		id := fmt.Sprintf("fan%d", f)
		e.grant(id, "personalization")
		for i := range 6 {
			evs = append(evs, view(id, fmt.Sprintf("sports-%d", i), "sports", time.Hour))
		}
	}
	for r := range 6 {
		id := fmt.Sprintf("reader%d", r)
		e.grant(id, "personalization")
		for i := range 5 {
			evs = append(evs, view(id, fmt.Sprintf("books-%d", i), "books", time.Hour))
		}
	}
	e.events(evs...)
	for f := range 3 {
		e.setLabel(fmt.Sprintf("fan%d", f), label.Value{Label: "sports_fan", Kind: catalog.KindRule, Bool: true, Version: 1})
	}
}

func setDial(t *testing.T, e *env, p string, level int, objectProfiling bool) {
	t.Helper()
	if err := e.ledger.SetFlags(ctx, operator, portrait.Pseudonym(p), portrait.Flags{Personalization: level, ObjectProfiling: objectProfiling}, consent.KindPersonalization); err != nil {
		t.Fatal(err)
	}
}

func TestRecommend(t *testing.T) {
	e := newEnv(t)
	putItems(t, e, 8)
	population(t, e)
	e.grant("alice", "personalization")
	e.events(view("alice", "sports-7", "sports", time.Hour),
		portrait.Event{SubjectID: "alice", Type: "purchase", Time: time.Now().Add(-time.Hour), Fields: map[string]any{"item": "books-0", "category": "books", "amount": 12.0}})
	e.setLabel("alice", label.Value{Label: "sports_fan", Kind: catalog.KindRule, Bool: true, Version: 1})
	alice := e.keys.Pseudonym("alice")

	for _, n := range []int{0, -1, apply.MaxItems + 1} {
		_, err := e.svc.Recommend(ctx, operator, alice, "home_feed", n)
		wantErr(t, err, portrait.EINVALID, "", "out of range")
	}
	_, err := e.svc.Recommend(ctx, operator, alice, "beta_feed", 10)
	wantErr(t, err, portrait.EDENIED, "RO-9", "not live")

	// LP-5: personalised items are marked and say which labels counted.
	r, err := e.svc.Recommend(ctx, operator, alice, "home_feed", 10)
	if err != nil {
		t.Fatal(err)
	}
	if r.Personalization != 100 || len(r.Items) != 10 {
		t.Fatalf("got %+v", r)
	}
	if !r.Items[0].Personalized || !strings.HasPrefix(r.Items[0].ID, "sports-") || !contains(r.Items[0].Reasons, "sports_fan") {
		t.Errorf("top item should be a sports item personalised by sports_fan: %+v", r.Items[0])
	}
	if !contains(r.LabelsUsed, "sports_fan") {
		t.Errorf("labels used: %v", r.LabelsUsed)
	}
	checkDiversity(t, r.Items)
	for _, it := range r.Items {
		if it.ID == "books-0" {
			t.Errorf("FB-2: already purchased item books-0 recommended again")
		}
	}
	assertLogged(t, e, alice, r)

	// LP-3: a deselected label is never used again.
	if err := e.ledger.Suppress(ctx, operator, alice, "sports_fan", false); err != nil {
		t.Fatal(err)
	}
	r, err = e.svc.Recommend(ctx, operator, alice, "home_feed", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range r.Items {
		if contains(it.Reasons, "sports_fan") {
			t.Errorf("LP-3: deselected label used for %s", it.ID)
		}
	}
	if len(r.LabelsUsed) != 0 {
		t.Errorf("LP-3: labels used after deselecting: %v", r.LabelsUsed)
	}

	// LP-4: dial 0 and an objection turn personalisation off at once.
	for _, tc := range []struct {
		name   string
		level  int
		object bool
		why    string
	}{{"dial 0", 0, false, "LP-4"}, {"objection", 100, true, "SR-7"}} {
		setDial(t, e, string(alice), tc.level, tc.object)
		r, err = e.svc.Recommend(ctx, operator, alice, "home_feed", 10)
		if err != nil {
			t.Fatal(err)
		}
		if r.Personalization != 0 || !strings.Contains(r.NotPersonalized, tc.why) {
			t.Errorf("%s: personalization %d, why %q", tc.name, r.Personalization, r.NotPersonalized)
		}
		for _, it := range r.Items {
			if it.Personalized || !(contains(it.Reasons, "popular") || contains(it.Reasons, "explore")) {
				t.Errorf("%s: %+v is personalised", tc.name, it)
			}
		}
		checkDiversity(t, r.Items)
	}
	// LP-5: a dial between none and full is applied as such.
	setDial(t, e, string(alice), 40, false)
	if r, err = e.svc.Recommend(ctx, operator, alice, "home_feed", 10); err != nil || r.Personalization != 40 {
		t.Fatalf("dial 40: %+v %v", r, err)
	}
	// No consent at all: purely non-personalised, not refused.
	r, err = e.svc.Recommend(ctx, operator, e.keys.Pseudonym("stranger"), "home_feed", 10)
	if err != nil || r.Personalization != 0 || !strings.Contains(r.NotPersonalized, "CN-1") {
		t.Fatalf("stranger: %+v %v", r, err)
	}
	if r.Items[0].ID != "books-0" {
		t.Errorf("the most popular item should lead the non-personalised list: %v", r.Items[0])
	}
}

// checkDiversity asserts the default floor on a list of 10 (FB-2).
func checkDiversity(t *testing.T, items []apply.Recommended) {
	t.Helper()
	per := map[string]int{}
	explore := 0
	for _, it := range items {
		per[strings.Split(it.ID, "-")[0]]++
		if contains(it.Reasons, "explore") {
			explore++
		}
	}
	if len(per) < 3 {
		t.Errorf("FB-2: %d categories in %v, want at least 3", len(per), items)
	}
	for c, k := range per {
		if k > len(items)/2 {
			t.Errorf("FB-2: category %s has %d of %d items", c, k, len(items))
		}
	}
	if explore < len(items)/10 {
		t.Errorf("FB-2: %d exploration items, want %d", explore, len(items)/10)
	}
}

func assertLogged(t *testing.T, e *env, p portrait.Pseudonym, r apply.Recommendation) {
	t.Helper()
	entries, err := e.store.LogEntries(ctx, r.LogIndex, r.LogIndex+1)
	if err != nil || len(entries) != 1 {
		t.Fatalf("log entry %d: %v", r.LogIndex, err)
	}
	var rec audit.Record
	json.Unmarshal(entries[0].Data, &rec)
	if rec.Kind != "recommendation" || rec.Pseudonym != p || rec.Action != "home_feed" || rec.Digest == "" {
		t.Errorf("audit record: %+v", rec)
	}
	if strings.Contains(string(entries[0].Data), r.Items[0].ID) {
		t.Errorf("the log holds item ids in clear; want a digest: %s", entries[0].Data)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func asDenied(err error, d **policy.Denied) bool {
	var x *policy.Denied
	ok := errors.As(err, &x)
	*d = x
	return ok
}

func asError(err error, e **portrait.Error) bool {
	var x *portrait.Error
	ok := errors.As(err, &x)
	*e = x
	return ok
}

func profileEvent(id string, age, income float64) portrait.Event {
	return portrait.Event{SubjectID: id, Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"age": age, "income": income}}
}

// ready makes credit_limit runnable for id: assessed, consent given, the
// notice shown, a profile stored.
func ready(t *testing.T, e *env, id string, age, income float64) portrait.Pseudonym {
	t.Helper()
	if _, ok := e.svc.Assessment("credit_limit"); !ok {
		if _, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
			t.Fatal(err)
		}
	}
	e.grant(id, "credit")
	e.events(profileEvent(id, age, income))
	p := e.keys.Pseudonym(id)
	if _, err := e.svc.ShowNotice(ctx, operator, p, "credit_limit"); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecide(t *testing.T) {
	e := newEnv(t)
	dave := ready(t, e, "dave", 30, 10000)
	d, err := e.svc.Determine(ctx, operator, portrait.Pseudonym(dave), "credit_limit")
	if err != nil {
		t.Fatal(err)
	}
	// AD-4: the score is the declared model's, with every feature's share.
	m := label.Model(*loadCatalog(t).Label("credit_score").Model)
	score, contrib, _ := m.Score(map[string]float64{"age": 30, "income": 10000})
	if d.Status != apply.StatusAutomated || d.Score == nil || *d.Score != score || *d.Outcome != m.Outcome(score) {
		t.Fatalf("decision %+v, want score %v", d, score)
	}
	if len(d.Contributions) != 2 || d.Contributions["income"] != contrib["income"] || d.Contributions["age"] != contrib["age"] {
		t.Errorf("contributions %v, want %v", d.Contributions, contrib)
	}
	// The counterfactual changes an actionable feature only (income; age is
	// not actionable) and really flips the outcome.
	if d.Counterfactual == nil || d.Counterfactual.Field != "income" {
		t.Fatalf("counterfactual %+v", d.Counterfactual)
	}
	flipped, _, _ := m.Score(map[string]float64{"age": 30, "income": d.Counterfactual.To})
	if m.Outcome(flipped) == *d.Outcome {
		t.Errorf("counterfactual income %v does not flip the outcome", d.Counterfactual.To)
	}
	// AD-2, AD-4, AD-7: explained in both languages, with procedure, data
	// and weights, and a notice that a high-risk system decided.
	for lang, want := range map[string][]string{"en": {"logistic", "income (10000)", "age (30)", "Had your income"}, "zh-CN": {"逻辑回归", "收入（10000）", "年龄（30）"}} {
		for _, w := range want {
			if !strings.Contains(d.Explanation[lang], w) {
				t.Errorf("%s explanation lacks %q: %s", lang, w, d.Explanation[lang])
			}
		}
	}
	// AD-4: plain words: a chance in whole per cent, each item's share of
	// the influence; no log-odds.
	if zh := d.Explanation["zh-CN"]; strings.Contains(zh, "对数几率") || !strings.Contains(zh, "通过的可能性约为") || !strings.Contains(zh, "占全部影响的") {
		t.Errorf("zh-CN explanation is not plain: %s", zh)
	}
	if en := d.Explanation["en"]; strings.Contains(en, "log-odds") || !strings.Contains(en, "chance of passing at about") {
		t.Errorf("en explanation is not plain: %s", en)
	}
	if !strings.Contains(d.Notice["en"], "high-risk") || !strings.Contains(d.Notice["zh-CN"], "人工复核") {
		t.Errorf("notice: %v", d.Notice)
	}
	// Stored with model version and input hash, sealed, and logged.
	got, err := e.store.DeterminationByID(ctx, d.ID)
	if err != nil || got.ModelVersion != 1 || got.InputHash != d.InputHash || got.Pseudonym != dave || got.LogIndex != d.LogIndex {
		t.Fatalf("stored %+v %v", got, err)
	}
	entries, _ := e.store.LogEntries(ctx, d.LogIndex, d.LogIndex+1)
	if !strings.Contains(string(entries[0].Data), `"kind":"decision"`) || strings.Contains(string(entries[0].Data), "10000") {
		t.Errorf("log entry: %s", entries[0].Data)
	}

	// Bad input: no consent for the purpose (CN-1), a missing feature.
	e.events(profileEvent("erin", 40, 1))
	erin := e.keys.Pseudonym("erin")
	e.svc.ShowNotice(ctx, operator, erin, "credit_limit")
	_, err = e.svc.Determine(ctx, operator, erin, "credit_limit")
	wantErr(t, err, portrait.EDENIED, "CN-1", "no consent")
	e.grant("fred", "credit")
	e.events(portrait.Event{SubjectID: "fred", Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"age": 50.0}})
	fred := e.keys.Pseudonym("fred")
	e.svc.ShowNotice(ctx, operator, fred, "credit_limit")
	_, err = e.svc.Determine(ctx, operator, fred, "credit_limit")
	wantErr(t, err, portrait.EINVALID, "", "no income")
	if _, err := e.svc.Determine(ctx, operator, portrait.Pseudonym(dave), "home_feed"); portrait.ErrorCode(err) != portrait.EINVALID {
		t.Errorf("a recommender used as a decision: %v", err)
	}

	// AD-2: a standing refusal of automated processing sends the next
	// decision to a human, with no automated outcome given.
	if err := e.svc.RefuseAutomation(ctx, policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(dave)}, portrait.Pseudonym(dave), "credit_limit", true); err != nil {
		t.Fatal(err)
	}
	d2, err := e.svc.Determine(ctx, operator, portrait.Pseudonym(dave), "credit_limit")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Status != apply.StatusPendingReview || d2.Outcome != nil || d2.Score != nil || d2.Review == "" {
		t.Fatalf("refused automation: %+v", d2)
	}
	open, _ := e.store.Reviews(ctx, "open")
	if len(open) != 1 || open[0].DeterminationID != d2.ID || open[0].Kind != "refusal" {
		t.Fatalf("review queue: %+v", open)
	}
	// Withdrawing the refusal restores automated decisions.
	e.svc.RefuseAutomation(ctx, policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(dave)}, portrait.Pseudonym(dave), "credit_limit", false)
	if d3, err := e.svc.Determine(ctx, operator, portrait.Pseudonym(dave), "credit_limit"); err != nil || d3.Status != apply.StatusAutomated {
		t.Fatalf("after withdrawing the refusal: %+v %v", d3, err)
	}
	// Another subject cannot set dave's choices.
	if err := e.svc.RefuseAutomation(ctx, policy.Caller{Role: policy.Subject, Pseudonym: erin}, portrait.Pseudonym(dave), "credit_limit", true); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
		t.Errorf("erin set dave's refusal: %v", err)
	}
}

// CN-11, invariant 8: rewriting the "notice shown" mark of one subject in
// the store to name another does not let the other's high-risk decision
// through. Before the change it is refused (403, CN-11); after it, a node
// that reads the marks refuses it still, with the log's integrity finding,
// and counts the alert.
func TestNoticeMarkRewrittenInStore(t *testing.T) {
	e := newEnv(t)
	e.grant("alice", "credit")
	e.grant("bob", "credit")
	alice, _ := e.ledger.State(ctx, e.keys.Pseudonym("alice"))
	bob, _ := e.ledger.State(ctx, e.keys.Pseudonym("bob"))
	if _, err := e.svc.Assess(ctx, admin, "credit_limit", demo.Answers()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ShowNotice(ctx, operator, alice.Pseudonym, "credit_limit"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Gate(ctx, "credit_limit", apply.KindDecision, alice); err != nil {
		t.Fatalf("alice was shown the notice: %v", err)
	}
	_, err := e.svc.Gate(ctx, "credit_limit", apply.KindDecision, bob)
	wantErr(t, err, portrait.EDENIED, "CN-11", "pre-use notice")

	// Find alice's mark and make it name bob.
	size, _ := e.store.LogSize(ctx)
	marks, err := e.store.LogEntriesOfKind(ctx, []string{"mark"}, 0, size)
	if err != nil || len(marks) != 1 {
		t.Fatalf("marks %v, %v", marks, err)
	}
	storetest.EditLogEntry(t, sqlitetest.Raw(t, filepath.Join(e.dir, "portrait.db")), marks[0].Index, func(data []byte) []byte {
		return bytes.ReplaceAll(data, []byte(alice.Pseudonym), []byte(bob.Pseudonym))
	})

	// The running node read the mark before the change and still knows
	// bob was never shown the notice.
	_, err = e.svc.Gate(ctx, "credit_limit", apply.KindDecision, bob)
	wantErr(t, err, portrait.EDENIED, "CN-11", "pre-use notice")

	// A node that reads the marks now (a restart, another node) finds
	// the mark does not match the signed log: still 403, with the finding.
	log, _ := audit.New("portrait.test/log", e.keys.LogKey())
	led, err := consent.New(consent.Deps{Store: e.store, Point: policy.New(loadCatalog(t)), Log: log, Keys: e.keys}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := apply.New(apply.Deps{Store: e.store, Point: policy.New(loadCatalog(t)), Ledger: led, Keys: e.keys, Log: log}, apply.Options{Assessments: filepath.Join(e.dir, "assessments")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Gate(ctx, "credit_limit", apply.KindDecision, bob)
	wantErr(t, err, portrait.EDENIED, "CN-11", "cannot be shown to have been given")
	if !errors.Is(err, audit.ErrTampered) || !strings.Contains(err.Error(), fmt.Sprintf("entry %d", marks[0].Index)) {
		t.Fatalf("%v, want the log's finding naming entry %d", err, marks[0].Index)
	}
	if log.Failures() == 0 {
		t.Fatal("the integrity failure was not counted")
	}
}

// Invariant 4, 5: the subject keys a node keeps between recommendations
// last one governance generation. After an erasure the subject comes back
// with a new key; a key kept across the erasure would not open its events.
func TestRecommendKeyAfterErasure(t *testing.T) {
	e := newEnv(t)
	e.grant("eve", "personalization")
	e.events(view("eve", "i1", "sports", time.Hour))
	p := e.keys.Pseudonym("eve")
	if r, err := e.svc.Recommend(ctx, operator, p, "home_feed", 5); err != nil || r.Personalization == 0 {
		t.Fatalf("before erasure: %+v, %v", r, err)
	}
	d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: p}, Action: policy.Erase, Caller: policy.Caller{Role: policy.System}})
	if err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, d.Grant) }); err != nil {
		t.Fatal(err)
	}
	e.grant("eve", "personalization")
	e.events(view("eve", "i2", "books", time.Hour))
	r, err := e.svc.Recommend(ctx, operator, p, "home_feed", 5)
	if err != nil || r.Personalization == 0 {
		t.Fatalf("after erasure and consent again: %+v, %v", r, err)
	}
}
