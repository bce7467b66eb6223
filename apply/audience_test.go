package apply_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

var audienceOperator = policy.Caller{Role: policy.Operator, ID: "test"}

type audienceEnv struct {
	store  portrait.Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	in     *ingest.Ingester
	eng    *derive.Engine
	aud    *apply.Audiences
	log    *audit.Log
}

func audienceCatalog(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

func newAudienceEnv(tb testing.TB) *audienceEnv {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "portrait.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return newAudienceEnvOn(tb, st)
}

// onEachAudienceStore runs f on an audience env over SQLite and, with
// PORTRAIT_TEST_POSTGRES set, over PostgreSQL.
func onEachAudienceStore(t *testing.T, f func(t *testing.T, e *audienceEnv)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newAudienceEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		st, err := postgres.Open(context.Background(), storetest.PostgresDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		f(t, newAudienceEnvOn(t, st))
	})
}

func newAudienceEnvOn(tb testing.TB, st portrait.Store) *audienceEnv {
	tb.Helper()
	e := &audienceEnv{store: st}
	var err error
	tb.Cleanup(func() { e.store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	if e.keys, err = keys.New(master); err != nil {
		tb.Fatal(err)
	}
	e.point = policy.New(audienceCatalog(tb))
	log, err := audit.New("portrait.test/log", e.keys.LogKey())
	if err != nil {
		tb.Fatal(err)
	}
	e.log = log
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: log, Keys: e.keys}, consent.Options{}); err != nil {
		tb.Fatal(err)
	}
	if e.eng, err = derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: log}, derive.Options{}); err != nil {
		tb.Fatal(err)
	}
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: log}, ingest.Options{})
	e.aud = apply.NewAudiences(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: log})
	return e
}

// populate stores subjects with 5 sports views and one purchase each, all
// granted personalization, and derives their labels in a batch.
func (e *audienceEnv) populate(tb testing.TB, ids ...string) {
	tb.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	var items []ingest.Item
	for k, id := range ids {
		if _, err := e.ledger.Record(ctx, audienceOperator, consent.ByID(id), consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			tb.Fatal(err)
		}
		for i := range 5 {
			items = append(items, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "view", Time: now.Add(-time.Duration(i+1) * time.Hour),
				Fields: map[string]any{"item": "s", "category": "sports", "price": 20.0}}})
		}
		items = append(items, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "purchase", Time: now.Add(-time.Duration(k+1) * 24 * time.Hour),
			Fields: map[string]any{"item": "s", "amount": float64(100 * (k + 1)), "quantity": 1.0, "price": 20.0}}})
	}
	if _, _, err := e.in.Ingest(ctx, audienceOperator, items); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.eng.All(ctx, nil); err != nil {
		tb.Fatal(err)
	}
}

func wantRefusal(t *testing.T, err error, code, requirement, inMessage string) {
	t.Helper()
	var pe *portrait.Error
	if !errors.As(err, &pe) || pe.Code != code || pe.Requirement != requirement || !strings.Contains(pe.Message, inMessage) {
		t.Errorf("got %v, want %s/%s mentioning %q", err, code, requirement, inMessage)
	}
}

// CM-6, LP-1, SM-2: bad audience requests are refused naming the declaration.
func TestAudienceRefusals(t *testing.T) {
	cat := audienceCatalog(t)
	sens := audienceCatalog(t)
	sens.Label("sports_fan").Sensitive = true
	for _, tc := range []struct {
		name                    string
		cat                     *catalog.Catalog
		req                     apply.Request
		code, requirement, says string
	}{
		{"identified without the purpose allowing it", cat, apply.Request{Purpose: "marketing", Expression: "labels.big_spender", Output: "identified"}, portrait.EDENIED, "CM-6", "identified_output"},
		{"undeclared label", cat, apply.Request{Purpose: "personalization", Expression: "labels.sports_fan && labels.gambler"}, portrait.EINVALID, "LP-1", `"gambler"`},
		{"label of another purpose", cat, apply.Request{Purpose: "marketing", Expression: "labels.sports_fan"}, portrait.EINVALID, "LP-1", `label "sports_fan" is not declared for purpose "marketing"`},
		{"sensitive label without separate consent", sens, apply.Request{Purpose: "personalization", Expression: "labels.sports_fan"}, portrait.EINVALID, "SM-2", `"sports_fan" is sensitive`},
		{"does not compile", cat, apply.Request{Purpose: "personalization", Expression: "labels.sports_fan &&"}, portrait.EINVALID, "", "does not compile"},
		{"not bool", cat, apply.Request{Purpose: "personalization", Expression: "1 + 2"}, portrait.EINVALID, "", "must return bool"},
		{"labels as a whole", cat, apply.Request{Purpose: "personalization", Expression: "size(labels) > 0"}, portrait.EINVALID, "", "name each label"},
		{"undeclared purpose", cat, apply.Request{Purpose: "resale", Expression: "labels.sports_fan"}, portrait.EINVALID, "CN-1", `"resale"`},
		{"bad output", cat, apply.Request{Purpose: "personalization", Expression: "labels.sports_fan", Output: "csv"}, portrait.EINVALID, "", "want aggregate"},
		{"by a rule label", cat, apply.Request{Purpose: "personalization", Expression: "labels.sports_fan", By: "big_spender"}, portrait.EINVALID, "", "segment or RFM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := apply.Compile(tc.cat, tc.req)
			wantRefusal(t, err, tc.code, tc.requirement, tc.says)
		})
	}
}

// CM-6, LP-3, SR-7, CN-4: an audience includes only subjects the decision
// point allows; restricted, objecting, withdrawn and suppressing subjects
// are excluded; the default output is aggregate; every materialisation is
// audited with the expression's hash, purpose and size.
func TestAudienceExclusions(t *testing.T) {
	e := newAudienceEnv(t)
	ctx := context.Background()
	e.populate(t, "ann", "ben", "cat", "dov", "eve", "fox")
	ps := func(id string) portrait.Pseudonym { return e.keys.Pseudonym(id) }
	if err := e.ledger.SetFlags(ctx, audienceOperator, portrait.Pseudonym(ps("ben")), portrait.Flags{Restricted: true, Personalization: 100}, consent.KindRestriction); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.SetFlags(ctx, audienceOperator, portrait.Pseudonym(ps("cat")), portrait.Flags{ObjectProfiling: true, Personalization: 100}, consent.KindObjection); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Suppress(ctx, audienceOperator, portrait.Pseudonym(ps("dov")), "sports_fan", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ledger.Record(ctx, audienceOperator, consent.ByID("eve"), consent.Change{Purpose: "personalization", Status: policy.Withdrawn}); err != nil {
		t.Fatal(err)
	}
	expr := `labels.sports_fan && labels.rfm.class != ""`
	res, err := e.aud.Materialize(ctx, audienceOperator, apply.Request{Purpose: "personalization", Expression: expr, Output: "pseudonymous"})
	if err != nil {
		t.Fatal(err)
	}
	want := []portrait.Pseudonym{ps("ann"), ps("fox")}
	slices.Sort(want)
	got := slices.Clone(res.Pseudonyms)
	slices.Sort(got)
	if !slices.Equal(got, want) || res.Size != 2 || res.Excluded != 4 {
		t.Errorf("pseudonymous audience %v (size %d, excluded %d), want ann and fox only", got, res.Size, res.Excluded)
	}
	agg, err := e.aud.Materialize(ctx, audienceOperator, apply.Request{Purpose: "personalization", Expression: expr})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range agg.Counts {
		total += n
	}
	if agg.Output != "aggregate" || agg.Pseudonyms != nil || agg.By != "rfm" || total != 2 {
		t.Errorf("default output: %+v, want aggregate counts by rfm class summing to 2", agg)
	}
	// The audit log holds the materialisation, without the subjects.
	entry, err := e.store.LogEntries(ctx, agg.LogIndex, agg.LogIndex+1)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(expr))
	data := string(entry[0].Data)
	for _, s := range []string{`"kind":"audience"`, hex.EncodeToString(sum[:]), `"purpose":"personalization"`, `"size":2`} {
		if !strings.Contains(data, s) {
			t.Errorf("audit record %s lacks %s", data, s)
		}
	}
	if strings.Contains(data, string(ps("ann"))) {
		t.Errorf("audit record names a member: %s", data)
	}
}

// CM-6: identified output only where the purpose declares it.
func TestAudienceIdentified(t *testing.T) {
	onEachAudienceStore(t, func(t *testing.T, e *audienceEnv) {
		ctx := context.Background()
		e.populate(t, "gus", "hal", "ivy", "jon")
		_, err := e.aud.Materialize(ctx, audienceOperator, apply.Request{Purpose: "personalization", Expression: "labels.sports_fan", Output: "identified"})
		wantRefusal(t, err, portrait.EDENIED, "CM-6", "identified_output")
		// The flag alone is not enough: a signed assessment of an audience
		// use-case for the purpose must be on record (CM-6).
		cat := audienceCatalog(t)
		cat.Purpose("personalization").Identified = true
		cat.Purpose("personalization").Assessment = "PIA-TEST-ID"
		cat.UseCases = append(cat.UseCases, catalog.UseCase{ID: "named_list", Kind: catalog.UseAudience, Tier: catalog.TierLimited,
			Purposes: []string{"personalization"}, Labels: []string{"sports_fan"}, Owner: "growth-team",
			Description: catalog.Text{"zh-CN": "名单", "en": "Named list"}})
		cat.Index()
		e.point.SetCatalog(cat)
		req := apply.Request{Purpose: "personalization", Expression: "labels.sports_fan", Output: "identified"}
		_, err = e.aud.Materialize(ctx, audienceOperator, req)
		wantRefusal(t, err, portrait.EDENIED, "CM-6", "keeps none")
		svc, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, apply.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e.aud.Assessments = svc
		_, err = e.aud.Materialize(ctx, audienceOperator, req)
		wantRefusal(t, err, portrait.EDENIED, "CM-6", "portrait assess --usecase named_list")
		if _, err := svc.Assess(ctx, policy.Caller{Role: policy.Admin, ID: "admin"}, "named_list", demo.Answers()); err != nil {
			t.Fatal(err)
		}
		res, err := e.aud.Materialize(ctx, audienceOperator, req)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(res.Subjects)
		if !slices.Equal(res.Subjects, []string{"gus", "hal", "ivy", "jon"}) || res.Pseudonyms != nil {
			t.Errorf("identified audience: %+v", res)
		}
	})
}

// BenchmarkAudience1M selects from 10^6 subjects held in memory (a Table
// filled as Materialize fills it from the store) by a two-label
// expression, deciding each subject first.
func BenchmarkAudience1M(b *testing.B) {
	const n = 1_000_000
	cat := audienceCatalog(b)
	point := policy.New(cat)
	x, err := apply.Compile(cat, apply.Request{Purpose: "personalization", Expression: `labels.sports_fan && labels.rfm.class == "champions"`})
	if err != nil {
		b.Fatal(err)
	}
	classes := []string{"champions", "loyal", "new", "potential", "need_attention", "at_risk", "hibernating"}
	granted := map[string]policy.Consent{"personalization": {Status: policy.Granted, NoticeVersion: "1"}}
	// Governance states are shared among subjects to keep the benchmark's
	// memory down; deciding costs the same.
	states := []*policy.State{
		{Pseudonym: "p", Consents: granted, Personalization: 100},
		{Pseudonym: "p", Consents: granted, Personalization: 100, Restricted: true},
		{Pseudonym: "p", Consents: granted, Personalization: 100, ObjectProfiling: true},
		{Pseudonym: "p", Consents: granted, Personalization: 100, Suppressed: map[string]bool{"sports_fan": true}},
	}
	t := apply.NewTable(x.Labels)
	for i := range n {
		rfm := &label.RFMScore{R: i % 5, F: i % 4, M: i % 3, Class: classes[i%len(classes)]}
		t.Add(portrait.Pseudonym(fmt.Sprint(i)), states[i%len(states)*(i%10/9)], map[string]derive.Stored{
			"sports_fan": {Value: label.Value{Label: "sports_fan", Kind: "rule", Bool: i%2 == 0}},
			"rfm":        {Value: label.Value{Label: "rfm", Kind: "rfm"}, RFM: rfm},
		})
	}
	b.ResetTimer()
	var size int
	for b.Loop() {
		members, _ := x.Select(point, t, audienceOperator)
		size = len(members)
	}
	b.ReportMetric(float64(size), "members")
}

// An audience expression's string literals are matched against the rule
// pack however they are spelt (LP-2).
func TestAudienceLiterals(t *testing.T) {
	cat := audienceCatalog(t)
	for _, lit := range []string{"宗.教", "ＭＵＳＬＩＭ", "同性戀", "shao shu min zu"} {
		_, err := apply.Compile(cat, apply.Request{Purpose: "marketing", Expression: `labels.rfm.class == "` + lit + `"`})
		wantRefusal(t, err, portrait.EINVALID, "LP-2", "rule LEX-")
	}
	if _, err := apply.Compile(cat, apply.Request{Purpose: "marketing", Expression: `labels.rfm.class == "champions"`}); err != nil {
		t.Errorf("ordinary literal refused: %v", err)
	}
}
