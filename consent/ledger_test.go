package consent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

const (
	personalization = "personalization"
	ads             = "ads"
	sharing         = "sharing"
	service         = "service"
)

// testCatalog declares two plain consent purposes, an advertising and a
// sharing purpose (which GPC opts out of), and a contract purpose.
func testCatalog(personalizationNotice string) *catalog.Catalog {
	c := &catalog.Catalog{
		Version: "1",
		Handler: catalog.Handler{Name: catalog.Text{"en": "Example Shop", "zh-CN": "示例商城"}, Contact: "privacy@example.com"},
		Purposes: []catalog.Purpose{
			{ID: personalization, Basis: catalog.BasisConsent, NoticeVersion: personalizationNotice,
				Notice: catalog.Text{"en": "Recommend products from your browsing"}, DataUse: "personalize.content.profiling"},
			{ID: ads, Basis: catalog.BasisConsent, NoticeVersion: "1",
				Notice: catalog.Text{"en": "Show ads for products you may like"}, DataUse: "marketing.advertising.profiling"},
			{ID: sharing, Basis: catalog.BasisConsent, NoticeVersion: "1", Separate: true, Recipients: []string{"Partner Ltd"},
				Notice: catalog.Text{"en": "Share your email with Partner Ltd"}, DataUse: "third_party_sharing.personalized_advertising"},
			{ID: service, Basis: catalog.BasisContract, NoticeVersion: "1",
				Notice: catalog.Text{"en": "Deliver your orders"}, DataUse: "essential.service"},
		},
		Fields: []catalog.Field{
			{Name: "city", Category: "user.location.imprecise", Purposes: []string{personalization, ads}},
			{Name: "item", Category: "user.behavior.browsing_history", Purposes: []string{personalization}},
			{Name: "email", Category: "user.contact.email", Purposes: []string{service, sharing}},
		},
		EventTypes: []catalog.EventType{{ID: "view", Fields: []string{"item", "city"}}},
		Labels: []catalog.Label{
			{ID: "sports_fan", Kind: catalog.KindRule, Purposes: []string{personalization}},
			{ID: "big_spender", Kind: catalog.KindRule, Purposes: []string{personalization, ads}},
		},
	}
	c.Index()
	return c
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	store  portrait.Store
	point  *policy.Point
	keys   *keys.Keyring
	log    *audit.Log
	ledger *consent.Ledger
	clock  *clock
	path   string
}

var (
	operator  = policy.Caller{Role: policy.Operator, ID: "op1"}
	regulator = policy.Caller{Role: policy.Regulator, ID: "cac"}
)

func mustKeys(t testing.TB) *keys.Keyring {
	t.Helper()
	k, err := keys.New(bytes.Repeat([]byte{42}, keys.MasterSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newEnv opens a fresh SQLite store and a ledger over it.
func newEnv(t testing.TB) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.db")
	return newNode(t, openStore(t, path), path, testCatalog("2"))
}

// onEachStore runs f on a SQLite env and, with PORTRAIT_TEST_POSTGRES
// set, on one over a throwaway PostgreSQL database.
func onEachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv(storetest.EnvPostgres) == "" {
			t.Skip(storetest.EnvPostgres + " is not set")
		}
		db, err := postgres.Open(context.Background(), storetest.PostgresDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		f(t, newNode(t, db, "", testCatalog("2")))
	})
}

// newNode builds a ledger (one node) over store.
func newNode(t testing.TB, store portrait.Store, path string, cat *catalog.Catalog) *env {
	t.Helper()
	e := &env{store: store, path: path, point: policy.New(cat), keys: mustKeys(t),
		clock: &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}}
	var err error
	if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
		t.Fatal(err)
	}
	if e.ledger, err = consent.New(consent.Deps{Store: store, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) record(t testing.TB, id string, c consent.Change) consent.Receipt {
	t.Helper()
	r, err := e.ledger.Record(context.Background(), operator, consent.ByID(id), c)
	if err != nil {
		t.Fatalf("record %s %s for %s: %v", c.Status, c.Purpose, id, err)
	}
	return r
}

func (e *env) decide(t testing.TB, id, purpose string) policy.Decision {
	t.Helper()
	st, err := e.ledger.State(context.Background(), e.keys.Pseudonym(id))
	if err != nil {
		t.Fatal(err)
	}
	return e.point.Decide(policy.Request{State: st, Purpose: purpose, Action: policy.Use, Caller: operator})
}

func grant(purpose, notice string) consent.Change {
	return consent.Change{Purpose: purpose, Status: policy.Granted, NoticeVersion: notice, Channel: "web",
		UserAgent: "Mozilla/5.0 test", IP: "203.0.113.77"}
}

func reasonCode(d policy.Decision) string {
	if d.Allow || len(d.Reasons) == 0 {
		return ""
	}
	return d.Reasons[0].Code
}

func wantError(t *testing.T, err error, code, requirement, inMessage string) {
	t.Helper()
	var pe *portrait.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v: want a *portrait.Error with code %s", err, code)
	}
	if pe.Code != code || pe.Requirement != requirement || !strings.Contains(pe.Message, inMessage) {
		t.Fatalf("error code=%s requirement=%s message=%q; want code=%s requirement=%s message containing %q",
			pe.Code, pe.Requirement, pe.Message, code, requirement, inMessage)
	}
}

// CN-4, CN-2: a grant lets the decision point allow; the withdrawal, one
// call like the grant, makes the very next decision deny.
func TestGrantThenWithdraw(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if d := e.decide(t, "u1", personalization); d.Allow || reasonCode(d) != "no_consent" {
		t.Fatalf("before any consent: %+v", d)
	}
	e.record(t, "u1", grant(personalization, "2"))
	if d := e.decide(t, "u1", personalization); !d.Allow {
		t.Fatalf("after grant: denied %+v", d.Reasons)
	}
	e.clock.Add(time.Minute)
	e.record(t, "u1", consent.Change{Purpose: personalization, Status: policy.Withdrawn})
	d := e.decide(t, "u1", personalization)
	if d.Allow || reasonCode(d) != "consent_withdrawn" || d.Reasons[0].Requirement != "CN-4" {
		t.Fatalf("after withdrawal: %+v", d)
	}

	h, err := e.ledger.History(ctx, accessGrant(t, e.point, e.keys.Pseudonym("u1")))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Status != policy.Granted || h[1].Status != policy.Withdrawn {
		t.Fatalf("history %+v", h)
	}
	g := h[0]
	if g.IP != "203.0.113.0/24" || g.UserAgent != "Mozilla/5.0 test" || g.Channel != "web" || g.NoticeVersion != "2" {
		t.Fatalf("grant evidence %+v", g)
	}
	if strings.Join(g.Categories, ",") != "user.behavior.browsing_history,user.location.imprecise" {
		t.Fatalf("categories %v: want those of the fields declared for personalization", g.Categories)
	}
	if h[1].NoticeVersion != "2" || h[1].Channel != "api" {
		t.Fatalf("withdrawal defaults: %+v", h[1])
	}
}

// CN-3: consent for an older notice is refused at recording, and a new
// notice version in the catalog makes the consent on record insufficient.
func TestNoticeVersion(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		_, err := e.ledger.Record(context.Background(), operator, consent.ByID("u1"), grant(personalization, "1"))
		wantError(t, err, portrait.EINVALID, "CN-3", `current notice version "2"`)
		_, err = e.ledger.Record(context.Background(), operator, consent.ByID("u1"), grant(personalization, ""))
		wantError(t, err, portrait.EINVALID, "CN-3", `current notice version "2"`)

		e.record(t, "u1", grant(personalization, "2"))
		// The catalog is redeployed with notice version 3: another node (or
		// this one restarted) decides against it.
		n := newNode(t, e.store, e.path, testCatalog("3"))
		d := n.decide(t, "u1", personalization)
		if d.Allow || reasonCode(d) != "notice_changed" || d.Reasons[0].Requirement != "CN-3" {
			t.Fatalf("after notice change: %+v", d)
		}
		st, _ := n.ledger.State(context.Background(), n.keys.Pseudonym("u1"))
		if !n.ledger.ShouldAsk(st, personalization) {
			t.Fatal("ShouldAsk is false although the notice changed")
		}
		n.record(t, "u1", grant(personalization, "3"))
		if d := n.decide(t, "u1", personalization); !d.Allow {
			t.Fatalf("after consenting to the new notice: %+v", d.Reasons)
		}
	})
}

// SM-3: a minor's consent must come from a guardian.
func TestMinorNeedsGuardian(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.keys.Pseudonym("kid")
		e.record(t, "kid", consent.Change{Purpose: ads, Status: policy.Refused})
		if err := e.ledger.SetFlags(ctx, operator, p, portrait.Flags{Minor: true, Personalization: 100}, consent.KindMinor); err != nil {
			t.Fatal(err)
		}
		_, err := e.ledger.Record(ctx, operator, consent.ByID("kid"), grant(personalization, "2"))
		wantError(t, err, portrait.EDENIED, "SM-3", "guardian")
		if h, _ := e.ledger.History(ctx, accessGrant(t, e.point, p)); len(h) != 1 {
			t.Fatalf("refused grant was recorded: %+v", h)
		}
		// A token the subject made up, one for another purpose or another
		// subject, and the subject minting its own: all refused.
		c := grant(personalization, "2")
		for _, bad := range []string{"pg1.AAAAAAAAAAAAAAAAAAAAAA.AAAA", "true"} {
			c.GuardianToken = bad
			_, err = e.ledger.Record(ctx, operator, consent.ByID("kid"), c)
			wantError(t, err, portrait.EDENIED, "SM-3", "guardian")
		}
		other, _, err := e.ledger.GuardianToken(ctx, operator, consent.ByID("kid"), ads)
		if err != nil {
			t.Fatal(err)
		}
		c.GuardianToken = other
		_, err = e.ledger.Record(ctx, operator, consent.ByID("kid"), c)
		wantError(t, err, portrait.EDENIED, "SM-3", "guardian")
		sibling, _, _ := e.ledger.GuardianToken(ctx, operator, consent.ByID("kid2"), personalization)
		c.GuardianToken = sibling
		_, err = e.ledger.Record(ctx, operator, consent.ByID("kid"), c)
		wantError(t, err, portrait.EDENIED, "SM-3", "guardian")
		_, _, err = e.ledger.GuardianToken(ctx, policy.Caller{Role: policy.Subject, Pseudonym: p}, consent.ByPseudonym(p), personalization)
		wantError(t, err, portrait.EFORBIDDEN, "SM-3", "verified guardian flow")
		// The verified flow's token for this subject and purpose is accepted.
		c.GuardianToken, _, err = e.ledger.GuardianToken(ctx, operator, consent.ByID("kid"), personalization)
		if err != nil {
			t.Fatal(err)
		}
		r := e.record(t, "kid", c)
		if !r.Guardian {
			t.Fatal("receipt does not say the guardian consented")
		}
		if d := e.decide(t, "kid", personalization); !d.Allow {
			t.Fatalf("guardian consent: %+v", d.Reasons)
		}
	})
}

// CN-12: Sec-GPC opts out of advertising and sharing purposes only, and a
// repeated signal records nothing new.
func TestGPC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.record(t, "u1", grant(personalization, "2"))
	e.record(t, "u1", grant(ads, "1"))
	rs, err := e.ledger.GPC(ctx, operator, consent.ByID("u1"), "Firefox", "2001:db8:1234:5678::1")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rs {
		if r.Channel != "gpc" {
			t.Fatalf("GPC receipt channel %q", r.Channel)
		}
		got[r.Purpose] = r.Status
	}
	if len(got) != 2 || got[ads] != "withdrawn" || got[sharing] != "refused" {
		t.Fatalf("GPC recorded %v; want ads withdrawn and sharing refused, nothing else", got)
	}
	if d := e.decide(t, "u1", personalization); !d.Allow {
		t.Fatal("GPC touched personalization, which is not advertising or sharing")
	}
	if d := e.decide(t, "u1", ads); d.Allow {
		t.Fatal("ads still allowed after GPC")
	}
	h, _ := e.ledger.History(ctx, accessGrant(t, e.point, e.keys.Pseudonym("u1")))
	if last := h[len(h)-1]; last.IP != "2001:db8:1234::/48" {
		t.Fatalf("IPv6 evidence kept as %q, want the /48", last.IP)
	}
	again, err := e.ledger.GPC(ctx, operator, consent.ByID("u1"), "Firefox", "")
	if err != nil || len(again) != 0 {
		t.Fatalf("second GPC: %d receipts, %v; want none", len(again), err)
	}
	if h2, _ := e.ledger.History(ctx, accessGrant(t, e.point, e.keys.Pseudonym("u1"))); len(h2) != len(h) {
		t.Fatalf("second GPC added %d records", len(h2)-len(h))
	}
}

// CN-2: the receipt verifies offline; any change to it fails.
func TestReceipt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := e.record(t, "u1", grant(sharing, "1"))
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	v, err := consent.VerifyReceipt(data, e.keys.ReceiptKey().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if v.Issuer != "Example Shop" || v.Purpose != sharing || v.Status != "granted" || v.NoticeVersion != "1" ||
		!v.Separate || len(v.NoticeHash) != 64 || strings.Join(v.Categories, ",") != "user.contact.email" ||
		v.Pseudonym != e.keys.Pseudonym("u1") {
		t.Fatalf("receipt %+v", v)
	}
	// The log entry it names records the same decision.
	entries, err := e.store.LogEntries(ctx, v.LogIndex, v.LogIndex+1)
	if err != nil {
		t.Fatal(err)
	}
	var logged audit.Record
	if err := json.Unmarshal(entries[0].Data, &logged); err != nil {
		t.Fatal(err)
	}
	if logged.Kind != "consent" || logged.Digest != v.Digest || logged.Pseudonym != v.Pseudonym || logged.Action != "granted" {
		t.Fatalf("log entry %d is %+v, receipt digest %s", v.LogIndex, logged, v.Digest)
	}
	if bytes.Contains(entries[0].Data, []byte("203.0.113")) || bytes.Contains(entries[0].Data, []byte("Mozilla")) {
		t.Fatalf("audit entry holds personal evidence: %s", entries[0].Data)
	}

	var m map[string]any
	json.Unmarshal(data, &m)
	for field, val := range map[string]any{"status": "withdrawn", "purpose": ads, "notice_version": "0",
		"time": "2020-01-01T00:00:00Z", "log_index": 99, "categories": []string{}, "separate_consent": false} {
		t.Run("tampered "+field, func(t *testing.T) {
			c := map[string]any{}
			for k, v := range m {
				c[k] = v
			}
			c[field] = val
			b, _ := json.Marshal(c)
			if _, err := consent.VerifyReceipt(b, e.keys.ReceiptKey().Public().(ed25519.PublicKey)); !errors.Is(err, consent.ErrReceiptSignature) {
				t.Fatalf("tampered %s: %v", field, err)
			}
		})
	}
	extra := bytes.Replace(data, []byte(`{`), []byte(`{"note":"x",`), 1)
	if _, err := consent.VerifyReceipt(extra, e.keys.ReceiptKey().Public().(ed25519.PublicKey)); !errors.Is(err, consent.ErrReceiptMalformed) {
		t.Fatalf("unknown field: %v", err)
	}
	other, _ := keys.New(bytes.Repeat([]byte{1}, keys.MasterSize))
	if _, err := consent.VerifyReceipt(data, other.ReceiptKey().Public().(ed25519.PublicKey)); !errors.Is(err, consent.ErrReceiptSignature) {
		t.Fatalf("other key: %v", err)
	}
}

// CN-6: after a refusal the purpose is not asked again within the cooldown.
func TestRefusalCooldown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.keys.Pseudonym("u1")
	st, _ := e.ledger.State(ctx, p)
	if !e.ledger.ShouldAsk(st, personalization) {
		t.Fatal("never asked: ShouldAsk false")
	}
	if e.ledger.ShouldAsk(st, service) || e.ledger.ShouldAsk(st, "nonexistent") {
		t.Fatal("ShouldAsk true for a contract or undeclared purpose")
	}
	e.record(t, "u1", consent.Change{Purpose: personalization, Status: policy.Refused})
	for _, tt := range []struct {
		after time.Duration
		want  bool
	}{{time.Hour, false}, {46 * time.Hour, false}, {2 * time.Hour, true}} { // cumulative: 1h, 47h, 49h
		e.clock.Add(tt.after)
		st, _ := e.ledger.State(ctx, p)
		if got := e.ledger.ShouldAsk(st, personalization); got != tt.want {
			t.Fatalf("step of %v: ShouldAsk = %v, want %v", tt.after, got, tt.want)
		}
	}
	e.record(t, "u1", grant(personalization, "2"))
	st, _ = e.ledger.State(ctx, p)
	if e.ledger.ShouldAsk(st, personalization) {
		t.Fatal("ShouldAsk true while a current grant stands")
	}
}

// failingLog wraps a real store so that appending to the audit log fails
// inside the transaction, as when the log's storage is full.
type failingLog struct{ portrait.Store }

func (f failingLog) Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error {
	return f.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return fn(ctx, failingTx{tx}) })
}

type failingTx struct{ portrait.Tx }

func (failingTx) AppendLog(context.Context, []portrait.LogEntry) error {
	return errors.New("disk full")
}

// Invariant 3: if the audit log cannot record a consent change, the
// change (and the subject it would have created) is not made.
func TestFailClosed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	broken := newNode(t, failingLog{e.store}, e.path, testCatalog("2"))
	_, err := broken.ledger.Record(ctx, operator, consent.ByID("u1"), grant(personalization, "2"))
	if portrait.ErrorCode(err) != portrait.EUNAVAILABLE {
		t.Fatalf("record with a failing log: %v, want EUNAVAILABLE", err)
	}
	p := e.keys.Pseudonym("u1")
	if h, _ := e.store.ConsentHistory(ctx, accessGrant(t, e.point, p)); len(h) != 0 {
		t.Fatalf("consent recorded without its audit entry: %+v", h)
	}
	if s, _ := e.store.Subjects(ctx, []portrait.Pseudonym{p}); len(s) != 0 {
		t.Fatal("subject created without an audit entry")
	}
	e.record(t, "u1", consent.Change{Purpose: ads, Status: policy.Refused})
	if err := broken.ledger.SetFlags(ctx, operator, p, portrait.Flags{Restricted: true}, consent.KindRestriction); portrait.ErrorCode(err) != portrait.EUNAVAILABLE {
		t.Fatalf("set flags with a failing log: %v", err)
	}
	if st, _ := e.store.States(ctx, []portrait.Pseudonym{p}); st[p].Restricted {
		t.Fatal("restriction stored without its audit entry")
	}
	if err := broken.ledger.Suspend(ctx, regulator, policy.Suspension{Kind: policy.TargetPurpose, ID: ads, Reason: "probe"}); portrait.ErrorCode(err) != portrait.EUNAVAILABLE {
		t.Fatalf("suspend with a failing log: %v", err)
	}
	if s, _ := e.store.Suspensions(ctx); len(s) != 0 {
		t.Fatal("suspension stored without its audit entry")
	}
}

// Invariant 5, CN-4: two nodes over one store file; a withdrawal through
// one is seen by the other's very next State call, and so is a suspension.
func TestTwoNodes(t *testing.T) {
	a := newEnv(t)
	b := newNode(t, openStore(t, a.path), a.path, testCatalog("2"))
	a.record(t, "u1", grant(personalization, "2"))
	if d := b.decide(t, "u1", personalization); !d.Allow {
		t.Fatalf("node b does not see the grant: %+v", d.Reasons)
	}
	// b's state is cached now; a withdraws.
	a.record(t, "u1", consent.Change{Purpose: personalization, Status: policy.Withdrawn, Channel: "app"})
	if d := b.decide(t, "u1", personalization); d.Allow || reasonCode(d) != "consent_withdrawn" {
		t.Fatalf("node b still allows after withdrawal on node a: %+v", d)
	}
	a.record(t, "u1", grant(personalization, "2"))
	if d := b.decide(t, "u1", personalization); !d.Allow {
		t.Fatalf("node b misses the new grant: %+v", d.Reasons)
	}
	if err := a.ledger.Suspend(context.Background(), regulator, policy.Suspension{Kind: policy.TargetPurpose, ID: personalization, Reason: "investigation 7"}); err != nil {
		t.Fatal(err)
	}
	if d := b.decide(t, "u1", personalization); d.Allow || reasonCode(d) != "suspended" {
		t.Fatalf("node b ignores the suspension made on node a: %+v", d)
	}
}

// RO-6: only the regulator suspends and lifts.
func TestSuspendRegulatorOnly(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.record(t, "u1", grant(personalization, "2"))
	s := policy.Suspension{Kind: policy.TargetPurpose, ID: personalization, Reason: "unlawful profiling complaint"}
	for _, role := range []policy.Role{policy.Admin, policy.Operator, policy.Auditor, policy.Reviewer, policy.Subject, policy.System} {
		wantError(t, e.ledger.Suspend(ctx, policy.Caller{Role: role, ID: "x"}, s), portrait.EFORBIDDEN, "RO-6", "only the regulator")
	}
	wantError(t, e.ledger.Suspend(ctx, regulator, policy.Suspension{Kind: policy.TargetPurpose, ID: "nope", Reason: "r"}), portrait.EINVALID, "", "not declared")
	wantError(t, e.ledger.Suspend(ctx, regulator, policy.Suspension{Kind: policy.TargetPurpose, ID: personalization}), portrait.EINVALID, "RO-6", "reason")
	if err := e.ledger.Suspend(ctx, regulator, s); err != nil {
		t.Fatal(err)
	}
	d := e.decide(t, "u1", personalization)
	if d.Allow || reasonCode(d) != "suspended" || !strings.Contains(d.Reasons[0].Message, "unlawful profiling complaint") {
		t.Fatalf("after suspension: %+v", d)
	}
	wantError(t, e.ledger.Lift(ctx, policy.Caller{Role: policy.Admin, ID: "root"}, policy.TargetPurpose, personalization), portrait.EFORBIDDEN, "RO-6", "only the regulator")
	if d := e.decide(t, "u1", personalization); d.Allow {
		t.Fatal("an admin's refused lift lifted the suspension")
	}
	if err := e.ledger.Lift(ctx, regulator, policy.TargetPurpose, personalization); err != nil {
		t.Fatal(err)
	}
	if d := e.decide(t, "u1", personalization); !d.Allow {
		t.Fatalf("after lift: %+v", d.Reasons)
	}
	wantError(t, e.ledger.Lift(ctx, regulator, policy.TargetPurpose, personalization), portrait.ENOTFOUND, "", "not suspended")
}

// CN-1, CN-2, CM-5: refusals at recording name what is wrong.
func TestRecordRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.record(t, "u1", consent.Change{Purpose: ads, Status: policy.Refused})
	p1 := e.keys.Pseudonym("u1")
	self := policy.Caller{Role: policy.Subject, Pseudonym: p1}
	tests := []struct {
		name              string
		caller            policy.Caller
		subj              consent.Subject
		change            consent.Change
		code, req, inText string
	}{
		{"undeclared purpose", operator, consent.ByID("u1"), grant("telemetry", "1"), portrait.EINVALID, "CN-1", "declare it under purposes:"},
		{"no status", operator, consent.ByID("u1"), consent.Change{Purpose: ads}, portrait.EINVALID, "", "want granted, refused or withdrawn"},
		{"grant on contract basis", operator, consent.ByID("u1"), grant(service, "1"), portrait.EINVALID, "CN-1", "not consent"},
		{"other subject's token", policy.Caller{Role: policy.Subject, Pseudonym: "someone-else"}, consent.ByPseudonym(p1), grant(ads, "1"), portrait.EFORBIDDEN, "", "only its own"},
		{"auditor", policy.Caller{Role: policy.Auditor, ID: "a"}, consent.ByID("u1"), grant(ads, "1"), portrait.EFORBIDDEN, "CM-5", "operator key"},
		{"unknown pseudonym", operator, consent.ByPseudonym("0000"), grant(ads, "1"), portrait.ENOTFOUND, "", "not stored"},
		{"bad ip", operator, consent.ByID("u1"), consent.Change{Purpose: ads, Status: policy.Granted, NoticeVersion: "1", IP: "localhost"}, portrait.EINVALID, "", "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ledger.Record(ctx, tt.caller, tt.subj, tt.change)
			wantError(t, err, tt.code, tt.req, tt.inText)
		})
	}
	if h, _ := e.ledger.History(ctx, accessGrant(t, e.point, p1)); len(h) != 1 {
		t.Fatalf("refused changes were recorded: %d records", len(h))
	}
	// The subject's own token works, by pseudonym.
	if _, err := e.ledger.Record(ctx, self, consent.ByPseudonym(p1), grant(ads, "1")); err != nil {
		t.Fatal(err)
	}
}

func TestIPTruncation(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ in, want string }{
		{"198.51.100.23", "198.51.100.0/24"},
		{"198.51.100.23:4431", "198.51.100.0/24"},
		{"::ffff:198.51.100.23", "198.51.100.0/24"},
		{"2001:db8:aaaa:bbbb::1", "2001:db8:aaaa::/48"},
		{"[2001:db8:aaaa:bbbb::1]:443", "2001:db8:aaaa::/48"},
		{"", ""},
	} {
		id := "ip" + tt.in
		c := consent.Change{Purpose: ads, Status: policy.Refused, IP: tt.in}
		e.record(t, id, c)
		h, _ := e.ledger.History(context.Background(), accessGrant(t, e.point, e.keys.Pseudonym(id)))
		if got := h[len(h)-1].IP; got != tt.want {
			t.Errorf("IP %q stored as %q, want %q", tt.in, got, tt.want)
		}
	}
}

// CN-4: withdrawing deletes the labels that served only purposes without
// consent; labels still serving a granted purpose stay.
func TestWithdrawDeletesLabels(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.keys.Pseudonym("u1")
	e.record(t, "u1", grant(personalization, "2"))
	e.record(t, "u1", grant(ads, "1"))
	st, _ := e.ledger.State(ctx, p)
	d := e.point.Decide(policy.Request{State: st, Purpose: personalization, Action: policy.Derive, Caller: policy.Caller{Role: policy.System}})
	if !d.Allow {
		t.Fatal(d.Reasons)
	}
	err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var vals []portrait.LabelValue
		for _, l := range []string{"sports_fan", "big_spender"} {
			vals = append(vals, portrait.LabelValue{Grant: d.Grant, Pseudonym: p, Label: l, Version: 1, Sealed: []byte{1}, Computed: e.clock.Now()})
		}
		return tx.PutLabels(ctx, vals)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.record(t, "u1", consent.Change{Purpose: personalization, Status: policy.Withdrawn})
	st, _ = e.ledger.State(ctx, p)
	acc := e.point.Decide(policy.Request{State: st, Action: policy.Access, Caller: operator})
	labels, err := e.store.Labels(ctx, acc.Grant)
	if err != nil {
		t.Fatal(err)
	}
	if len(labels) != 1 || labels[0].Label != "big_spender" {
		t.Fatalf("labels after withdrawing personalization: %+v; want only big_spender (still serves ads)", labels)
	}
}

// LP-3, SR-7: suppressions and flags take effect on the next decision and
// are logged.
func TestFlagsAndSuppression(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p := e.keys.Pseudonym("u1")
	e.record(t, "u1", grant(personalization, "2"))
	size0, _ := e.store.LogSize(ctx)
	self := policy.Caller{Role: policy.Subject, Pseudonym: p}
	if err := e.ledger.Suppress(ctx, self, p, "sports_fan", false); err != nil {
		t.Fatal(err)
	}
	st, _ := e.ledger.State(ctx, p)
	d := e.point.Decide(policy.Request{State: st, Purpose: personalization, Action: policy.Use, Labels: []string{"sports_fan"}, Caller: operator})
	if d.Allow || reasonCode(d) != "label_suppressed" {
		t.Fatalf("deselected label still used: %+v", d)
	}
	wantError(t, e.ledger.Suppress(ctx, self, p, "no_such_label", true), portrait.EINVALID, "LP-1", "not declared")
	if err := e.ledger.Unsuppress(ctx, self, p, "sports_fan"); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.SetFlags(ctx, self, p, portrait.Flags{Restricted: true, Personalization: 100}, consent.KindRestriction); err != nil {
		t.Fatal(err)
	}
	if d := e.decide(t, "u1", personalization); d.Allow || reasonCode(d) != "restricted" {
		t.Fatalf("restriction ignored: %+v", d)
	}
	wantError(t, e.ledger.SetFlags(ctx, self, p, portrait.Flags{Personalization: 101}, consent.KindPersonalization), portrait.EINVALID, "LP-5", "0 (none) to 100")
	wantError(t, e.ledger.SetFlags(ctx, self, p, portrait.Flags{}, "whim"), portrait.EINVALID, "", "want one of")
	wantError(t, e.ledger.SetFlags(ctx, policy.Caller{Role: policy.Subject, Pseudonym: "other"}, p, portrait.Flags{}, consent.KindObjection), portrait.EFORBIDDEN, "", "own")
	if size, _ := e.store.LogSize(ctx); size != size0+3 {
		t.Fatalf("log grew by %d entries for 3 changes", size-size0)
	}
}

// countingStore counts the governance-state reads that reach the store.
type countingStore struct {
	portrait.Store
	mu     sync.Mutex
	states int
}

func (c *countingStore) States(ctx context.Context, ps []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	c.mu.Lock()
	c.states++
	c.mu.Unlock()
	return c.Store.States(ctx, ps)
}

// Invariant 5: states are served from memory while the generation stands,
// and reread as soon as it moves.
func TestStateCache(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	cs := &countingStore{Store: e.store}
	n := newNode(t, cs, e.path, testCatalog("2"))
	e.record(t, "u1", grant(ads, "1"))
	p := e.keys.Pseudonym("u1")
	for range 3 {
		if st, err := n.ledger.State(ctx, p); err != nil || st.Consents[ads].Status != policy.Granted {
			t.Fatalf("state %+v, %v", st, err)
		}
	}
	if cs.states != 1 {
		t.Fatalf("3 State calls read the store %d times; want 1", cs.states)
	}
	e.record(t, "u1", consent.Change{Purpose: ads, Status: policy.Withdrawn})
	if st, _ := n.ledger.State(ctx, p); st.Consents[ads].Status != policy.Withdrawn || cs.states != 2 {
		t.Fatalf("after a change elsewhere: status %s, %d store reads", st.Consents[ads].Status, cs.states)
	}
}

func BenchmarkStateCached(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	e.record(b, "u1", grant(ads, "1"))
	p := e.keys.Pseudonym("u1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.ledger.State(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		st := policy.Granted
		if i%2 == 1 {
			st = policy.Withdrawn
		}
		i++
		if _, err := e.ledger.Record(ctx, operator, consent.ByID("u1"), consent.Change{Purpose: ads, Status: st, NoticeVersion: "1"}); err != nil {
			b.Fatal(err)
		}
	}
}

// accessGrant is the subject-access grant the rights service would hold.
func accessGrant(tb testing.TB, point *policy.Point, pseudonym portrait.Pseudonym) policy.Grant {
	tb.Helper()
	d := point.Decide(policy.Request{State: &policy.State{Pseudonym: pseudonym}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
	if !d.Allow {
		tb.Fatalf("access grant for %s: %v", pseudonym, d.Reasons)
	}
	return d.Grant
}

// genCounter is a real store that counts its generation reads.
type genCounter struct {
	portrait.Store
	n atomic.Int64
}

func (g *genCounter) Generation(ctx context.Context) (int64, error) {
	g.n.Add(1)
	return g.Store.Generation(ctx)
}

// TestAtGeneration: under AtGeneration, StatesAt reads no generation and
// returns the one given; the states are still the store's, as fresh as a
// read made after it (invariant 5: a change committed after the
// request's own read binds the next request, which reads afresh).
func TestAtGeneration(t *testing.T) {
	onEachStore(t, func(t *testing.T, base *env) {
		gc := &genCounter{Store: base.store}
		e := newNode(t, gc, base.path, testCatalog("2"))
		ctx := context.Background()
		p := e.keys.Pseudonym("ann")
		e.record(t, "ann", grant(personalization, "2"))
		gen, err := gc.Store.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gc.n.Store(0)
		states, got, err := e.ledger.StatesAt(consent.AtGeneration(ctx, gen), []portrait.Pseudonym{p})
		if err != nil || got != gen || gc.n.Load() != 0 {
			t.Fatalf("StatesAt at %d: gen %d, %d generation reads, %v; want %d and none", gen, got, gc.n.Load(), err, gen)
		}
		if d := e.point.Decide(policy.Request{State: states[p], Purpose: personalization, Action: policy.Use, Caller: operator}); !d.Allow {
			t.Fatalf("granted consent not seen: %+v", d.Reasons)
		}
		// Without it, every call reads the generation, and a withdrawal
		// binds the very next call.
		e.record(t, "ann", consent.Change{Purpose: personalization, Status: policy.Withdrawn, NoticeVersion: "2", Channel: "web"})
		states, got, err = e.ledger.StatesAt(ctx, []portrait.Pseudonym{p})
		if err != nil || got <= gen || gc.n.Load() == 0 {
			t.Fatalf("StatesAt: gen %d after %d, %d reads, %v", got, gen, gc.n.Load(), err)
		}
		if d := e.point.Decide(policy.Request{State: states[p], Purpose: personalization, Action: policy.Use, Caller: operator}); d.Allow {
			t.Fatal("a withdrawal did not bind the next call")
		}
	})
}
