package oversight_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

var admin = policy.Caller{Role: policy.Admin, ID: "admin-1"}

// env is a Portrait with an oversight service on one store.
type env struct {
	store portrait.Store
	point *policy.Point
	keys  *keys.Keyring
	log   *audit.Log
	apply *apply.Service
	svc   *oversight.Service
	clock *clock
}

// clock is a settable time source shared by the services of a test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type backend func(tb testing.TB) portrait.Store

func onSQLite(tb testing.TB) portrait.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "portrait.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// onPostgres opens a throwaway PostgreSQL database (storetest).
func onPostgres(tb testing.TB) portrait.Store {
	s, err := postgres.Open(context.Background(), storetest.PostgresDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// eachStore runs f on SQLite and, where PORTRAIT_TEST_POSTGRES is set, on
// PostgreSQL (invariant 7).
func eachStore(t *testing.T, f func(t *testing.T, open backend)) {
	t.Run("sqlite", func(t *testing.T) { f(t, onSQLite) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		f(t, onPostgres)
	})
}

func demoCatalog(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

func newEnv(tb testing.TB, open backend) *env {
	tb.Helper()
	store := open(tb)
	tb.Cleanup(func() { store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{store: store, point: policy.New(demoCatalog(tb)), keys: kr, clock: &clock{t: time.Now().UTC()}}
	if e.log, err = audit.New("portrait.test/log", kr.LogKey()); err != nil {
		tb.Fatal(err)
	}
	ledger, err := consent.New(consent.Deps{Store: store, Point: e.point, Log: e.log, Keys: kr}, consent.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if e.apply, err = apply.New(apply.Deps{Store: store, Point: e.point, Ledger: ledger, Keys: kr, Log: e.log}, apply.Options{Now: e.clock.Now}); err != nil {
		tb.Fatal(err)
	}
	e.svc = e.start(tb)
	return e
}

// start makes a new oversight service on the env's store, as a restart or
// another node would.
func (e *env) start(tb testing.TB) *oversight.Service {
	tb.Helper()
	svc, err := oversight.New(context.Background(), oversight.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Apply: e.apply},
		oversight.Options{Now: e.clock.Now, ReportBurst: 3, ReportRate: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// entry returns the audit record at index.
func (e *env) entry(tb testing.TB, index int64) audit.Record {
	tb.Helper()
	es, err := e.store.LogEntries(context.Background(), index, index+1)
	if err != nil {
		tb.Fatal(err)
	}
	var rec audit.Record
	if err := json.Unmarshal(es[0].Data, &rec); err != nil {
		tb.Fatal(err)
	}
	return rec
}

// TestFilingHistory: the filing is generated from the catalog, and each
// catalog the system runs with is recorded once, with its date, so that a
// change shows in the history (FA-3, FA-6).
func TestFilingHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		f, err := e.svc.Filing(ctx, "en")
		if err != nil {
			t.Fatal(err)
		}
		cat := e.point.Catalog()
		if len(f.History) != 1 || len(f.History[0].Added) == 0 || f.History[0].Digest != f.CatalogDigest {
			t.Fatalf("first history: %+v", f.History)
		}
		if f.Provider.Name != cat.Handler.Name.In("en") || f.Provider.Officer != cat.Handler.Officer {
			t.Errorf("provider %+v", f.Provider)
		}
		// Every use-case and label is an algorithm of the filing; every
		// recommender and decision has a public description (LP-6).
		var ids []string
		for _, a := range f.Algorithms {
			ids = append(ids, a.Of+":"+a.ID)
		}
		for _, u := range cat.UseCases {
			if !slices.Contains(ids, "use_case:"+u.ID) {
				t.Errorf("use-case %s missing from the filing", u.ID)
			}
		}
		for _, l := range cat.Labels {
			if !slices.Contains(ids, "label:"+l.ID) {
				t.Errorf("label %s missing from the filing", l.ID)
			}
		}
		if len(f.Public) != len(cat.UseCases) || len(f.ServiceForms) == 0 || len(f.Fields) == 0 {
			t.Errorf("public %d (want %d), forms %v, fields %v", len(f.Public), len(cat.UseCases), f.ServiceForms, f.Fields)
		}
		for _, p := range f.Public {
			if p.Mechanism == "" || p.Principle == "" || len(p.Purposes) == 0 {
				t.Errorf("public description of %s is incomplete: %+v", p.UseCase, p)
			}
		}

		// A restart with the same catalog adds nothing.
		e.start(t)
		if f, _ = e.svc.Filing(ctx, "en"); len(f.History) != 1 {
			t.Fatalf("restart with the same catalog: %d history entries", len(f.History))
		}

		// Change one label and swap the catalog in: the history gains a
		// dated entry naming exactly that declaration.
		e.clock.Add(48 * time.Hour)
		changed := demoCatalog(t)
		for i := range changed.Labels {
			if changed.Labels[i].ID == "sports_fan" {
				changed.Labels[i].Description["en"] = "Viewed sports items at least 5 times in the last month"
			}
		}
		changed.Index()
		e.point.SetCatalog(changed)
		f, err = e.svc.Filing(ctx, "en")
		if err != nil {
			t.Fatal(err)
		}
		if len(f.History) != 2 {
			t.Fatalf("after a change: %d history entries", len(f.History))
		}
		h := f.History[1]
		if !slices.Equal(h.Changed, []string{"label:sports_fan"}) || len(h.Added) != 0 || len(h.Removed) != 0 || !h.Date.After(f.History[0].Date) {
			t.Errorf("change entry %+v", h)
		}
		if rec := e.entry(t, h.LogIndex); rec.Kind != oversight.KindCatalog || rec.Digest != f.CatalogDigest {
			t.Errorf("audit record of the change: %+v", rec)
		}
		// Another node (a fresh service on the same store) builds the same
		// history from the log.
		other, err := e.start(t).Filing(ctx, "zh-CN")
		if err != nil || len(other.History) != 2 || other.History[1].Digest != h.Digest {
			t.Errorf("history on another node: %v %+v", err, other.History)
		}
	})
}

// TestFilingAssessment: the self-assessment states each use-case's tier and
// the assessment on record from the apply service (FA-3, FA-1).
func TestFilingAssessment(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		f, err := e.svc.Filing(ctx, "en")
		if err != nil {
			t.Fatal(err)
		}
		find := func(f oversight.Filing, id string) oversight.FilingAssessment {
			for _, a := range f.SelfAssessment {
				if a.UseCase == id {
					return a
				}
			}
			t.Fatalf("no self-assessment of %s", id)
			return oversight.FilingAssessment{}
		}
		if a := find(f, "credit_limit"); a.Tier != catalog.TierHigh || !a.Required || !a.Created.IsZero() || !strings.Contains(a.Summary, "No impact assessment") {
			t.Errorf("before assessment: %+v", a)
		}
		if a := find(f, "home_feed"); a.Required || a.Tier != catalog.TierMinimal {
			t.Errorf("minimal use-case: %+v", a)
		}
		as, err := e.apply.Assess(ctx, admin, "credit_limit", demo.Answers())
		if err != nil {
			t.Fatal(err)
		}
		f, _ = e.svc.Filing(ctx, "en")
		if a := find(f, "credit_limit"); !a.Created.Equal(as.Created) || a.Config != as.Config || a.LogIndex == nil || *a.LogIndex != as.LogIndex {
			t.Errorf("after assessment: %+v, assessed %+v", a, as)
		}
	})
}

// TestProcessingRecord: the record of processing activities carries every
// purpose with its basis, every field with its retention, the transfers
// statement, the security measures and the automated decisions (FA-4).
func TestProcessingRecord(t *testing.T) {
	e := newEnv(t, onSQLite)
	cat := e.point.Catalog()
	for _, l := range []string{"zh-CN", "en"} {
		p := e.svc.Processing(l)
		if p.Lang != l || p.Controller.Officer != cat.Handler.Officer || p.Controller.Name != cat.Handler.Name.In(l) {
			t.Errorf("%s: controller %+v", l, p.Controller)
		}
		if len(p.Purposes) != len(cat.Purposes) {
			t.Errorf("%s: %d purposes, catalog has %d", l, len(p.Purposes), len(cat.Purposes))
		}
		for _, pp := range p.Purposes {
			if cp := cat.Purpose(pp.ID); cp == nil || pp.Basis != string(cp.Basis) || pp.BasisText == "" || pp.DataUse != cp.DataUse {
				t.Errorf("%s: purpose %+v", l, pp)
			}
		}
		fields := map[string]string{}
		for _, c := range p.Categories {
			if !catalog.KnownCategory(c.Key) || c.Name == "" {
				t.Errorf("%s: category %+v", l, c)
			}
			for _, f := range c.Fields {
				fields[f.Name] = f.Retention
				if cat.Field(f.Name).Category != c.Key {
					t.Errorf("%s: field %s filed under %s", l, f.Name, c.Key)
				}
			}
		}
		if len(fields) != len(cat.Fields) || fields["search_query"] != map[string]string{"en": "90 days", "zh-CN": "90天"}[l] ||
			fields["income"] != map[string]string{"en": "3 years", "zh-CN": "3年"}[l] {
			t.Errorf("%s: field retentions %v", l, fields)
		}
		if len(p.Transfers) != 0 || p.TransfersText == "" || len(p.Security) < 3 || len(p.Subjects) != 2 {
			t.Errorf("%s: transfers %v %q, security %d, subjects %v", l, p.Transfers, p.TransfersText, len(p.Security), p.Subjects)
		}
		if len(p.Decisions) != 1 || p.Decisions[0].UseCase != "credit_limit" || p.Decisions[0].Tier != catalog.TierHigh ||
			p.Decisions[0].Model != "credit_score" || p.Decisions[0].Version != 1 {
			t.Errorf("%s: decisions %+v", l, p.Decisions)
		}
		var page bytes.Buffer
		if err := p.HTML(&page); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"zh-CN": "个人信息处理活动记录", "en": "Record of processing activities"}[l]
		if !strings.Contains(page.String(), want) || !strings.Contains(page.String(), cat.Handler.Officer) ||
			!strings.Contains(page.String(), cat.UseCaseName("credit_limit", l)) || strings.Contains(page.String(), "credit_limit") {
			t.Errorf("%s: HTML lacks the title, officer or decision", l)
		}
	}
	f, err := e.svc.Filing(context.Background(), "zh-CN")
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := f.HTML(&page); err != nil || !strings.Contains(page.String(), "算法备案信息") || !strings.Contains(page.String(), "标签：运动爱好者") || strings.Contains(page.String(), "sports_fan") {
		t.Errorf("filing HTML: %v", err)
	}
}

// TestEvidence: the evidence pack verifies offline, counts what the log and
// the cases hold, and any change to it, or another key, fails (FA-2, RO-1,
// FA-6). That the log is kept is proved by behaviour elsewhere, not by the
// retention sentence checked here.
func TestEvidence(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		if _, err := e.svc.Report(ctx, "198.51.100.7", oversight.ReportInput{Description: "ads follow me after I objected"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.ReportBreach(ctx, admin, goodBreach()); err != nil {
			t.Fatal(err)
		}
		// Sixteen working days later the report is overdue.
		e.clock.Add(30 * 24 * time.Hour)
		b, err := e.svc.Evidence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(b)
		pub := e.keys.ReceiptKey().Public().(ed25519.PublicKey)
		ev, err := oversight.Verify(data, pub)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		size, _ := e.store.LogSize(ctx)
		kinds := map[string]int64{}
		for _, k := range ev.Log.Stats.Kinds {
			kinds[k.Kind] += k.Count
		}
		if ev.Log.Stats.Size != size || kinds["catalog"] != 1 || kinds["report"] != 1 || kinds["breach"] != 1 {
			t.Errorf("log stats %+v, log size %d", ev.Log.Stats, size)
		}
		if !strings.Contains(ev.Log.Retention, "never pruned") || !strings.Contains(ev.Log.Retention, "6 months") {
			t.Errorf("retention statement %q", ev.Log.Retention)
		}
		if ev.Cases.Total != 2 || ev.Cases.Overdue != 1 || ev.Cases.ByType[oversight.TypeReport].Overdue != 1 || ev.Cases.ByType[oversight.TypeBreach].Open != 0 {
			t.Errorf("cases %+v", ev.Cases)
		}
		for _, c := range ev.Cases.List {
			if c.Reason != "" {
				t.Errorf("case %s carries its sealed text into the evidence", c.ID)
			}
		}
		if ev.Catalog.Handler.Officer == "" || len(ev.Processing.Purposes) == 0 || len(ev.Filing.History) != 1 || ev.Log.VerifierKey != e.log.VerifierKey() {
			t.Errorf("evidence parts missing: %+v", ev.Filing.History)
		}

		otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
		resigned := func(mutate func(*oversight.Evidence)) []byte {
			var ev oversight.Evidence
			json.Unmarshal(b.Evidence, &ev)
			mutate(&ev)
			raw, _ := json.Marshal(ev)
			nb := *b
			nb.Evidence = raw
			out, _ := json.Marshal(nb)
			return out
		}
		for name, tc := range map[string]struct {
			data []byte
			pub  ed25519.PublicKey
			want error
		}{
			"tampered count": {bytes.Replace(data, []byte(`"overdue":1`), []byte(`"overdue":0`), 1), pub, oversight.ErrSignature},
			"another key":    {data, otherPub, oversight.ErrSignature},
			"not JSON":       {data[:len(data)/2], pub, oversight.ErrMalformed},
			"dropped log kind": {resigned(func(ev *oversight.Evidence) { ev.Log.Stats.Kinds = ev.Log.Stats.Kinds[1:] }), pub,
				oversight.ErrSignature},
		} {
			if _, err := oversight.Verify(tc.data, tc.pub); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
	})
}

// TestEvidenceConsistency: a bundle signed with the right key but whose
// statistics do not add up to its checkpoint is refused (FA-6).
func TestEvidenceConsistency(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, onSQLite)
	b, err := e.svc.Evidence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ev oversight.Evidence
	if err := json.Unmarshal(b.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	ev.Log.Stats.Kinds[0].Count++
	raw, _ := json.Marshal(ev)
	key := e.keys.ReceiptKey()
	b.Evidence, b.Signature = raw, base64Sig(key, raw)
	data, _ := json.Marshal(b)
	if _, err := oversight.Verify(data, key.Public().(ed25519.PublicKey)); !errors.Is(err, oversight.ErrMalformed) {
		t.Errorf("inconsistent counts: %v", err)
	}
}

func goodBreach() oversight.BreachInput {
	return oversight.BreachInput{
		Categories: []string{"user.contact.email", "user.behavior.purchase_history"},
		Cause:      "a misconfigured export bucket was publicly readable for 3 hours",
		Harm:       "phishing e-mails that cite recent orders",
		Measures:   "the bucket was closed and its access log reviewed",
		Advice:     "distrust e-mails that ask for payment details",
		Contact:    "dpo@example.com",
	}
}

// TestBreach: a breach notice needs every part PIPL Art. 57 lists, is kept
// as a case, logged by digest, and written in Chinese and English (RO-3).
func TestBreach(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		for name, mutate := range map[string]func(*oversight.BreachInput){
			"categories": func(b *oversight.BreachInput) { b.Categories = nil },
			"cause":      func(b *oversight.BreachInput) { b.Cause = " " },
			"harm":       func(b *oversight.BreachInput) { b.Harm = "" },
			"measures":   func(b *oversight.BreachInput) { b.Measures = "" },
			"advice":     func(b *oversight.BreachInput) { b.Advice = "" },
			"contact":    func(b *oversight.BreachInput) { b.Contact = "" },
			"nosuch":     func(b *oversight.BreachInput) { b.Categories = []string{"user.nosuch"} },
		} {
			in := goodBreach()
			mutate(&in)
			_, err := e.svc.ReportBreach(ctx, admin, in)
			if portrait.ErrorCode(err) != portrait.EINVALID || !strings.Contains(portrait.ErrorMessage(err), name) {
				t.Errorf("missing %s: %v", name, err)
			}
		}
		if _, err := e.svc.ReportBreach(ctx, policy.Caller{Role: policy.Operator}, goodBreach()); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Errorf("operator: %v", err)
		}
		if list, _ := e.svc.Breaches(ctx); len(list) != 0 {
			t.Fatalf("refused breaches were stored: %+v", list)
		}
		b, err := e.svc.ReportBreach(ctx, admin, goodBreach())
		if err != nil {
			t.Fatal(err)
		}
		list, err := e.svc.Breaches(ctx)
		if err != nil || len(list) != 1 || list[0].ID != b.ID || list[0].By != "admin:admin-1" || list[0].Input.Cause != goodBreach().Cause {
			t.Fatalf("breaches: %v %+v", err, list)
		}
		in := goodBreach()
		for l, notice := range list[0].Notice {
			// CN-7: the categories by name, not by key.
			if strings.Contains(notice, in.Categories[0]) || !strings.Contains(notice, catalog.CategoryName(in.Categories[0], l)) {
				t.Errorf("%s notice names the category by its key, or not at all:\n%s", l, notice)
			}
			for _, part := range []string{in.Cause, in.Harm, in.Measures, in.Advice, in.Contact, b.ID} {
				if !strings.Contains(notice, part) {
					t.Errorf("%s notice lacks %q", l, part)
				}
			}
		}
		if !strings.Contains(list[0].Notice["zh-CN"], "可能造成的危害") || !strings.Contains(list[0].Notice["en"], "Possible harm") {
			t.Errorf("notices: %+v", list[0].Notice)
		}
		rec := e.entry(t, b.LogIndex)
		raw, _ := json.Marshal(rec)
		if rec.Kind != oversight.TypeBreach || rec.Digest == "" || bytes.Contains(raw, []byte("bucket")) {
			t.Errorf("audit record %s", raw)
		}
	})
}

// TestReports: anyone may report a suspected violation; the text is sealed
// and logged by digest only; the reporter follows it with a secret; an
// admin answers it once (RO-8).
func TestReports(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		const text = "the credit decision used my health data"
		rc, err := e.svc.Report(ctx, "203.0.113.9", oversight.ReportInput{Description: text, Contact: "reporter@example.org"})
		if err != nil {
			t.Fatal(err)
		}
		if rc.Secret == "" || !rc.Deadline.After(e.clock.Now()) {
			t.Fatalf("receipt %+v", rc)
		}
		cases, _ := e.store.Cases(ctx, oversight.NoSubject)
		if len(cases) != 1 || strings.Contains(cases[0].Reason, "health") {
			t.Fatalf("stored case %+v", cases)
		}
		rec := e.entry(t, cases[0].LogIndex)
		raw, _ := json.Marshal(rec)
		if rec.Kind != "report" || rec.Digest == "" || bytes.Contains(raw, []byte("health")) || bytes.Contains(raw, []byte("reporter@")) {
			t.Errorf("audit record %s", raw)
		}
		list, err := e.svc.Reports(ctx)
		if err != nil || len(list) != 1 || list[0].Description != text || list[0].Contact != "reporter@example.org" || list[0].Status != "open" {
			t.Fatalf("reports %v %+v", err, list)
		}
		got, err := e.svc.Follow(ctx, rc.ID, rc.Secret)
		if err != nil || got.Status != "open" || got.Contact != "" {
			t.Errorf("follow: %v %+v", err, got)
		}
		for name, tc := range map[string]struct{ id, secret string }{
			"wrong secret": {rc.ID, wrongSecret(rc.Secret)},
			"unknown id":   {"rpt_nosuch", rc.Secret},
		} {
			if _, err := e.svc.Follow(ctx, tc.id, tc.secret); portrait.ErrorCode(err) != portrait.ENOTFOUND {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := e.svc.Answer(ctx, policy.Caller{Role: policy.Auditor}, rc.ID, "x"); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Errorf("auditor answered: %v", err)
		}
		if _, err := e.svc.Answer(ctx, admin, rc.ID, " "); portrait.ErrorCode(err) != portrait.EINVALID {
			t.Errorf("empty answer: %v", err)
		}
		ans, err := e.svc.Answer(ctx, admin, rc.ID, "we checked: health data is not an input of credit_score")
		if err != nil || ans.Status != "fulfilled" || ans.Closed.IsZero() {
			t.Fatalf("answer: %v %+v", err, ans)
		}
		if _, err := e.svc.Answer(ctx, admin, rc.ID, "again"); portrait.ErrorCode(err) != portrait.ECONFLICT {
			t.Errorf("second answer: %v", err)
		}
		if got, _ := e.svc.Follow(ctx, rc.ID, rc.Secret); got.Answer != ans.Answer || got.Description != text {
			t.Errorf("reporter sees %+v", got)
		}
	})
}

// TestReportLimits: bad reports are refused, and a client that floods is
// rate-limited without affecting others (RO-8).
func TestReportLimits(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, onSQLite)
	for name, tc := range map[string]struct {
		in   oversight.ReportInput
		code string
	}{
		"empty":        {oversight.ReportInput{Description: "  "}, portrait.EINVALID},
		"too long":     {oversight.ReportInput{Description: strings.Repeat("x", 9<<10)}, portrait.ETOOLARGE},
		"bad UTF-8":    {oversight.ReportInput{Description: "a\xffb"}, portrait.EINVALID},
		"long contact": {oversight.ReportInput{Description: "x", Contact: strings.Repeat("c", 300)}, portrait.EINVALID},
	} {
		if _, err := e.svc.Report(ctx, "192.0.2.1", tc.in); portrait.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	// The env allows a burst of 3, then one a minute.
	for i := range 3 {
		if _, err := e.svc.Report(ctx, "192.0.2.1", oversight.ReportInput{Description: fmt.Sprint("report ", i)}); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if _, err := e.svc.Report(ctx, "192.0.2.1", oversight.ReportInput{Description: "one too many"}); !errors.Is(err, oversight.ErrRateLimited) {
		t.Errorf("fourth report: %v", err)
	}
	if _, err := e.svc.Report(ctx, "192.0.2.2", oversight.ReportInput{Description: "another client"}); err != nil {
		t.Errorf("another client: %v", err)
	}
	e.clock.Add(time.Minute)
	if _, err := e.svc.Report(ctx, "192.0.2.1", oversight.ReportInput{Description: "a minute later"}); err != nil {
		t.Errorf("after a minute: %v", err)
	}
	if list, _ := e.svc.Reports(ctx); len(list) != 5 {
		t.Errorf("%d reports stored, want 5", len(list))
	}
}

func base64Sig(key ed25519.PrivateKey, raw []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw))
}

// wrongSecret changes the last character of secret, whatever it was.
func wrongSecret(secret string) string {
	last := "x"
	if strings.HasSuffix(secret, last) {
		last = "y"
	}
	return secret[:len(secret)-1] + last
}

// TestPurposeCreep: a catalog that switches a purpose from first-party to
// third-party advertising under the same notice version is refused on
// start, naming the purpose and the fix; with a new notice version it is
// recorded (and old consents stop counting, as consent.TestNoticeVersion
// shows). CN-3, CN-8.
func TestPurposeCreep(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		creep := demoCatalog(t)
		for i := range creep.Purposes {
			if creep.Purposes[i].ID == "marketing" {
				creep.Purposes[i].DataUse = "marketing.advertising.third_party.targeted"
			}
		}
		creep.Index()
		e.point.SetCatalog(creep)
		_, err := oversight.New(ctx, oversight.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Apply: e.apply}, oversight.Options{Now: e.clock.Now})
		if !errors.Is(err, oversight.ErrPurposeCreep) || !strings.Contains(err.Error(), `purpose "marketing": data use marketing.advertising.first_party.targeted → marketing.advertising.third_party.targeted`) ||
			!strings.Contains(err.Error(), "raise its notice_version") {
			t.Fatalf("quiet purpose switch: err = %v", err)
		}
		if err := e.svc.RecordCatalog(ctx); !errors.Is(err, oversight.ErrPurposeCreep) {
			t.Errorf("swapped in at run time: err = %v", err)
		}
		for i := range creep.Purposes {
			if creep.Purposes[i].ID == "marketing" {
				creep.Purposes[i].NoticeVersion = "2"
			}
		}
		creep.Index()
		e.point.SetCatalog(creep)
		if _, err := oversight.New(ctx, oversight.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Apply: e.apply}, oversight.Options{Now: e.clock.Now}); err != nil {
			t.Fatalf("with a new notice version: %v", err)
		}
		// And the recorded scope is now the new one: going back to
		// first-party under version 2 is itself a change.
		back := demoCatalog(t)
		for i := range back.Purposes {
			if back.Purposes[i].ID == "marketing" {
				back.Purposes[i].NoticeVersion = "2"
			}
		}
		back.Index()
		e.point.SetCatalog(back)
		if _, err := oversight.New(ctx, oversight.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Apply: e.apply}, oversight.Options{Now: e.clock.Now}); !errors.Is(err, oversight.ErrPurposeCreep) {
			t.Errorf("switch back under the same version: err = %v", err)
		}
	})
}
