package derive_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
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

type env struct {
	store  portrait.Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	in     *ingest.Ingester
	eng    *derive.Engine
	now    time.Time
	last   derive.Summary // of the latest incremental derivation
	// fence, when set, fences incremental derivation; lastErr is then
	// its latest error.
	fence   derive.Fence
	lastErr error
}

var operator = policy.Caller{Role: policy.Operator, ID: "test"}

func demoCatalog(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

func newEnv(tb testing.TB) *env { return newEnvOn(tb, openSQLite) }

func openSQLite(tb testing.TB) portrait.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "portrait.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// openPostgres opens a throwaway PostgreSQL database (storetest).
func openPostgres(tb testing.TB) portrait.Store {
	s, err := postgres.Open(context.Background(), storetest.PostgresDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// eachStore runs f on SQLite and, where PORTRAIT_TEST_POSTGRES is set, on
// PostgreSQL (invariant 7).
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnvOn(t, openSQLite)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(t, newEnvOn(t, openPostgres))
	})
}

// eachStoreCat is eachStore with the catalog cat.
func eachStoreCat(t *testing.T, cat *catalog.Catalog, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnvCat(t, openSQLite, cat)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(t, newEnvCat(t, openPostgres, cat))
	})
}

func newEnvOn(tb testing.TB, open func(testing.TB) portrait.Store) *env {
	tb.Helper()
	return newEnvCat(tb, open, demoCatalog(tb))
}

// newEnvCat is newEnvOn with the catalog cat.
func newEnvCat(tb testing.TB, open func(testing.TB) portrait.Store, cat *catalog.Catalog) *env {
	tb.Helper()
	e := &env{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	var err error
	e.store = open(tb)
	tb.Cleanup(func() { e.store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	if e.keys, err = keys.New(master); err != nil {
		tb.Fatal(err)
	}
	e.point = policy.New(cat)
	if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
		tb.Fatal(err)
	}
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{Now: e.clock}); err != nil {
		tb.Fatal(err)
	}
	if e.eng, err = derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock}); err != nil {
		tb.Fatal(err)
	}
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock,
		OnStored: func(ctx context.Context, ps []portrait.Pseudonym) {
			if e.fence != nil {
				ctx = derive.WithFence(ctx, e.fence)
			}
			s, err := e.eng.Subjects(ctx, ps)
			e.lastErr = err
			if err != nil && e.fence == nil {
				tb.Errorf("incremental derivation: %v", err)
			}
			e.last = s
		}})
	return e
}

func (e *env) clock() time.Time { return e.now }

func (e *env) consent(tb testing.TB, subject, purpose string, status policy.Status) {
	tb.Helper()
	if _, err := e.ledger.Record(context.Background(), operator, consent.ByID(subject),
		consent.Change{Purpose: purpose, Status: status, NoticeVersion: "1"}); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) ingest(tb testing.TB, events ...portrait.Event) {
	tb.Helper()
	items := make([]ingest.Item, len(events))
	for i := range events {
		items[i].Event = events[i]
	}
	res, _, err := e.in.Ingest(context.Background(), operator, items)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range res {
		if r.Status != ingest.Accepted {
			tb.Fatalf("event %d: %s %+v", r.Index, r.Status, r.Problem)
		}
	}
}

func view(subject, category string, ago time.Duration, now time.Time) portrait.Event {
	return portrait.Event{SubjectID: subject, Type: "view", Time: now.Add(-ago),
		Fields: map[string]any{"item": "i-" + category, "category": category, "price": 10.0}}
}

func purchase(subject string, amount float64, at time.Time) portrait.Event {
	return portrait.Event{SubjectID: subject, Type: "purchase", Time: at,
		Fields: map[string]any{"item": "x", "amount": amount, "quantity": 1.0, "price": amount}}
}

// labels returns the subject's stored label values that staff may read
// for purpose, by label id.
func (e *env) labels(tb testing.TB, subject, purpose string) map[string]derive.View {
	tb.Helper()
	vs, _, err := e.eng.Portrait(context.Background(), operator, e.keys.Pseudonym(subject), purpose, policy.Read)
	if err != nil {
		tb.Fatalf("portrait of %s for %s: %v", subject, purpose, err)
	}
	out := map[string]derive.View{}
	for _, v := range vs {
		out[v.Label] = v
	}
	return out
}

// stored counts the subject's label rows whatever their purpose, through
// a rights (Access) grant, as the subject's export would see them.
func (e *env) stored(tb testing.TB, subject string) []string {
	tb.Helper()
	ps := e.keys.Pseudonym(subject)
	d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
	lvs, err := e.store.Labels(context.Background(), d.Grant)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for _, lv := range lvs {
		ids = append(ids, lv.Label)
	}
	return ids
}

// purchaseRound ingests one purchase for each of sub-0 … sub-(n-1), round
// seconds before now: a benchmark round's new events.
func (e *env) purchaseRound(tb testing.TB, n, round int) {
	tb.Helper()
	evs := make([]portrait.Event, n)
	for i := range n {
		evs[i] = purchase(fmt.Sprintf("sub-%d", i), 1, e.now.Add(-time.Duration(round)*time.Second))
	}
	e.ingest(tb, evs...)
}

func fiveSportsViews(subject string, now time.Time) []portrait.Event {
	var evs []portrait.Event
	for i := range 5 {
		evs = append(evs, view(subject, "sports", time.Duration(i+1)*time.Hour, now))
	}
	return evs
}

// CM-2, invariant 6: a new event derives labels at once, with provenance
// and an explanation in both languages.
func TestIncrementalProvenance(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.consent(t, "alice", "personalization", policy.Granted)
		e.ingest(t, fiveSportsViews("alice", e.now)...)
		got := e.labels(t, "alice", "personalization")
		fan, ok := got["sports_fan"]
		if !ok || !fan.Bool {
			t.Fatalf("sports_fan after 5 sports views: %+v", got)
		}
		if fan.Version != 1 || !fan.Current || fan.EventCount != 5 || fan.Computed != e.now ||
			!fan.From.Equal(e.now.Add(-5*time.Hour)) || !fan.To.Equal(e.now.Add(-time.Hour)) {
			t.Errorf("provenance: %+v", fan.Value)
		}
		if zh := fan.Explanation["zh-CN"]; !strings.Contains(zh, "过去30天浏览了5次") {
			t.Errorf("zh-CN explanation %q", zh)
		}
		if en := fan.Explanation["en"]; !strings.Contains(en, "viewed items with category “sports” 5 times in the last 30 days") {
			t.Errorf("en explanation %q", en)
		}
		if b, ok := got["big_spender"]; !ok || b.Bool {
			t.Errorf("big_spender without purchases: %+v", b)
		}
	})
}

// Only labels whose inputs saw a new event are recomputed.
func TestIncrementalOnlyChangedInputs(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.consent(t, "bob", "personalization", policy.Granted)
		e.ingest(t, view("bob", "books", time.Hour, e.now))
		if e.last.Written != 2 {
			t.Fatalf("first event: %+v, want sports_fan and big_spender written", e.last)
		}
		// A search event feeds neither label.
		e.ingest(t, portrait.Event{SubjectID: "bob", Type: "search", Time: e.now, Fields: map[string]any{"search_query": "tent"}})
		if e.last.Written != 0 || e.last.Unchanged != 2 {
			t.Errorf("search event: %+v, want nothing recomputed", e.last)
		}
		// A purchase feeds big_spender only.
		e.ingest(t, purchase("bob", 6000, e.now.Add(-time.Minute)))
		if e.last.Written != 1 || e.last.Unchanged != 1 {
			t.Errorf("purchase event: %+v, want big_spender alone recomputed", e.last)
		}
		if b := e.labels(t, "bob", "personalization")["big_spender"]; !b.Bool || b.EventCount != 1 {
			t.Errorf("big_spender after a 6000 purchase: %+v", b.Value)
		}
	})
}

// CN-4: a withdrawal removes the labels of that purpose at once, and no
// later event derives them again.
func TestWithdrawalStopsDerivation(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.consent(t, "carol", "personalization", policy.Granted)
		e.ingest(t, fiveSportsViews("carol", e.now)...)
		if got := e.stored(t, "carol"); len(got) != 2 {
			t.Fatalf("before withdrawal: %v", got)
		}
		e.consent(t, "carol", "personalization", policy.Withdrawn)
		if got := e.stored(t, "carol"); len(got) != 0 {
			t.Errorf("after withdrawal: %v stored, want none", got)
		}
		e.ingest(t, view("carol", "sports", time.Minute, e.now))
		if got := e.stored(t, "carol"); len(got) != 0 || e.last.Written != 0 {
			t.Errorf("event after withdrawal derived %v (%+v)", got, e.last)
		}
		// big_spender also serves marketing: consent to marketing alone
		// derives it, and not sports_fan.
		e.consent(t, "carol", "marketing", policy.Granted)
		e.ingest(t, view("carol", "sports", 2*time.Minute, e.now))
		if got := e.stored(t, "carol"); len(got) != 1 || got[0] != "big_spender" {
			t.Errorf("with marketing only: %v, want [big_spender]", got)
		}
	})
}

// LP-3: a deleted label is not derived again until the subject restores it.
func TestSuppressedLabelNotDerived(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.consent(t, "dan", "personalization", policy.Granted)
		e.ingest(t, fiveSportsViews("dan", e.now)...)
		ps := e.keys.Pseudonym("dan")
		if err := e.ledger.Suppress(ctx, operator, ps, "sports_fan", true); err != nil {
			t.Fatal(err)
		}
		e.ingest(t, view("dan", "sports", time.Minute, e.now))
		if got := e.stored(t, "dan"); len(got) != 1 || got[0] != "big_spender" {
			t.Errorf("after deleting sports_fan and a new event: %v", got)
		}
		// A batch run (one subject: too few for the 4 segments, which it
		// reports) derives big_spender and rfm, never sports_fan.
		if s, err := e.eng.All(ctx, nil); s.Written != 2 || err == nil || !strings.Contains(err.Error(), "shopper_segment") {
			t.Fatalf("batch: %+v %v", s, err)
		}
		if got := e.stored(t, "dan"); strings.Join(got, ",") != "big_spender,rfm" {
			t.Errorf("after batch: %v, want big_spender and rfm", got)
		}
		_, withheld, err := e.eng.Portrait(ctx, operator, ps, "personalization", policy.Read)
		if err != nil || len(withheld) != 0 {
			t.Errorf("portrait after delete: withheld %v, %v", withheld, err)
		}
		if err := e.ledger.Unsuppress(ctx, operator, ps, "sports_fan"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.Subjects(ctx, []portrait.Pseudonym{ps}); err != nil {
			t.Fatal(err)
		}
		if fan := e.labels(t, "dan", "personalization")["sports_fan"]; !fan.Bool {
			t.Errorf("restored sports_fan not derived again: %+v", fan)
		}
	})
}

// SR-7: an objection to profiling, or a restriction, stops derivation and
// removes the labels.
func TestObjectionAndRestriction(t *testing.T) {
	for _, flags := range []portrait.Flags{{ObjectProfiling: true, Personalization: 100}, {Restricted: true, Personalization: 100}} {
		t.Run(fmt.Sprintf("%+v", flags), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.consent(t, "erin", "personalization", policy.Granted)
			e.ingest(t, fiveSportsViews("erin", e.now)...)
			ps := e.keys.Pseudonym("erin")
			if err := e.ledger.SetFlags(ctx, operator, ps, flags, consent.KindObjection); err != nil {
				t.Fatal(err)
			}
			s, err := e.eng.Subjects(ctx, []portrait.Pseudonym{ps})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.stored(t, "erin"); len(got) != 0 || s.Written != 0 {
				t.Errorf("after %+v: %v stored, %+v", flags, got, s)
			}
		})
	}
}

// LP-1: a new label version recomputes the stored values of the old one.
func TestNewVersionRecomputes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.consent(t, "fay", "personalization", policy.Granted)
	e.ingest(t, fiveSportsViews("fay", e.now)...)
	cat := demoCatalog(t)
	cat.Label("sports_fan").Version = 2
	cat.Label("sports_fan").Rule = `count("view", "30d", "category", "sports") >= 6`
	e.point.SetCatalog(cat)
	if v := e.labels(t, "fay", "personalization")["sports_fan"]; v.Current || v.Version != 1 {
		t.Fatalf("before recomputation: %+v", v.Value)
	}
	s, err := e.eng.Subjects(ctx, []portrait.Pseudonym{e.keys.Pseudonym("fay")})
	if err != nil {
		t.Fatal(err)
	}
	v := e.labels(t, "fay", "personalization")["sports_fan"]
	if s.Written != 1 || s.Unchanged != 1 || v.Version != 2 || !v.Current || v.Bool {
		t.Errorf("after version 2 (needs 6 views): %+v %+v", s, v.Value)
	}
}

// Batch derivation: RFM quintiles and segments over the population,
// deterministic, and k larger than the population refused by name.
func TestBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var evs []portrait.Event
		for i := range 40 {
			id := fmt.Sprintf("s%02d", i)
			e.consent(t, id, "personalization", policy.Granted)
			for j := range i%7 + 1 {
				evs = append(evs, purchase(id, float64(10+i*j), e.now.Add(-time.Duration(i*24+j)*time.Hour)))
			}
		}
		e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock}) // no incremental hook
		e.ingest(t, evs...)
		var calls, lastTotal int
		s1, err := e.eng.All(ctx, func(done, total int) { calls++; lastTotal = total })
		if err != nil {
			t.Fatal(err)
		}
		if s1.Subjects != 40 || s1.Events != len(evs) || calls == 0 || lastTotal != 40 {
			t.Errorf("summary %+v, progress calls %d total %d", s1, calls, lastTotal)
		}
		first := map[string]derive.View{}
		classes := map[string]int{}
		for i := range 40 {
			got := e.labels(t, fmt.Sprintf("s%02d", i), "personalization")
			rfm, seg := got["rfm"], got["shopper_segment"]
			if rfm.RFM == nil || seg.Kind != catalog.KindSegment || len(seg.Facts) != 1 || seg.Facts[0].Text["en"] == "" {
				t.Fatalf("s%02d: rfm %+v segment %+v", i, rfm, seg)
			}
			classes[rfm.RFM.Class]++
			first[fmt.Sprintf("s%02d", i)] = seg
		}
		if len(classes) < 3 {
			t.Errorf("RFM classes %v: want a spread", classes)
		}
		if _, err := e.eng.All(ctx, nil); err != nil {
			t.Fatal(err)
		}
		for id, v := range first {
			again := e.labels(t, id, "personalization")["shopper_segment"]
			if again.Segment != v.Segment || again.Facts[0].Text["en"] != v.Facts[0].Text["en"] {
				t.Errorf("%s: segment %d (%s) then %d (%s)", id, v.Segment, v.Facts[0].Text["en"], again.Segment, again.Facts[0].Text["en"])
			}
		}
	})
}

func TestBatchKLargerThanPopulation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
	for _, id := range []string{"a", "b", "c"} {
		e.consent(t, id, "personalization", policy.Granted)
		e.ingest(t, purchase(id, 10, e.now.Add(-time.Hour)))
	}
	s, err := e.eng.All(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), `"shopper_segment"`) || !strings.Contains(err.Error(), "larger than the population") {
		t.Fatalf("err = %v, want k > population refused naming shopper_segment", err)
	}
	got := e.labels(t, "a", "personalization")
	if _, ok := got["shopper_segment"]; ok {
		t.Errorf("a segment was stored despite the refusal")
	}
	if _, ok := got["rfm"]; !ok || s.Written == 0 {
		t.Errorf("the other labels should still be derived: %v %+v", got, s)
	}
}

// RFM scores of the batch equal label.RFM's over the same events.
func TestRFMMatchesLabel(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
	subjects := map[string][]label.Event{}
	var evs []portrait.Event
	for i := range 30 {
		id := fmt.Sprintf("r%02d", i)
		e.consent(t, id, "personalization", policy.Granted)
		for j := range (i * 7) % 5 {
			at := e.now.Add(-time.Duration((i*13+j*5)%300) * 24 * time.Hour)
			amt := float64((i*31+j*17)%200 + 1)
			evs = append(evs, purchase(id, amt, at))
			subjects[string(e.keys.Pseudonym(id))] = append(subjects[string(e.keys.Pseudonym(id))], label.Event{Type: "purchase", Time: at, Fields: map[string]any{"amount": amt}})
		}
		if subjects[string(e.keys.Pseudonym(id))] == nil {
			subjects[string(e.keys.Pseudonym(id))] = []label.Event{}
		}
	}
	e.ingest(t, evs...)
	if _, err := e.eng.All(ctx, nil); err != nil && !strings.Contains(err.Error(), "shopper_segment") {
		t.Fatal(err)
	}
	want := label.RFM(e.now, subjects, "purchase", "amount")
	for i := range 30 {
		id := fmt.Sprintf("r%02d", i)
		got := e.labels(t, id, "personalization")["rfm"].RFM
		w := want[string(e.keys.Pseudonym(id))]
		if got == nil || got.R != w.R || got.F != w.F || got.M != w.M || got.Class != w.Class {
			t.Errorf("%s: got %+v, label.RFM %+v", id, got, w)
		}
	}
}

// Invariant 4: the audit records of derivation hold no subject ids or pseudonyms.
func TestAuditHoldsNoPersonalData(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.consent(t, "gina", "personalization", policy.Granted)
	e.ingest(t, fiveSportsViews("gina", e.now)...)
	n, err := e.store.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := e.store.LogEntries(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, en := range entries {
		if !strings.Contains(string(en.Data), `"kind":"derive"`) {
			continue
		}
		found = true
		if strings.Contains(string(en.Data), "gina") || strings.Contains(string(en.Data), string(e.keys.Pseudonym("gina"))) {
			t.Errorf("derive audit record names the subject: %s", en.Data)
		}
		if !strings.Contains(string(en.Data), "sports_fan") {
			t.Errorf("derive audit record lacks label ids: %s", en.Data)
		}
	}
	if !found {
		t.Error("no derive audit record")
	}
}

// BenchmarkIncremental measures Engine.Subjects for one subject right
// after one new event (the subject already has 50 events and derived
// labels, and gains one purchase per round, so b.N rounds end at 50+b.N
// events: compare runs of the same -benchtime), the work ingest's OnStored
// hook does; it reports the median.
//
// What one derivation includes, timed: the read of the governance
// generation (the proof that the consent states and the memo kept in
// memory are current: another node's withdrawal or erasure moves it), the
// read of the subject's events after the memo's mark, decrypting and
// deciding what is new, evaluating the labels whose inputs changed,
// sealing them, and the write transaction that stores the changed labels
// with their audit record, committed. What it does not include: the
// ingest of the new event (untimed), and reading the subject's whole
// history (the memo holds it). A lone call pays a whole write
// transaction; BenchmarkIncrementalConcurrent/page=64 is the queue's
// shape, where one transaction serves a page.
func BenchmarkIncremental(b *testing.B) { benchIncremental(b, newEnv(b)) }

func benchIncremental(b *testing.B, e *env) {
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
	e.consent(b, "zed", "personalization", policy.Granted)
	var evs []portrait.Event
	for i := range 50 {
		evs = append(evs, view("zed", "sports", time.Duration(i+1)*time.Hour, e.now))
	}
	e.ingest(b, evs...)
	ctx := context.Background()
	ps := []portrait.Pseudonym{e.keys.Pseudonym("zed")}
	if _, err := e.eng.Subjects(ctx, ps); err != nil {
		b.Fatal(err)
	}
	var times, compute, store []time.Duration
	var cpu time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		e.ingest(b, purchase("zed", 1, e.now.Add(-time.Duration(i)*time.Second)))
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		sum, err := e.eng.Subjects(ctx, ps)
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		cpu += cpuTime() - cpu0
		compute, store = append(compute, sum.Compute), append(store, sum.Store)
	}
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds()) / 1e3
	}
	b.ReportMetric(median(times), "median-µs")
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
	b.ReportMetric(median(compute), "compute-median-µs")
	b.ReportMetric(median(store), "store-median-µs")
	b.ReportMetric(50+float64(b.N+1)/2, "mean-history-events")
}

// racingStore runs before, once, ahead of the first write transaction:
// a governance change that commits while a derivation is in flight.
type racingStore struct {
	portrait.Store
	before func()
}

func (r *racingStore) Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error {
	if f := r.before; f != nil {
		r.before = nil
		f()
	}
	return r.Store.Update(ctx, fn)
}

// CN-4, invariant 5: a withdrawal that commits after a derivation read the
// subject's consent, but before it wrote, is not overwritten: the write
// sees the governance generation moved and decides each value again.
func TestWithdrawalRacingDerivation(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.consent(t, "erin", "personalization", policy.Granted)
		plain := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
		var items []ingest.Item
		for _, ev := range fiveSportsViews("erin", e.now) {
			items = append(items, ingest.Item{Event: ev})
		}
		if _, _, err := plain.Ingest(context.Background(), operator, items); err != nil {
			t.Fatal(err)
		}
		race := &racingStore{Store: e.store, before: func() { e.consent(t, "erin", "personalization", policy.Withdrawn) }}
		eng, err := derive.New(derive.Deps{Store: race, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Subjects(context.Background(), []portrait.Pseudonym{e.keys.Pseudonym("erin")}); err != nil {
			t.Fatal(err)
		}
		if got := e.stored(t, "erin"); len(got) != 0 {
			t.Errorf("labels %v written over a withdrawal that raced the derivation", got)
		}
	})
}

// The background queue derives what ingest hands it, each subject once,
// and derives in line when full rather than dropping work.
func TestQueue(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q := e.eng.NewQueue(ctx, 1, 0)
	in := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock, OnStored: q.Add})
	for _, s := range []string{"fay", "gus"} {
		e.consent(t, s, "personalization", policy.Granted)
	}
	var items []ingest.Item
	for _, s := range []string{"fay", "gus"} {
		for _, ev := range fiveSportsViews(s, e.now) {
			items = append(items, ingest.Item{Event: ev})
		}
	}
	// Two subjects in a queue of one: derived in line.
	if _, _, err := in.Ingest(ctx, operator, items); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"fay", "gus"} {
		if !e.labels(t, s, "personalization")["sports_fan"].Bool {
			t.Errorf("%s: sports_fan not derived in line", s)
		}
	}
	e.consent(t, "hal", "personalization", policy.Granted)
	items = items[:0]
	for _, ev := range fiveSportsViews("hal", e.now) {
		items = append(items, ingest.Item{Event: ev})
	}
	if _, _, err := in.Ingest(ctx, operator, items); err != nil {
		t.Fatal(err)
	}
	q.Wait()
	if !e.labels(t, "hal", "personalization")["sports_fan"].Bool {
		t.Error("hal: sports_fan not derived by the queue")
	}
}

// CM-2: one subject's failure never stops a batch derivation, and no label
// is non-finite. Before, two stored amounts of 1e308 (allowed here by a
// catalog max) summed to +Inf, the label could not be encoded and the run
// stopped with an error for every later subject; an unreadable event did
// the same.
func TestOneSubjectFailureDoesNotStopBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		big, small := 1e308, -1e308
		for _, f := range []string{"amount", "price"} {
			e.point.Catalog().Field(f).Min, e.point.Catalog().Field(f).Max = &small, &big
		}
		e.consent(t, "huge", "personalization", policy.Granted)
		e.ingest(t, purchase("huge", 1e308, e.now.Add(-time.Hour)), purchase("huge", 1e308, e.now.Add(-2*time.Hour)))
		if e.last.Failed != 0 || len(e.last.Failures) != 0 {
			t.Errorf("incremental derivation of huge amounts: %+v", e.last)
		}
		var others []string
		for i := range 8 {
			id := fmt.Sprintf("shopper-%d", i)
			others = append(others, id)
			e.consent(t, id, "personalization", policy.Granted)
			e.ingest(t, purchase(id, float64(100*(i+1)), e.now.Add(-time.Duration(i+1)*time.Hour)))
		}
		// A subject whose stored event cannot be opened.
		e.consent(t, "broken", "personalization", policy.Granted)
		e.ingest(t, purchase("broken", 10, e.now.Add(-time.Hour)))
		broken := e.keys.Pseudonym("broken")
		g := storetest.Grant(t, broken, policy.Collect, "item")
		err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{{Grant: g,
				Pseudonym: broken, Type: "purchase", Time: e.now.Add(-time.Minute), Sealed: []byte("not a ciphertext of this subject"),
				Expires: e.now.Add(time.Hour)}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := e.eng.All(ctx, nil)
		if err != nil {
			t.Fatalf("batch stopped: %v (%+v)", err, sum)
		}
		if sum.Failed != 1 || len(sum.Failures) != 1 || !strings.Contains(sum.Failures[0], string(broken)) {
			t.Errorf("failures: %d %q, want one naming the broken subject", sum.Failed, sum.Failures)
		}
		for _, id := range append(others, "huge") {
			if got := e.stored(t, id); !slices.Contains(got, "big_spender") || !slices.Contains(got, "rfm") {
				t.Errorf("%s: labels %v after the batch", id, got)
			}
		}
		v := e.labels(t, "huge", "personalization")["big_spender"]
		if !v.Bool {
			t.Errorf("huge's big_spender = %+v", v)
		}
	})
}

// fenceFunc is a derive.Fence.
type fenceFunc func(pseudonyms []portrait.Pseudonym) error

func (f fenceFunc) Check(_ context.Context, _ portrait.Tx, pseudonyms []portrait.Pseudonym) error {
	return f(pseudonyms)
}

// A fenced derivation asks its fence inside the write transaction, with
// the page's subjects, and writes nothing when the fence refuses (a node
// that lost the subjects' bucket, package cluster).
func TestFenceRefusesWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		e.consent(t, "erin", "personalization", policy.Granted)
		refused := errors.New("bucket taken by another node")
		var asked []portrait.Pseudonym
		e.fence = fenceFunc(func(ps []portrait.Pseudonym) error { asked = append(asked, ps...); return refused })
		e.ingest(t, fiveSportsViews("erin", e.now)...)
		if !errors.Is(e.lastErr, refused) {
			t.Fatalf("fenced derivation: %v, want the fence's refusal", e.lastErr)
		}
		if want := e.keys.Pseudonym("erin"); !slices.Contains(asked, want) {
			t.Errorf("fence asked about %v, not erin's pseudonym", asked)
		}
		if got := e.stored(t, "erin"); len(got) != 0 {
			t.Errorf("labels %v stored though the fence refused", got)
		}
		e.fence = fenceFunc(func([]portrait.Pseudonym) error { return nil })
		e.ingest(t, view("erin", "sports", time.Minute, e.now))
		if e.lastErr != nil || len(e.stored(t, "erin")) != 2 {
			t.Errorf("fence allowing: %v, stored %v", e.lastErr, e.stored(t, "erin"))
		}
	})
}
