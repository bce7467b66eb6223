package rights_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

type env struct {
	path   string // the SQLite file, on SQLite
	pgURL  string // the throwaway database, on PostgreSQL
	store  portrait.Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	in     *ingest.Ingester
	svc    *rights.Service
	now    time.Time
}

var operator = policy.Caller{Role: policy.Operator, ID: "op-1"}

// backend opens a store for a test and says where its bytes live.
type backend func(tb testing.TB, e *env) portrait.Store

func onSQLite(tb testing.TB, e *env) portrait.Store {
	e.path = filepath.Join(tb.TempDir(), "portrait.db")
	s, err := sqlite.Open(context.Background(), e.path)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// onPostgres opens a throwaway PostgreSQL database (storetest).
func onPostgres(tb testing.TB, e *env) portrait.Store {
	e.pgURL = storetest.PostgresDatabase(tb)
	s, err := postgres.Open(context.Background(), e.pgURL)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// eachStore runs f on SQLite and, where PORTRAIT_TEST_POSTGRES is set, on
// PostgreSQL (invariant 7).
func eachStore(t *testing.T, opts rights.Options, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnvOn(t, onSQLite, opts)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(t, newEnvOn(t, onPostgres, opts))
	})
}

// benchStores is eachStore for benchmarks.
func benchStores(b *testing.B, f func(b *testing.B, open backend)) {
	b.Run("sqlite", func(b *testing.B) { f(b, onSQLite) })
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			b.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(b, onPostgres)
	})
}

func newEnv(t testing.TB, opts rights.Options) *env { return newEnvOn(t, onSQLite, opts) }

func newEnvOn(t testing.TB, open backend, opts rights.Options) *env {
	t.Helper()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{point: policy.New(cat), now: time.Now().UTC()}
	e.store = open(t, e)
	t.Cleanup(func() { e.store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	if e.keys, err = keys.New(master); err != nil {
		t.Fatal(err)
	}
	if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
		t.Fatal(err)
	}
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Logger: logger})
	opts.Logger = logger
	if e.svc, err = rights.New(rights.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, opts); err != nil {
		t.Fatal(err)
	}
	return e
}

// seed stores a subject with consent to personalization, n view events,
// a profile and a sports_fan label; it returns the pseudonym.
func (e *env) seed(t testing.TB, id string, n int) portrait.Pseudonym {
	t.Helper()
	ctx := context.Background()
	if _, err := e.ledger.Record(ctx, operator, consent.ByID(id), consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	items := []ingest.Item{{Event: portrait.Event{SubjectID: id, Type: "profile", Time: e.now.Add(-time.Hour),
		Fields: map[string]any{"city": "Marker-City-" + id, "age": json.Number("33")}}}}
	for i := range n {
		items = append(items, ingest.Item{Event: portrait.Event{SubjectID: id, Type: "view", Time: e.now.Add(-time.Duration(i+1) * time.Second),
			Fields: map[string]any{"item": fmt.Sprintf("Marker-Item-%s-%d", id, i), "category": "sports"}}})
	}
	for len(items) > 0 {
		k := min(len(items), 5000)
		if _, sum, err := e.in.Ingest(ctx, operator, items[:k]); err != nil || sum.Accepted != k {
			t.Fatalf("ingest: %v %+v", err, sum)
		}
		items = items[k:]
	}
	p := e.keys.Pseudonym(id)
	e.putLabel(t, p, "sports_fan")
	return p
}

func (e *env) putLabel(t testing.TB, p portrait.Pseudonym, id string) {
	t.Helper()
	ctx := context.Background()
	st, err := e.ledger.State(ctx, portrait.Pseudonym(p))
	if err != nil {
		t.Fatal(err)
	}
	d := e.point.Decide(policy.Request{State: st, Purpose: "personalization", Action: policy.Derive, Caller: policy.Caller{Role: policy.System}})
	if !d.Allow {
		t.Fatal(d.Reasons)
	}
	subs, _ := e.store.Subjects(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
	ci, err := e.keys.Open(subs[portrait.Pseudonym(p)])
	if err != nil {
		t.Fatal(err)
	}
	v := label.Value{Label: id, Version: 1, Kind: catalog.KindRule, Bool: true, Confidence: 1, Inputs: []string{"category"},
		EventCount: 7, Computed: e.now, Facts: []label.Fact{{Func: "count", Type: "view", Field: "category", Equals: "sports", Window: "30d", Value: 7}}}
	sealed, err := rights.SealLabel(ci, portrait.Pseudonym(p), v)
	if err != nil {
		t.Fatal(err)
	}
	err = e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: d.Grant, Pseudonym: portrait.Pseudonym(p), Label: id, Version: 1, Sealed: sealed, Computed: e.now}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func self(p string) policy.Caller {
	return policy.Caller{Role: policy.Subject, Pseudonym: portrait.Pseudonym(p)}
}

func code(err error) string {
	var d *policy.Denied
	if errors.As(err, &d) {
		return portrait.EDENIED
	}
	return portrait.ErrorCode(err)
}

// SR-1, SR-2: access returns decrypted fields, events, consents with
// history, labels with provenance and explanation; the signed export
// verifies offline and a changed byte does not.
func TestAccessExport(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.seed(t, "alice", 2)
		tricky := []ingest.Item{{Event: portrait.Event{SubjectID: "alice", Type: "view", Time: e.now.Add(-time.Minute),
			Fields: map[string]any{"item": "<b>&\"中文\u2028", "category": "sports"}}}}
		if _, sum, err := e.in.Ingest(ctx, operator, tricky); err != nil || sum.Accepted != 1 {
			t.Fatalf("ingest: %v %+v", err, sum)
		}
		doc, err := e.svc.Access(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		// The export's own encoder writes exactly what encoding/json would.
		fast, err := doc.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if std, _ := json.Marshal(doc); !bytes.Equal(fast, std) {
			t.Errorf("AppendJSON differs from json.Marshal:\n%s\n%s", fast, std)
		}
		checkSchema(t, fast)
		if doc.Schema != rights.Schema || doc.SubjectID != "alice" || len(doc.Events) != 4 {
			t.Fatalf("doc: schema %q id %q events %d", doc.Schema, doc.SubjectID, len(doc.Events))
		}
		prof := map[string]any{}
		for _, f := range doc.Profile {
			prof[f.Field] = f.Value
			if f.Source != "event" || f.Category == "" {
				t.Errorf("profile provenance: %+v", f)
			}
		}
		if prof["city"] != "Marker-City-alice" || prof["age"] != float64(33) {
			t.Errorf("profile: %v", prof)
		}
		if len(doc.History) != 1 || doc.History[0].Status != "granted" {
			t.Errorf("history: %+v", doc.History)
		}
		if len(doc.Labels) != 1 || doc.Labels[0].Value == nil || !strings.Contains(doc.Labels[0].Explanation["zh-CN"], "运动爱好者") ||
			!strings.Contains(doc.Labels[0].Explanation["en"], "Sports fan") || doc.Labels[0].Value.EventCount != 7 {
			t.Errorf("labels: %+v", doc.Labels)
		}
		if len(doc.Cases) == 0 || doc.Cases[len(doc.Cases)-1].Type != rights.TypeAccess || doc.Cases[len(doc.Cases)-1].Status != rights.StatusFulfilled {
			t.Errorf("access is not a fulfilled case: %+v", doc.Cases)
		}

		b, err := e.svc.Export(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(b)
		pub := e.keys.ReceiptKey().Public().(ed25519.PublicKey)
		got, err := rights.VerifyExport(data, pub)
		if err != nil || got.SubjectID != "alice" || len(got.Events) != 4 {
			t.Fatalf("verify export: %v", err)
		}
		tampered := bytes.Replace(data, []byte("Marker-City-alice"), []byte("Marker-City-alicf"), 1)
		if bytes.Equal(tampered, data) {
			t.Fatal("the bundle does not carry the city in a form this test can alter")
		}
		if _, err := rights.VerifyExport(tampered, pub); !errors.Is(err, rights.ErrSignature) {
			t.Errorf("tampered export: %v", err)
		}
		other, _, _ := ed25519.GenerateKey(nil)
		if _, err := rights.VerifyExport(data, other); !errors.Is(err, rights.ErrSignature) {
			t.Errorf("another key: %v", err)
		}
	})
}

// Another subject's data is unreachable with a subject's own caller, and
// roles that do not handle requests are refused.
func TestOtherSubjectUnreachable(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.seed(t, "alice", 1)
		b := e.seed(t, "bob", 1)
		if _, err := e.svc.Access(ctx, self(string(a)), portrait.Pseudonym(b)); code(err) != portrait.EFORBIDDEN {
			t.Errorf("alice reads bob: %v", err)
		}
		if _, err := e.svc.Erase(ctx, self(string(a)), portrait.Pseudonym(b)); code(err) != portrait.EFORBIDDEN {
			t.Errorf("alice erases bob: %v", err)
		}
		if err := e.svc.Correct(ctx, self(string(a)), portrait.Pseudonym(b), "city", "x"); code(err) != portrait.EFORBIDDEN {
			t.Errorf("alice corrects bob: %v", err)
		}
		if _, err := e.svc.Access(ctx, policy.Caller{Role: policy.Auditor, ID: "a"}, portrait.Pseudonym(b)); code(err) != portrait.EFORBIDDEN {
			t.Errorf("auditor reads bob: %v", err)
		}
		if _, err := e.svc.Access(ctx, operator, portrait.Pseudonym(b)); err != nil {
			t.Errorf("operator reads bob: %v", err)
		}
	})
}

// CM-2: a correction must name a declared profile field and carry a value
// of its type; it is stored sealed with source "correction" and triggers
// recomputation.
func TestCorrect(t *testing.T) {
	var recomputed []portrait.Pseudonym
	eachStore(t, rights.Options{OnCorrected: func(_ context.Context, p portrait.Pseudonym) error { recomputed = append(recomputed, p); return nil }}, func(t *testing.T, e *env) {
		recomputed = nil
		ctx := context.Background()
		p := e.seed(t, "alice", 1)
		for _, tc := range []struct {
			field string
			value any
			want  string
		}{
			{"shoe_size", 42.0, "not declared"},
			{"item", "x", "profile: true"},
			{"age", "thirty", "type number"},
			{"city", 12.0, "type string"},
			{"city", "", "empty string"},
			{"gender", "F", "protected attribute"}, // FP-2: kept apart, not in the profile
		} {
			err := e.svc.Correct(ctx, self(string(p)), portrait.Pseudonym(p), tc.field, tc.value)
			if code(err) != portrait.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("correct %s=%v: %v, want EINVALID naming %q", tc.field, tc.value, err, tc.want)
			}
		}
		if len(recomputed) != 0 {
			t.Fatalf("refused corrections triggered recomputation")
		}
		if err := e.svc.Correct(ctx, self(string(p)), portrait.Pseudonym(p), "city", "Hangzhou"); err != nil {
			t.Fatal(err)
		}
		doc, err := e.svc.Access(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range doc.Profile {
			if f.Field == "city" && (f.Value != "Hangzhou" || f.Source != "correction") {
				t.Errorf("after correction: %+v", f)
			}
		}
		if len(recomputed) != 1 || recomputed[0] != p {
			t.Errorf("recompute hook: %v", recomputed)
		}
		// SR-4: every refusal is a case with its reason.
		refused := 0
		for _, c := range doc.Cases {
			if c.Type == rights.TypeCorrection && c.Status == rights.StatusRefused {
				refused++
				if c.Reason == "" {
					t.Errorf("refused case without a reason: %+v", c)
				}
			}
		}
		if refused != 6 {
			t.Errorf("%d refused correction cases, want 6", refused)
		}
	})
}

// holds reports whether needle occurs in the store's bytes: the SQLite
// file or its WAL; on PostgreSQL, the text of every row of every table,
// where bytea columns show as hex.
func (e *env) holds(t *testing.T, needle []byte) bool {
	t.Helper()
	if e.pgURL == "" {
		for _, f := range []string{e.path, e.path + "-wal"} {
			data, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if bytes.Contains(data, needle) {
				return true
			}
		}
		return false
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) == 0 {
		t.Fatalf("list tables: %v %v", tables, err)
	}
	hexed := []byte(hex.EncodeToString(needle))
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+tbl+" t")
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range texts {
			if bytes.Contains([]byte(row), needle) || bytes.Contains([]byte(row), hexed) {
				return true
			}
		}
	}
	return false
}

// SR-3: erasure removes everything, leaves no plaintext and no wrapped key
// in the database file or WAL, returns a signed receipt naming the audit
// entry, and a second request returns the same receipt.
func TestErase(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		var erased []string
		e.svc, _ = rights.New(rights.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, rights.Options{OnErased: func(_ context.Context, p portrait.Pseudonym) { erased = append(erased, string(p)) }})
		p := e.seed(t, "alice", 20)
		keep := e.seed(t, "bob", 2)
		subs, _ := e.store.Subjects(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
		wrapped := subs[portrait.Pseudonym(p)].WrappedKey
		held, err := e.keys.Open(subs[portrait.Pseudonym(p)]) // the unwrapped key, as the keyring caches it
		if err != nil {
			t.Fatal(err)
		}
		if !e.holds(t, wrapped) {
			if db, ok := e.store.(*sqlite.DB); ok {
				db.TruncateWAL(ctx)
			}
			if !e.holds(t, wrapped) {
				t.Fatal("the wrapped key is not found before erasure: the scan cannot prove anything")
			}
		}
		pre, err := e.svc.Preview(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil || pre.Events != 21 || len(pre.Labels) != 1 || len(pre.ProfileFields) != 2 {
			t.Fatalf("preview: %+v %v", pre, err)
		}
		res, err := e.svc.Erase(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		if res.AlreadyErased || res.Removed.Events != 21 || len(erased) != 1 {
			t.Errorf("erasure: %+v, hook %v", res, erased)
		}
		if e.holds(t, wrapped) {
			t.Error("the wrapped data key is still in the database file or WAL")
		}
		// Invariant 4: the unwrapped key leaves the keyring cache and its
		// bytes are zeroed, also in a cipher a caller still holds.
		if !held.Destroyed() {
			t.Error("erasure left the subject's unwrapped data key in the keyring cache")
		}
		for _, s := range []string{"Marker-City-alice", "Marker-Item-alice", "alice"} {
			if e.holds(t, []byte(s)) {
				t.Errorf("plaintext %q found after erasure", s)
			}
		}
		data, _ := json.Marshal(res.Receipt)
		pub := e.keys.ReceiptKey().Public().(ed25519.PublicKey)
		rc, err := rights.VerifyReceipt(data, pub)
		if err != nil {
			t.Fatalf("receipt: %v", err)
		}
		entry, err := e.log.Entry(ctx, e.store, rc.LogIndex)
		if err != nil || !bytes.Contains(entry, []byte(`"kind":"erasure"`)) || !bytes.Contains(entry, []byte(p)) {
			t.Errorf("receipt names log entry %d: %s %v", rc.LogIndex, entry, err)
		}
		if _, err := rights.VerifyReceipt(bytes.Replace(data, []byte(p), []byte(keep), 1), pub); !errors.Is(err, rights.ErrSignature) {
			t.Errorf("altered receipt: %v", err)
		}
		again, err := e.svc.Erase(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil || !again.AlreadyErased || again.Receipt != res.Receipt {
			t.Errorf("double erasure: %+v %v", again, err)
		}
		if _, err := e.svc.Access(ctx, self(string(p)), portrait.Pseudonym(p)); code(err) != portrait.ENOTFOUND {
			t.Errorf("access after erasure: %v", err)
		}
		if doc, err := e.svc.Access(ctx, operator, portrait.Pseudonym(keep)); err != nil || len(doc.Events) != 3 {
			t.Errorf("bob was touched: %v", err)
		}
		if _, err := e.svc.Erase(ctx, operator, e.keys.Pseudonym("nobody")); code(err) != portrait.ENOTFOUND {
			t.Errorf("erase unknown subject: %v", err)
		}
	})
}

// SR-7, CM-4: restriction makes data storage-only; objection to marketing
// refuses marketing at once; both are undone the same way.
func TestRestrictObject(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.seed(t, "alice", 1)
		if _, err := e.ledger.Record(ctx, operator, consent.ByPseudonym(portrait.Pseudonym(p)), consent.Change{Purpose: "marketing", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
		use := func(purpose string) policy.Decision {
			st, err := e.ledger.State(ctx, portrait.Pseudonym(p))
			if err != nil {
				t.Fatal(err)
			}
			return e.point.Decide(policy.Request{State: st, Purpose: purpose, Action: policy.Use, Caller: operator})
		}
		if err := e.svc.Restrict(ctx, self(string(p)), portrait.Pseudonym(p)); err != nil {
			t.Fatal(err)
		}
		if d := use("personalization"); d.Allow || d.Reasons[0].Requirement != "SR-7" {
			t.Errorf("use after restriction: %+v", d)
		}
		if _, err := e.svc.Access(ctx, self(string(p)), portrait.Pseudonym(p)); err != nil {
			t.Errorf("access is still allowed under restriction: %v", err)
		}
		if err := e.svc.Unrestrict(ctx, self(string(p)), portrait.Pseudonym(p)); err != nil {
			t.Fatal(err)
		}
		if d := use("personalization"); !d.Allow {
			t.Errorf("after lifting: %+v", d)
		}
		if err := e.svc.Object(ctx, self(string(p)), portrait.Pseudonym(p), rights.ObjectMarketing, false); err != nil {
			t.Fatal(err)
		}
		if d := use("marketing"); d.Allow || d.Reasons[0].Code != "objection" {
			t.Errorf("marketing after objection: %+v", d)
		}
		if d := use("personalization"); !d.Allow {
			t.Errorf("objection to marketing stopped personalization: %+v", d)
		}
		if err := e.svc.Object(ctx, self(string(p)), portrait.Pseudonym(p), "spam", false); code(err) != portrait.EINVALID {
			t.Errorf("unknown objection: %v", err)
		}
	})
}

// LP-3: deselect keeps the value but stops its use; delete removes it and
// refuses its use; restore brings it back into use.
func TestLabelControl(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.seed(t, "alice", 1)
		e.putLabel(t, p, "shopper_segment")
		useLabel := func(l string) bool {
			st, _ := e.ledger.State(ctx, portrait.Pseudonym(p))
			return e.point.Decide(policy.Request{State: st, Purpose: "personalization", Action: policy.Use, Labels: []string{l}, Caller: operator}).Allow
		}
		if err := e.svc.SuppressLabel(ctx, self(string(p)), portrait.Pseudonym(p), "sports_fan", rights.ModeDeselect); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SuppressLabel(ctx, self(string(p)), portrait.Pseudonym(p), "shopper_segment", rights.ModeDelete); err != nil {
			t.Fatal(err)
		}
		ls, err := e.svc.Labels(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, l := range ls {
			got[l.Label] = l.Status
			if l.Label == "shopper_segment" && l.Value != nil {
				t.Error("a deleted label still has its value")
			}
		}
		if got["sports_fan"] != rights.LabelDeselected || got["shopper_segment"] != rights.LabelDeleted {
			t.Errorf("statuses: %v", got)
		}
		if useLabel("sports_fan") || useLabel("shopper_segment") {
			t.Error("a suppressed label is still used")
		}
		if err := e.svc.RestoreLabel(ctx, self(string(p)), portrait.Pseudonym(p), "sports_fan"); err != nil {
			t.Fatal(err)
		}
		if !useLabel("sports_fan") {
			t.Error("a restored label is not used")
		}
		if err := e.svc.RestoreLabel(ctx, self(string(p)), portrait.Pseudonym(p), "sports_fan"); code(err) != portrait.EINVALID {
			t.Errorf("restore twice: %v", err)
		}
		if err := e.svc.SuppressLabel(ctx, self(string(p)), portrait.Pseudonym(p), "nosuch", rights.ModeDelete); code(err) != portrait.EINVALID {
			t.Errorf("undeclared label: %v", err)
		}
		if err := e.svc.SuppressLabel(ctx, self(string(p)), portrait.Pseudonym(p), "sports_fan", "hide"); code(err) != portrait.EINVALID {
			t.Errorf("bad mode: %v", err)
		}
	})
}

// LP-4, LP-5: the dial takes 0..100 and is honoured by the next state read.
func TestPersonalizationDial(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.seed(t, "alice", 1)
		for _, lvl := range []int{-1, 101, 1000} {
			if err := e.svc.SetPersonalization(ctx, self(string(p)), portrait.Pseudonym(p), lvl); code(err) != portrait.EINVALID {
				t.Errorf("level %d: %v", lvl, err)
			}
		}
		for _, lvl := range []int{0, 37, 100} {
			if err := e.svc.SetPersonalization(ctx, self(string(p)), portrait.Pseudonym(p), lvl); err != nil {
				t.Fatal(err)
			}
			st, _ := e.ledger.State(ctx, portrait.Pseudonym(p))
			if st.Personalization != lvl {
				t.Errorf("dial %d: state has %d", lvl, st.Personalization)
			}
		}
	})
}

// SR-4, SR-5: deadlines follow the jurisdiction; open cases past their
// deadline are reported; a refusal needs a reason.
func TestCasesAndDeadlines(t *testing.T) {
	fri := time.Date(2025, 1, 3, 10, 0, 0, 0, time.UTC) // a Friday
	for _, tc := range []struct {
		d    rights.Deadline
		want time.Time
	}{
		{rights.Jurisdictions[catalog.JurisdictionCN], time.Date(2025, 1, 24, 10, 0, 0, 0, time.UTC)},
		{rights.Jurisdictions[catalog.JurisdictionEU], time.Date(2025, 2, 3, 10, 0, 0, 0, time.UTC)},
		{rights.Deadline{WorkingDays: 1}, time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC)},
	} {
		if got := tc.d.After(fri); !got.Equal(tc.want) {
			t.Errorf("%+v after %v: %v, want %v", tc.d, fri, got, tc.want)
		}
	}
	if _, err := rights.New(rights.Deps{Store: nil, Point: nil, Ledger: nil, Keys: nil, Log: nil}, rights.Options{}); err == nil {
		t.Error("New without dependencies")
	}
	clock := time.Now()
	eachStore(t, rights.Options{Jurisdiction: catalog.JurisdictionEU, Now: func() time.Time { return clock }}, func(t *testing.T, e *env) {
		clock = time.Now()
		ctx := context.Background()
		p := e.seed(t, "alice", 1)
		c, err := e.svc.Request(ctx, self(string(p)), portrait.Pseudonym(p), rights.TypeExplanation)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != rights.StatusOpen || !c.Deadline.Equal(c.Created.AddDate(0, 1, 0)) {
			t.Errorf("gdpr case: %+v", c)
		}
		if _, err := e.svc.Request(ctx, self(string(p)), portrait.Pseudonym(p), "magic"); code(err) != portrait.EINVALID {
			t.Errorf("unknown type: %v", err)
		}
		if od, _ := e.svc.Overdue(ctx); len(od) != 0 {
			t.Errorf("overdue too early: %+v", od)
		}
		clock = clock.AddDate(0, 1, 2)
		od, err := e.svc.Overdue(ctx)
		if err != nil || len(od) != 1 || od[0].ID != c.ID {
			t.Fatalf("overdue: %+v %v", od, err)
		}
		if _, err := e.svc.Close(ctx, operator, c.ID, true, ""); code(err) != portrait.EINVALID {
			t.Errorf("refusal without reason: %v", err)
		}
		if _, err := e.svc.Close(ctx, self(string(p)), c.ID, false, "done"); code(err) != portrait.EFORBIDDEN {
			t.Errorf("subject closes a case: %v", err)
		}
		closed, err := e.svc.Close(ctx, operator, c.ID, true, "the decision was explained in the export")
		if err != nil || closed.Status != rights.StatusRefused || closed.Reason == "" {
			t.Fatalf("close: %+v %v", closed, err)
		}
		if _, err := e.svc.Close(ctx, operator, c.ID, false, "again"); code(err) != portrait.ECONFLICT {
			t.Errorf("close twice: %v", err)
		}
		// A case another service filed (a violation report, RO-8) is not a
		// subject request: closing it here would overwrite its record.
		other := portrait.Case{ID: "vr-1", Pseudonym: "-", Type: "violation_report", Status: rights.StatusOpen,
			Created: clock, Deadline: clock.AddDate(0, 0, 21)}
		if err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutCase(ctx, other) }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Close(ctx, operator, other.ID, false, "handled"); code(err) != portrait.EINVALID {
			t.Errorf("closing a violation report as a subject request: %v", err)
		}
		if od, _ := e.svc.Overdue(ctx); len(od) != 0 {
			t.Errorf("closed case still overdue: %+v", od)
		}
		if _, err := rights.New(rights.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, rights.Options{Jurisdiction: "mars"}); err == nil {
			t.Error("unknown jurisdiction accepted")
		}
	})
}

// CN-7, CN-10, LP-6: the notice is generated from the catalog in both
// languages: handler and officer, every purpose with its basis, data
// categories with retention, automated decisions with their logic, the
// recommenders' mechanism, each right, and the objection right apart.
func TestNotice(t *testing.T) {
	e := newEnv(t, rights.Options{})
	cat := e.point.Catalog()
	zh, en := e.svc.Notice("zh-CN"), e.svc.Notice("en")
	if zh.Version != en.Version || zh.Version == "" {
		t.Errorf("versions %q %q", zh.Version, en.Version)
	}
	if zh.Handler.Name != "示例科技有限公司" || en.Handler.Name != "Example Tech Co." || en.Handler.Officer != "dpo@example.com" {
		t.Errorf("handler: %+v %+v", zh.Handler, en.Handler)
	}
	// Data categories are named in the reader's language, key beside.
	names := map[string]string{}
	for i, c := range zh.Categories {
		names[c.Category] = c.Name + "|" + en.Categories[i].Name
	}
	if names["user.behavior.browsing_history"] != "浏览记录|Browsing History" {
		t.Errorf("category names: %v", names)
	}
	if len(en.Purposes) != len(cat.Purposes) {
		t.Errorf("%d purposes, catalog has %d", len(en.Purposes), len(cat.Purposes))
	}
	for _, p := range en.Purposes {
		if p.Basis == "" || p.BasisText == "" || p.Text == "" {
			t.Errorf("purpose %+v", p)
		}
	}
	if len(en.Decisions) != 1 || en.Decisions[0].UseCase != "credit_limit" || !strings.Contains(en.Decisions[0].Logic, "Income × 0.0002") ||
		!strings.Contains(zh.Decisions[0].Logic, "收入 × 0.0002") || zh.Decisions[0].Title != "信用额度" ||
		!strings.Contains(en.Decisions[0].Consequences, "human review") {
		t.Errorf("decisions: %+v", en.Decisions)
	}
	// CN-7: the notice names fields, categories and purposes in words.
	if zh.Purposes[0].Title != "购物服务" || !slices.Contains(zh.Purposes[0].CategoryNames, "浏览记录") ||
		!slices.Contains(zh.Categories[0].FieldNames, "商品") || len(zh.Categories[0].FieldNames) != len(zh.Categories[0].Fields) {
		t.Errorf("names: %+v %+v", zh.Purposes[0], zh.Categories[0])
	}
	if len(en.Recommenders) != 2 || !strings.Contains(zh.Recommenders[0].Mechanism, "运动爱好者") {
		t.Errorf("recommenders: %+v", zh.Recommenders)
	}
	for _, c := range en.Categories {
		if c.Retention == "" || len(c.Fields) == 0 {
			t.Errorf("category %+v", c)
		}
	}
	if len(en.Rights) < 8 || en.Objection == "" || !strings.Contains(zh.Deadline, "15个工作日") {
		t.Errorf("rights %d, objection %q, deadline %q", len(en.Rights), en.Objection, zh.Deadline)
	}
	changed := *cat
	changed.Version = "2"
	if rights.NoticeVersion(&changed, rights.Jurisdictions["pipl"]) == zh.Version {
		t.Error("a changed catalog keeps the notice version")
	}
}

// BenchmarkErase erases a subject with 10,000 events and a label, on
// each store.
func BenchmarkErase(b *testing.B) {
	benchStores(b, func(b *testing.B, open backend) {
		ctx := context.Background()
		e := newEnvOn(b, open, rights.Options{})
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			id := fmt.Sprintf("bench-%d", i)
			p := e.seed(b, id, 10_000)
			b.StartTimer()
			if _, err := e.svc.Erase(ctx, operator, portrait.Pseudonym(p)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAccess reads and decrypts the export of a subject with 10,000
// events, on each store.
func BenchmarkAccess(b *testing.B) {
	benchStores(b, func(b *testing.B, open backend) {
		ctx := context.Background()
		e := newEnvOn(b, open, rights.Options{})
		p := e.seed(b, "bench", 10_000)
		for b.Loop() {
			if _, err := e.svc.Access(ctx, operator, portrait.Pseudonym(p)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// SR-1, AD-4, AD-3: the export opens each automated decision: outcome,
// score, what each feature contributed, the explanation in zh-CN and en,
// and the review the subject asked for with their own statement.
func TestAccessDecisions(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.seed(t, "dave", 1)
		if _, err := e.ledger.Record(ctx, operator, consent.ByPseudonym(portrait.Pseudonym(p)), consent.Change{Purpose: "credit", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
		prof := []ingest.Item{{Event: portrait.Event{SubjectID: "dave", Type: "profile", Time: e.now.Add(-time.Minute),
			Fields: map[string]any{"age": json.Number("35"), "income": json.Number("9000")}}}}
		if _, sum, err := e.in.Ingest(ctx, operator, prof); err != nil || sum.Accepted != 1 {
			t.Fatalf("ingest: %v %+v", err, sum)
		}
		ap, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, apply.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rv, err := review.New(review.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, review.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ap.Assess(ctx, policy.Caller{Role: policy.Admin, ID: "adm"}, "credit_limit", demo.Answers()); err != nil {
			t.Fatal(err)
		}
		if _, err := ap.ShowNotice(ctx, self(string(p)), portrait.Pseudonym(p), "credit_limit"); err != nil {
			t.Fatal(err)
		}
		d, err := ap.Determine(ctx, operator, portrait.Pseudonym(p), "credit_limit")
		if err != nil {
			t.Fatal(err)
		}
		const statement = "我上个月升职了 <b>income doubled</b>"
		if _, err := rv.Appeal(ctx, self(string(p)), d.ID, review.KindAppeal, statement); err != nil {
			t.Fatal(err)
		}
		doc, err := e.svc.Access(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Decisions) != 1 {
			t.Fatalf("decisions: %+v", doc.Decisions)
		}
		got := doc.Decisions[0]
		if got.ID != d.ID || got.Outcome == nil || *got.Outcome != *d.Outcome || got.Score == nil || *got.Score != *d.Score {
			t.Errorf("outcome and score: %+v, decided %+v", got, d)
		}
		if got.Status != apply.StatusPendingReview || got.Final != nil {
			t.Errorf("under review, no outcome stands yet: status %q final %v", got.Status, got.Final)
		}
		if got.Explanation["zh-CN"] == "" || got.Explanation["en"] != d.Explanation["en"] || len(got.Contributions) == 0 ||
			got.Contributions["income"] != d.Contributions["income"] {
			t.Errorf("explanation: %+v", got)
		}
		if len(got.Reviews) != 1 || got.Reviews[0].Kind != review.KindAppeal || got.Reviews[0].Statement != statement || got.Reviews[0].Status != "open" {
			t.Errorf("reviews: %+v", got.Reviews)
		}
		// SR-2: a real export with a decision in it keeps to the published schema.
		raw, err := doc.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		checkSchema(t, raw)
	})
}

// CM-5, invariant 4: the user agent kept as consent evidence is bounded to
// 512 bytes (cut at a character boundary, never refused) and sealed with
// the subject's key, so no plaintext of it reaches the SQLite file, its
// WAL or any PostgreSQL table; the subject's export still shows it; after
// erasure nothing of it is left. Before, 20 MB were accepted and the first
// 512 bytes were stored in the clear.
func TestConsentUserAgentSealed(t *testing.T) {
	eachStore(t, rights.Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		ua := "Mozilla/5.0 (Marker-UA-7f3c; 中文) " + strings.Repeat("界", 20<<20/3)
		if _, err := e.ledger.Record(ctx, operator, consent.ByID("uma"), consent.Change{Purpose: "personalization",
			Status: policy.Granted, NoticeVersion: "1", Channel: "web", UserAgent: ua}); err != nil {
			t.Fatal(err)
		}
		p := e.keys.Pseudonym("uma")
		if db, ok := e.store.(*sqlite.DB); ok {
			db.TruncateWAL(ctx)
		}
		if e.holds(t, []byte("Marker-UA-7f3c")) {
			t.Fatal("the consent user agent is stored in plaintext")
		}
		doc, err := e.svc.Access(ctx, self(string(p)), p)
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.History) != 1 {
			t.Fatalf("history %+v", doc.History)
		}
		got := doc.History[0].UserAgent
		if !strings.HasPrefix(got, "Mozilla/5.0 (Marker-UA-7f3c; 中文) ") || len(got) > consent.MaxUserAgent ||
			len(got) < consent.MaxUserAgent-3 || !utf8.ValidString(got) {
			t.Errorf("the subject's export shows user agent of %d bytes: %.60q", len(got), got)
		}
		if _, err := e.svc.Erase(ctx, self(string(p)), p); err != nil {
			t.Fatal(err)
		}
		if e.holds(t, []byte("Marker-UA-7f3c")) {
			t.Error("the user agent is readable after erasure")
		}
	})
}

// The export lists the destinations Portrait delivered the subject's data
// to, as the audit log records them, and still matches the published
// schema (PIPL Art. 23, GDPR Art. 19).
func TestExportListsDelivered(t *testing.T) {
	var cur *env
	opts := rights.Options{Delivered: func(ctx context.Context, p portrait.Pseudonym) ([]rights.DeliveredEntry, error) {
		return delivery.Recipients(ctx, cur.store.(delivery.LogIndex), cur.log, p)
	}}
	eachStore(t, opts, func(t *testing.T, e *env) {
		cur = e
		ctx := context.Background()
		p := e.seed(t, "erin", 1)
		other := e.seed(t, "olaf", 1)
		// The record delivery.Dispatcher appends when a subject joins a
		// destination's audience.
		joined := func(subject, dst string) {
			err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				_, err := e.log.Append(ctx, tx, audit.Record{Kind: "delivery", Actor: "system:delivery", Action: "joined", Pseudonym: portrait.Pseudonym(subject), Purpose: "personalization",
					Detail: map[string]any{"destination": dst, "audience": "sports", "purpose": "personalization", "output": "pseudonymous"}})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		joined(string(p), "ads")
		joined(string(p), "ads") // again, after leaving: listed once
		joined(string(other), "crm")
		doc, err := e.svc.Access(ctx, self(string(p)), portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Delivered) != 1 || doc.Delivered[0].Destination != "ads" || doc.Delivered[0].Audience != "sports" || doc.Delivered[0].LogIndex <= 0 {
			t.Fatalf("delivered_to: %+v", doc.Delivered)
		}
		raw, err := doc.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if std, _ := json.Marshal(doc); !bytes.Equal(raw, std) {
			t.Errorf("AppendJSON differs from json.Marshal:\n%s\n%s", raw, std)
		}
		checkSchema(t, raw)
		if !strings.Contains(string(raw), `"delivered_to":[{"destination":"ads"`) {
			t.Errorf("export JSON lacks delivered_to: %s", raw)
		}
	})
}
