package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/sqlite/sqlitetest"
	"github.com/portrait-dev/portrait/storetest"
	"github.com/portrait-dev/portrait/stream"
)

// The test vector of the Standard Webhooks specification.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignStandardWebhooksVector(t *testing.T) {
	sig, err := delivery.Sign(vecSecret, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if err != nil || sig != vecSig {
		t.Fatalf("Sign = %q, %v; want %q", sig, err, vecSig)
	}
	h := http.Header{}
	h.Set("webhook-id", vecID)
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,bm9wZQ== "+vecSig) // several signatures: one must match
	now := time.Unix(vecTS+10, 0)
	if err := delivery.Verify(vecSecret, h, []byte(vecBody), now, 5*time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	bad := []struct {
		name   string
		mutate func(h http.Header) ([]byte, time.Time)
	}{
		{"body changed", func(h http.Header) ([]byte, time.Time) { return []byte(`{"test": 2432232315}`), now }},
		{"id changed", func(h http.Header) ([]byte, time.Time) { h.Set("webhook-id", "msg_other"); return []byte(vecBody), now }},
		{"replayed late", func(h http.Header) ([]byte, time.Time) { return []byte(vecBody), now.Add(time.Hour) }},
		{"no signature", func(h http.Header) ([]byte, time.Time) { h.Del("webhook-signature"); return []byte(vecBody), now }},
		{"v2 only", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-signature", "v2,"+vecSig[3:])
			return []byte(vecBody), now
		}},
	}
	for _, c := range bad {
		hc := h.Clone()
		body, at := c.mutate(hc)
		if err := delivery.Verify(vecSecret, hc, body, at, 5*time.Minute); !errors.Is(err, delivery.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", c.name, err)
		}
	}
	if _, err := delivery.Sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", vecID, time.Now(), nil); err == nil {
		t.Error("a secret without whsec_ was accepted")
	}
}

type env struct {
	path   string
	store  portrait.Store
	keys   *keys.Keyring
	log    *audit.Log
	ledger *consent.Ledger
	rights *rights.Service
	point  *policy.Point
}

func newEnv(t *testing.T) *env { return newEnvOn(t, false) }

// newEnvOn opens the env on PostgreSQL (pg) or SQLite; path is set on
// SQLite only.
func newEnvOn(t *testing.T, pg bool) *env {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{}
	if pg {
		db, err := postgres.Open(ctx, storetest.PostgresDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		e.store = db
	} else {
		e.path = filepath.Join(t.TempDir(), "p.db")
		db, err := sqlite.Open(ctx, e.path)
		if err != nil {
			t.Fatal(err)
		}
		e.store = db
	}
	t.Cleanup(func() { e.store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	if e.keys, err = keys.New(master); err != nil {
		t.Fatal(err)
	}
	point := policy.New(cat)
	e.point = point
	if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
		t.Fatal(err)
	}
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: point, Log: e.log, Keys: e.keys}, consent.Options{}); err != nil {
		t.Fatal(err)
	}
	if e.rights, err = rights.New(rights.Deps{Store: e.store, Point: point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, rights.Options{}); err != nil {
		t.Fatal(err)
	}
	return e
}

var operator = policy.Caller{Role: policy.Operator, ID: "op"}

// receiver is a webhook endpoint that verifies every signature, as a
// destination must, and can be told to fail.
type receiver struct {
	mu     sync.Mutex
	events []delivery.Event
	ids    map[string]int
	fail   atomic.Int64 // answer 503 to this many requests
	bad    atomic.Int64 // requests whose signature did not verify
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := delivery.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
		rc.bad.Add(1)
		http.Error(w, err.Error(), 401)
		return
	}
	if rc.fail.Add(-1) >= 0 {
		http.Error(w, "busy", 503)
		return
	}
	var ev delivery.Event
	json.Unmarshal(body, &ev)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.ids[r.Header.Get("webhook-id")]++
	if rc.ids[r.Header.Get("webhook-id")] == 1 { // deduplicate by webhook-id
		rc.events = append(rc.events, ev)
	}
}

const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="

// Withdrawal, objection, restriction and erasure reach a signed webhook
// and a NATS subject, each as the pseudonym with the log index that
// records it; the other log records send nothing (GDPR Art. 19).
func TestDispatchRightsEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rc := &receiver{ids: map[string]int{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()

	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	natsGot := make(chan *nats.Msg, 16)
	if _, err := nc.ChanSubscribe("portrait.rights", natsGot); err != nil {
		t.Fatal(err)
	}

	ps := e.keys.Pseudonym("hana")
	rec := func(status policy.Status) {
		if _, err := e.ledger.Record(ctx, operator, consent.ByID("hana"), consent.Change{Purpose: "marketing", Status: status, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	rec(policy.Granted)
	rec(policy.Withdrawn)
	if err := e.ledger.SetFlags(ctx, operator, ps, portrait.Flags{ObjectMarketing: true, Personalization: 100}, consent.KindObjection); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.SetFlags(ctx, operator, ps, portrait.Flags{ObjectMarketing: true, Restricted: true, Personalization: 100}, consent.KindRestriction); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rights.Erase(ctx, operator, ps); err != nil {
		t.Fatal(err)
	}

	d := &delivery.Dispatcher{Store: e.store, Audit: e.log, Backoff: func(int) time.Duration { return time.Millisecond },
		Destinations: []delivery.Destination{
			{Name: "crm", Sender: &delivery.Webhook{URL: hook.URL, Secret: secret}},
			{Name: "bus", Sender: &stream.Publisher{NC: nc, Subject: "portrait.rights"}, Types: []string{delivery.Erasure, delivery.Withdrawal}},
		}}
	rc.fail.Store(2) // the first two attempts fail: retried, not lost
	if err := d.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{delivery.Withdrawal, delivery.Objection, delivery.Restriction, delivery.Erasure}
	if len(rc.events) != len(want) || rc.bad.Load() != 0 {
		t.Fatalf("webhook got %+v (bad signatures %d), want %v", rc.events, rc.bad.Load(), want)
	}
	for i, ev := range rc.events {
		if ev.Type != want[i] || ev.Pseudonym != ps || ev.LogIndex <= 0 {
			t.Errorf("event %d = %+v, want %s about %s", i, ev, want[i], ps)
		}
	}
	if len(d.Dead()) != 0 {
		t.Errorf("dead letters after retries: %+v", d.Dead())
	}
	var onBus []string
	for len(onBus) < 2 {
		select {
		case m := <-natsGot:
			var ev delivery.Event
			json.Unmarshal(m.Data, &ev)
			if m.Header.Get("Nats-Msg-Id") != ev.ID {
				t.Errorf("Nats-Msg-Id %q, event id %q", m.Header.Get("Nats-Msg-Id"), ev.ID)
			}
			onBus = append(onBus, ev.Type)
		case <-time.After(5 * time.Second):
			t.Fatalf("NATS got %v", onBus)
		}
	}
	if onBus[0] != delivery.Withdrawal || onBus[1] != delivery.Erasure {
		t.Errorf("NATS subject got %v, want withdrawal and erasure only", onBus)
	}
	// A second poll sends nothing again; nor does a restarted node,
	// which reads the cursor back from the log.
	if err := d.Poll(ctx); err != nil || len(rc.events) != 4 || len(rc.ids) != 4 {
		t.Errorf("second poll: %v, %d events", err, len(rc.events))
	}
	restarted := &delivery.Dispatcher{Store: e.store, Audit: e.log, Destinations: d.Destinations}
	if err := restarted.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Poll(ctx); err != nil || len(rc.ids) != 4 {
		t.Errorf("after restart: %v, %d distinct deliveries", err, len(rc.ids))
	}
	for id, n := range rc.ids {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

// A destination that keeps failing gets a dead letter per event; the list
// can be read and replayed once it is back, and a replay that succeeds
// leaves the list.
func TestDeadLetters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rc := &receiver{ids: map[string]int{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	e.ledger.Record(ctx, operator, consent.ByID("ivan"), consent.Change{Purpose: "marketing", Status: policy.Withdrawn})
	var tries atomic.Int64
	d := &delivery.Dispatcher{Store: e.store, Audit: e.log, Attempts: 3,
		Backoff:      func(n int) time.Duration { tries.Add(1); return time.Millisecond << n },
		Destinations: []delivery.Destination{{Name: "crm", Sender: &delivery.Webhook{URL: hook.URL, Secret: secret}}}}
	rc.fail.Store(3)
	if err := d.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	dead := d.Dead()
	if len(dead) != 1 || dead[0].Attempts != 3 || dead[0].Event.Type != delivery.Withdrawal || tries.Load() != 2 || len(rc.events) != 0 {
		t.Fatalf("dead letters %+v after %d backoffs", dead, tries.Load())
	}
	// The dead letter survives a restart: it is in the log.
	again := &delivery.Dispatcher{Store: e.store, Audit: e.log, Destinations: d.Destinations}
	if err := again.Load(ctx); err != nil || len(again.Dead()) != 1 || again.Dead()[0].Event.ID != dead[0].Event.ID {
		t.Fatalf("dead letters after restart: %v %+v", err, again.Dead())
	}
	d = again
	if err := d.Replay(ctx, "crm", "nosuch"); portrait.ErrorCode(err) != portrait.ENOTFOUND {
		t.Errorf("replay of an unknown letter: %v", err)
	}
	if err := d.Replay(ctx, "crm", dead[0].Event.ID); err != nil {
		t.Fatal(err)
	}
	if len(d.Dead()) != 0 || len(rc.events) != 1 {
		t.Errorf("after replay: dead %d, delivered %d", len(d.Dead()), len(rc.events))
	}
	// and the replay is remembered too.
	third := &delivery.Dispatcher{Store: e.store, Audit: e.log}
	if err := third.Load(ctx); err != nil || len(third.Dead()) != 0 {
		t.Errorf("dead letters after replay and restart: %v %+v", err, third.Dead())
	}
}

// TestDispatchRefusesTamperedRecord: a withdrawal record rewritten in the
// store to name another subject is not sent anywhere; the dispatcher
// stops with the tamper finding (invariant 8).
func TestDispatchRefusesTamperedRecord(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rc := &receiver{ids: map[string]int{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	for _, st := range []policy.Status{policy.Granted, policy.Withdrawn} {
		if _, err := e.ledger.Record(ctx, operator, consent.ByID("hana"), consent.Change{Purpose: "marketing", Status: st, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	size, err := e.store.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hana, other := e.keys.Pseudonym("hana"), e.keys.Pseudonym("someone-else")
	storetest.EditLogEntry(t, sqlitetest.Raw(t, e.path), size-1, func(data []byte) []byte {
		if !bytes.Contains(data, []byte(hana)) {
			t.Fatalf("the withdrawal record does not name its subject: %s", data)
		}
		return bytes.ReplaceAll(data, []byte(hana), []byte(other))
	})
	d := &delivery.Dispatcher{Store: e.store, Audit: e.log, Backoff: func(int) time.Duration { return time.Millisecond },
		Destinations: []delivery.Destination{{Name: "crm", Sender: &delivery.Webhook{URL: hook.URL, Secret: secret}}}}
	if err := d.Poll(ctx); !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("poll over a rewritten record: %v, want the tamper finding", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.events) != 0 {
		t.Fatalf("a forged record was delivered: %+v", rc.events)
	}
}
