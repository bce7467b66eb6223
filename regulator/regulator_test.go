package regulator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
	"github.com/portrait-dev/portrait/witness"
)

// engines opens a fresh regulator database on each store engine.
var engines = []struct {
	name string
	open func(t *testing.T) regulator.DB
}{
	{"sqlite", func(t *testing.T) regulator.DB {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "regulator.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
	{"postgres", func(t *testing.T) regulator.DB {
		db, err := postgres.Open(context.Background(), storetest.PostgresDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}},
}

type fixture struct {
	node     *regulator.Node
	srv      *httptest.Server
	admin    string
	witKey   ed25519.PrivateKey
	verifier *witness.Verifier
}

func newFixture(t *testing.T, db regulator.DB) *fixture {
	t.Helper()
	_, logKey, _ := ed25519.GenerateKey(rand.Reader)
	_, witKey, _ := ed25519.GenerateKey(rand.Reader)
	l, err := audit.New("regulator.test/log", logKey)
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := witness.NewSigner("regulator.test/witness", witKey)
	if err != nil {
		t.Fatal(err)
	}
	n := regulator.New(regulator.Deps{DB: db, Log: l, Cosigner: cosigner})
	if err := n.EnsureAdmin(context.Background(), "supervision/admin", "admin-key"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler(slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	v, _ := witness.NewVerifier(cosigner.VerifierKey())
	return &fixture{node: n, srv: srv, admin: "admin-key", witKey: witKey, verifier: v}
}

func (f *fixture) call(t *testing.T, method, path, key, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode
}

// company is a company's audit log, joined to the regulator.
type company struct {
	id, token string
	log       *audit.Log
	key       ed25519.PrivateKey
	mem       *audit.Memory
	link      *regulator.Link
}

func (f *fixture) enrol(t *testing.T, origin string) *company {
	t.Helper()
	var out struct{ ID, Enrolment_token string }
	if code := f.call(t, "POST", "/v1/companies", f.admin, `{"name":"`+origin+`"}`, &out); code != 201 {
		t.Fatalf("enrol: %d", code)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l, err := audit.New(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := regulator.NewClient(f.srv.URL, f.node.WitnessKey(), out.Enrolment_token, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	co := &company{id: out.ID, token: out.Enrolment_token, log: l, key: key, mem: &audit.Memory{}}
	co.link = &regulator.Link{Client: c, Log: l, Store: co.mem}
	if err := c.File(context.Background(), regulator.Filing{Origin: origin, LogKey: l.VerifierKey(), CatalogDigest: "sha256:x"}); err != nil {
		t.Fatal(err)
	}
	return co
}

func (c *company) append(t *testing.T, n int) {
	t.Helper()
	for range n {
		if _, err := c.log.Append(context.Background(), c.mem, audit.Record{Kind: "consent", Pseudonym: "ps_1"}); err != nil {
			t.Fatal(err)
		}
	}
}

func (c *company) sign(t *testing.T) []byte {
	t.Helper()
	msg, err := c.log.Sign(context.Background(), c.mem)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestWitness: checkpoints are cosigned only when consistent with the last
// cosigned one and with the mirrored entries (invariant 8); the cosigned
// checkpoints verify with independent C2SP implementations (SG-2).
func TestWitness(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, e.open(t))
			a := f.enrol(t, "a.example/log")
			a.append(t, 5)
			cp5, err := a.link.Submit(ctx, a.sign(t))
			if err != nil {
				t.Fatal(err)
			}
			a.append(t, 7)
			cp12, err := a.link.Submit(ctx, a.sign(t))
			if err != nil {
				t.Fatal(err)
			}
			// Independent verifiers: torchwood's cosignature verifier and
			// transparency-dev/formats' checkpoint parser.
			tw, _ := torchwood.NewCosignatureSigner("regulator.test/witness", f.witKey)
			logV, _ := note.NewVerifier(a.log.VerifierKey())
			n, err := note.Open(cp12, note.VerifierList(logV, tw.Verifier()))
			if err != nil || len(n.Sigs) != 2 {
				t.Fatalf("torchwood: %v (%d sigs)\n%s", err, len(n.Sigs), cp12)
			}
			if c, _, _, err := log.ParseCheckpoint(cp12, "a.example/log", logV, tw.Verifier()); err != nil || c.Size != 12 {
				t.Fatalf("formats: %v %+v", err, c)
			}
			// The regulator lists the company with its witnessed size.
			var list struct {
				Companies []struct {
					ID, Origin     string
					Witnessed_size int64
				}
			}
			f.call(t, "GET", "/v1/companies", f.admin, "", &list)
			if len(list.Companies) != 1 || list.Companies[0].Witnessed_size != 12 || list.Companies[0].Origin != "a.example/log" {
				t.Fatalf("companies: %+v", list)
			}
			// The mirror serves the entries back.
			got, err := a.link.Entries(ctx, 0, 12)
			if err != nil || len(got) != 12 {
				t.Fatalf("mirror: %d entries, %v", len(got), err)
			}
			latest, err := a.link.Checkpoint(ctx)
			if err != nil || !bytes.Equal(latest, cp12) {
				t.Fatalf("latest cosigned: %v\n%s", err, latest)
			}

			post := func(r witness.Request) int {
				resp, err := http.Post(f.srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(r.Marshal()))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			// A stale old size: 409 with the witnessed size.
			a.append(t, 1)
			cp13 := a.sign(t)
			if _, err := witness.AddCheckpoint(ctx, http.DefaultClient, f.srv.URL, witness.Request{OldSize: 5, Checkpoint: cp13}, f.verifier); !isConflict(err, 12) {
				t.Errorf("stale old size: %v", err)
			}

			// A fork: another log with the same key and origin, rewritten.
			// (A Log caches hashes of the one store it serves, so the fork
			// gets its own Log with the same key.)
			forkLog, _ := audit.New("a.example/log", a.key)
			forked := &audit.Memory{}
			for range 13 {
				if _, err := forkLog.Append(ctx, forked, audit.Record{Kind: "consent", Pseudonym: "ps_2"}); err != nil {
					t.Fatal(err)
				}
			}
			forkCP, _ := forkLog.Sign(ctx, forked)
			proof, _ := forkLog.ConsistencyProof(ctx, forked, 12, 13)
			if code := post(witness.Request{OldSize: 12, Proof: proof, Checkpoint: forkCP}); code != 422 {
				t.Errorf("forked tree: %d, want 422", code)
			}
			// The same size again with another root: 422.
			// (A Log refuses to sign a head smaller than one it has verified,
			// so the shorter fork gets a Log of its own.)
			shortLog, _ := audit.New("a.example/log", a.key)
			same, err := shortLog.Sign(ctx, &truncated{forked, 12})
			if err != nil {
				t.Fatal(err)
			}
			if code := post(witness.Request{OldSize: 12, Checkpoint: same}); code != 422 {
				t.Errorf("same size, other root: %d, want 422", code)
			}
			// Signed by another key under the same origin: 403.
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			impostor, _ := audit.New("a.example/log", other)
			imp, _ := impostor.Sign(ctx, a.mem)
			if code := post(witness.Request{OldSize: 12, Checkpoint: imp}); code != 403 {
				t.Errorf("impostor key: %d, want 403", code)
			}
			// Unknown origin: 404. Malformed: 400. Old size beyond: 400.
			unknown, _ := audit.New("nobody.example/log", other)
			unk, _ := unknown.Sign(ctx, a.mem)
			if code := post(witness.Request{Checkpoint: unk}); code != 404 {
				t.Errorf("unknown origin: %d, want 404", code)
			}
			if code := post(witness.Request{OldSize: 14, Checkpoint: cp13}); code != 400 {
				t.Errorf("old size beyond: %d, want 400", code)
			}
			// Entries not uploaded: 422, though the proof is fine.
			proof13, _ := a.log.ConsistencyProof(ctx, a.mem, 12, 13)
			if code := post(witness.Request{OldSize: 12, Proof: proof13, Checkpoint: cp13}); code != 422 {
				t.Errorf("entries missing from the mirror: %d, want 422", code)
			}
			// Uploaded entries that are not the log's: 422.
			if _, err := f.node.Mirror(ctx, mustCompany(t, f, a.id), 12, [][]byte{[]byte("not the entry")}); err != nil {
				t.Fatal(err)
			}
			if code := post(witness.Request{OldSize: 12, Proof: proof13, Checkpoint: cp13}); code != 422 {
				t.Errorf("mirror differs from the log: %d, want 422", code)
			}
			// Witnessed entries cannot be replaced.
			if _, err := f.node.Mirror(ctx, mustCompany(t, f, a.id), 11, [][]byte{[]byte("x")}); err == nil {
				t.Error("mirror replaced a witnessed entry")
			}
			// The honest client recovers (re-uploads, resubmits).
			if _, err := a.link.Submit(ctx, cp13); err != nil {
				t.Fatal(err)
			}
			_ = cp5
		})
	}
}

func mustCompany(t *testing.T, f *fixture, id string) regulator.Company {
	c, err := f.node.Company(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isConflict(err error, size int64) bool {
	var c *witness.ConflictError
	return errors.As(err, &c) && c.Size == size
}

// truncated shows a log of the first n entries of r.
type truncated struct {
	audit.Reader
	n int64
}

func (t *truncated) LogSize(context.Context) (int64, error) { return t.n, nil }

// TestRoles: every route refuses callers without the role (deny by
// default), and the enrolment token only works for its own company.
func TestRoles(t *testing.T) {
	f := newFixture(t, engines[0].open(t))
	var key struct{ Key string }
	if code := f.call(t, "POST", "/v1/staff", f.admin, `{"name":"inspection/li.lei","role":"inspector"}`, &key); code != 201 {
		t.Fatalf("add inspector: %d", code)
	}
	a := f.enrol(t, "a.example/log")
	for _, tc := range []struct {
		method, path, key, body string
		want                    int
	}{
		{"POST", "/v1/companies", "", `{"name":"x"}`, 401},
		{"POST", "/v1/companies", "wrong", `{"name":"x"}`, 401},
		{"POST", "/v1/companies", key.Key, `{"name":"x"}`, 403},
		{"POST", "/v1/companies", a.token, `{"name":"x"}`, 401},
		{"POST", "/v1/companies", f.admin, `{"name":""}`, 400},
		{"POST", "/v1/companies", f.admin, `{"name":"x","extra":1}`, 400},
		{"GET", "/v1/companies", key.Key, "", 200},
		{"GET", "/v1/companies", a.token, "", 401},
		{"POST", "/v1/staff", key.Key, `{"name":"x","role":"regulator-admin"}`, 403},
		{"POST", "/v1/staff", f.admin, `{"name":"x","role":"admin"}`, 400},
		{"POST", "/v1/staff", f.admin, `{"name":"inspection/li.lei","role":"inspector"}`, 409},
		{"POST", "/v1/filings", f.admin, `{}`, 401},
		{"POST", "/v1/filings", a.token, `{"origin":"a.example/log","log_key":"bad"}`, 400},
		{"GET", "/v1/mirror/entries?from=0&to=1", f.admin, "", 401},
		{"GET", "/v1/mirror/entries?from=1&to=0", a.token, "", 400},
		{"GET", "/v1/companies/" + a.id + "/entries?from=0&to=0", key.Key, "", 200},
		{"GET", "/v1/witness/key", "", "", 200},
		{"GET", "/healthz", "", "", 200},
	} {
		if got := f.call(t, tc.method, tc.path, tc.key, tc.body, nil); got != tc.want {
			t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, tc.key, got, tc.want)
		}
	}
}

// TestVerifyOrder: an engine acts only on an order signed by its
// regulator and addressed to it (invariant 8).
func TestVerifyOrder(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := witness.NewSigner("regulator.test/witness", key)
	forger, _ := witness.NewSigner("regulator.test/witness", other)
	v, _ := witness.NewVerifier(s.VerifierKey())
	body := []byte(`{"id":"ord_1","company":"co_a","kind":"suspend","target":{"kind":"field","id":"income"},"reason":"r","issued":"2026-12-06T00:00:00Z","issued_by":"admin"}`)
	sign := func(s *witness.Signer, b []byte) regulator.SignedOrder {
		sig, err := s.SignStatement(regulator.OrderPrefix, b)
		if err != nil {
			t.Fatal(err)
		}
		return regulator.SignedOrder{Body: b, Signature: sig}
	}
	if o, err := regulator.VerifyOrder(sign(s, body), v, "co_a"); err != nil || o.Target.ID != "income" {
		t.Fatalf("genuine order: %v %+v", err, o)
	}
	tampered := sign(s, body)
	tampered.Body = bytes.Replace(tampered.Body, []byte("income"), []byte("city"), 1)
	for name, tc := range map[string]struct {
		o       regulator.SignedOrder
		company string
	}{
		"forged":          {sign(forger, body), "co_a"},
		"tampered":        {tampered, "co_a"},
		"another company": {sign(s, body), "co_b"},
		"unknown fields":  {sign(s, []byte(`{"id":"ord_1","company":"co_a","kind":"suspend","admin":true}`)), "co_a"},
	} {
		if _, err := regulator.VerifyOrder(tc.o, v, tc.company); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// An order's first acknowledgement stands; a later one at another index
// (an engine restored from a backup re-applied the order) is kept beside
// it, once per index and at most 100 times; another company cannot
// acknowledge it. Both engines.
func TestReacknowledge(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, e.open(t))
			a := f.enrol(t, "a.example/log")
			b := f.enrol(t, "b.example/log")
			var ord struct{ ID string }
			if code := f.call(t, "POST", "/v1/orders", f.admin, `{"company":"`+a.id+`","kind":"suspend","target":{"kind":"field","id":"income"},"reason":"r"}`, &ord); code != 201 {
				t.Fatalf("order: %d", code)
			}
			for _, idx := range []int64{5, 5, 9, 9} {
				if err := a.link.Client.Ack(ctx, ord.ID, idx); err != nil {
					t.Fatalf("ack %d: %v", idx, err)
				}
			}
			if err := b.link.Client.Ack(ctx, ord.ID, 11); err == nil {
				t.Error("another company acknowledged the order")
			}
			var list struct {
				Orders []struct {
					Ack_log_index  *int64
					Reacknowledged []struct{ Log_index int64 }
				}
			}
			f.call(t, "GET", "/v1/companies/"+a.id+"/orders", f.admin, "", &list)
			if o := list.Orders[0]; o.Ack_log_index == nil || *o.Ack_log_index != 5 || len(o.Reacknowledged) != 1 || o.Reacknowledged[0].Log_index != 9 {
				t.Fatalf("after acks at 5, 5, 9, 9: %+v", list.Orders)
			}
			for i := range int64(99) {
				if err := a.link.Client.Ack(ctx, ord.ID, 100+i); err != nil {
					t.Fatalf("re-acknowledgement %d: %v", i+2, err)
				}
			}
			if err := a.link.Client.Ack(ctx, ord.ID, 1000); err == nil {
				t.Error("a 102nd acknowledgement was kept")
			}
		})
	}
}
