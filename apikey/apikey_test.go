package apikey_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

var ctx = context.Background()

// clock is a settable time for expiry and last-use tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	store portrait.Store
	svc   *apikey.Service
	log   *audit.Log
	clock *clock
	// node opens another engine on the same database and a Service over
	// it: another node, or `portrait keys` run beside a server.
	node func(t *testing.T) *apikey.Service
}

// onEachStore runs f over SQLite and, where PORTRAIT_TEST_POSTGRES is set,
// PostgreSQL (invariant 7).
func onEachStore(t *testing.T, f func(t *testing.T, e env)) {
	// Each engine's database, and how to open an engine on it.
	where := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "p.db") },
		"postgres": func(t *testing.T) string {
			if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
				t.Skip("PORTRAIT_TEST_POSTGRES is not set")
			}
			return storetest.PostgresDatabase(t)
		},
	}
	open := map[string]func(t *testing.T, db string) portrait.Store{
		"sqlite": func(t *testing.T, db string) portrait.Store {
			s, err := sqlite.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t *testing.T, db string) portrait.Store {
			s, err := postgres.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := where[name](t)
			s := open[name](t, db)
			master := make([]byte, keys.MasterSize)
			rand.Read(master)
			kr, _ := keys.New(master)
			log, err := audit.New("portrait.test/log", kr.LogKey())
			if err != nil {
				t.Fatal(err)
			}
			c := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
			node := func(t *testing.T) *apikey.Service {
				return apikey.New(apikey.Deps{Store: open[name](t, db), Log: log}, apikey.Options{Now: c.now})
			}
			f(t, env{store: s, svc: apikey.New(apikey.Deps{Store: s, Log: log}, apikey.Options{Now: c.now}), log: log, clock: c, node: node})
		})
	}
}

var admin = policy.Caller{Role: policy.Admin, ID: "admin/bootstrap"}

func code(err error) string { return portrait.ErrorCode(err) }

func requirement(err error) string {
	if e, ok := err.(*portrait.Error); ok {
		return e.Requirement
	}
	return ""
}

// TestCreateRefusals: a key needs a team/person name (RO-7), a role a
// company may give — never regulator (RO-6) — and a lifetime within
// bounds; each refusal names the field.
func TestCreateRefusals(t *testing.T) {
	onEachStore(t, func(t *testing.T, e env) {
		for _, tc := range []struct {
			name, role string
			ttl        time.Duration
			code, req  string
			field      string
		}{
			{"alice", "reviewer", 0, portrait.EINVALID, "RO-7", "name"},
			{"Risk/alice", "reviewer", 0, portrait.EINVALID, "RO-7", "name"},
			{"risk/alice/x", "reviewer", 0, portrait.EINVALID, "RO-7", "name"},
			{"risk/", "reviewer", 0, portrait.EINVALID, "RO-7", "name"},
			{"risk/al ice", "reviewer", 0, portrait.EINVALID, "RO-7", "name"},
			{"", "reviewer", 0, portrait.EINVALID, "RO-7", "name"},
			{"risk/alice", "regulator", 0, portrait.EINVALID, "RO-6", "role"},
			{"risk/alice", "subject", 0, portrait.EINVALID, "", "role"},
			{"risk/alice", "system", 0, portrait.EINVALID, "", "role"},
			{"risk/alice", "root", 0, portrait.EINVALID, "", "role"},
			{"risk/alice", "", 0, portrait.EINVALID, "", "role"},
			{"risk/alice", "reviewer", time.Second, portrait.EINVALID, "", "expires_in"},
			{"risk/alice", "reviewer", 366 * 24 * time.Hour, portrait.EINVALID, "", "expires_in"},
			{"risk/alice", "reviewer", -time.Hour, portrait.EINVALID, "", "expires_in"},
		} {
			_, err := e.svc.Create(ctx, admin, tc.name, policy.Role(tc.role), tc.ttl)
			if code(err) != tc.code || requirement(err) != tc.req || !strings.HasPrefix(portrait.ErrorMessage(err), tc.field+" ") {
				t.Errorf("Create(%q, %q, %s) = %v (code %s, requirement %q), want %s %q naming %s", tc.name, tc.role, tc.ttl, err, code(err), requirement(err), tc.code, tc.req, tc.field)
			}
		}
		if keys, _ := e.svc.List(ctx); len(keys) != 0 {
			t.Errorf("refused creations stored keys: %+v", keys)
		}
	})
}

// TestLifecycle creates, uses, lists, expires and revokes keys, and reads
// the audit records of each change (CM-5).
func TestLifecycle(t *testing.T) {
	onEachStore(t, func(t *testing.T, e env) {
		k, err := e.svc.Create(ctx, admin, "risk/alice", policy.Reviewer, 0)
		if err != nil {
			t.Fatal(err)
		}
		if k.Name != "risk/alice" || k.Role != policy.Reviewer || !strings.HasPrefix(k.Key, "pk_reviewer_") ||
			!k.Expires.Equal(e.clock.now().Add(apikey.DefaultTTL)) {
			t.Fatalf("created %+v", k)
		}
		c, err := e.svc.Authenticate(ctx, k.Key)
		if err != nil || c.Role != policy.Reviewer || c.ID != "risk/alice" {
			t.Fatalf("authenticate: %+v, %v", c, err)
		}
		if _, err := e.svc.Authenticate(ctx, k.Key+"x"); code(err) != portrait.EUNAUTHORIZED {
			t.Errorf("wrong key: %v", err)
		}
		if _, err := e.svc.Create(ctx, admin, "risk/alice", policy.Operator, time.Hour); code(err) != portrait.ECONFLICT || !strings.HasPrefix(portrait.ErrorMessage(err), "name ") {
			t.Errorf("duplicate name: %v", err)
		}
		bob, err := e.svc.Create(ctx, admin, "ops/bob", policy.Operator, 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}

		// The listing never holds a key or its hash.
		list, err := e.svc.List(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "ops/bob" || list[1].Name != "risk/alice" || !list[1].LastUsed.Equal(e.clock.now()) {
			t.Fatalf("list: %+v, %v", list, err)
		}
		js, _ := json.Marshal(list)
		for _, secret := range []string{k.Key, bob.Key, hex.EncodeToString(apikey.Hash(k.Key)), hex.EncodeToString(apikey.Hash(bob.Key))} {
			if bytes.Contains(js, []byte(secret)) {
				t.Errorf("the listing shows a key or its hash: %s", js)
			}
		}

		// Expiry: refused from the instant it passes.
		e.clock.add(2 * time.Hour)
		if _, err := e.svc.Authenticate(ctx, bob.Key); code(err) != portrait.EUNAUTHORIZED || !strings.Contains(portrait.ErrorMessage(err), "expired") {
			t.Errorf("expired key: %v", err)
		}
		if list, _ := e.svc.List(ctx); !list[0].Expired || list[1].Expired {
			t.Errorf("expired flags: %+v", list)
		}

		// Revocation: refused at once; revoking again finds nothing.
		if _, err := e.svc.Revoke(ctx, admin, "risk/alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Authenticate(ctx, k.Key); code(err) != portrait.EUNAUTHORIZED {
			t.Errorf("revoked key: %v", err)
		}
		if _, err := e.svc.Revoke(ctx, admin, "risk/alice"); code(err) != portrait.ENOTFOUND {
			t.Errorf("revoke twice: %v", err)
		}
		if list, _ := e.svc.List(ctx); len(list) != 1 || list[0].Name != "ops/bob" {
			t.Errorf("after revocation: %+v", list)
		}
		// The name is free again, for a new key.
		if _, err := e.svc.Create(ctx, admin, "risk/alice", policy.Reviewer, time.Hour); err != nil {
			t.Errorf("new key for a revoked name: %v", err)
		}

		// Every creation and revocation is an audit record, with no key
		// material in it.
		size, _ := e.store.LogSize(ctx)
		entries, err := e.store.LogEntries(ctx, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, en := range entries {
			var r audit.Record
			json.Unmarshal(en.Data, &r)
			if r.Kind == "apikey" {
				got = append(got, r.Action+" "+r.Detail["name"].(string)+" "+r.Detail["role"].(string)+" by "+r.Actor)
			}
			for _, secret := range []string{k.Key, bob.Key, hex.EncodeToString(apikey.Hash(k.Key)), "pk_"} {
				if bytes.Contains(en.Data, []byte(secret)) {
					t.Errorf("audit record %d holds key material: %s", en.Index, en.Data)
				}
			}
		}
		want := "create risk/alice reviewer by admin:admin/bootstrap|create ops/bob operator by admin:admin/bootstrap|revoke risk/alice reviewer by admin:admin/bootstrap|create risk/alice reviewer by admin:admin/bootstrap"
		if strings.Join(got, "|") != want {
			t.Errorf("audit records:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.ReplaceAll(want, "|", "\n"))
		}
	})
}

// TestRevokedOnEveryNode: two nodes (two engines on one database) each
// keep the keys they verified; a revocation through either refuses the
// very next request through the other, on both engines (CM-5,
// invariant 5). Without the revocation moving the generation, the node
// that verified the key would go on accepting it.
func TestRevokedOnEveryNode(t *testing.T) {
	onEachStore(t, func(t *testing.T, e env) {
		a, b := e.svc, e.node(t)
		for i, via := range []*apikey.Service{a, b, a} {
			on := b
			if via == b {
				on = a
			}
			k, err := via.Create(ctx, admin, "risk/alice", policy.Reviewer, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Both nodes verify it, several times: from then on each
			// keeps it.
			for range 3 {
				for _, n := range []*apikey.Service{a, b} {
					if _, err := n.Authenticate(ctx, k.Key); err != nil {
						t.Fatalf("round %d: before revocation: %v", i, err)
					}
				}
			}
			if _, err := via.Revoke(ctx, admin, "risk/alice"); err != nil {
				t.Fatal(err)
			}
			if _, err := on.Authenticate(ctx, k.Key); code(err) != portrait.EUNAUTHORIZED {
				t.Fatalf("round %d: the next request on the other node after a revocation: %v, want %s", i, err, portrait.EUNAUTHORIZED)
			}
			if _, err := via.Authenticate(ctx, k.Key); code(err) != portrait.EUNAUTHORIZED {
				t.Fatalf("round %d: the next request on the revoking node: %v", i, err)
			}
		}
	})
}

// counting is a real store that counts the key reads and generation reads
// made through it.
type counting struct {
	portrait.Store
	keys, gens atomic.Int64
}

func (c *counting) APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error) {
	c.keys.Add(1)
	return c.Store.APIKey(ctx, hash)
}

func (c *counting) Generation(ctx context.Context) (int64, error) {
	c.gens.Add(1)
	return c.Store.Generation(ctx)
}

// TestVerifiedKept: a node reads a key's row once and then only the
// generation, per request, until the generation moves; unknown keys are
// read every time (nothing is kept of them), and a kept key still expires
// on time.
func TestVerifiedKept(t *testing.T) {
	onEachStore(t, func(t *testing.T, e env) {
		cs := &counting{Store: e.store}
		svc := apikey.New(apikey.Deps{Store: cs, Log: e.log}, apikey.Options{Now: e.clock.now})
		k, err := svc.Create(ctx, admin, "risk/alice", policy.Reviewer, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		keyReads := cs.keys.Load()
		for range 5 {
			if c, err := svc.Authenticate(ctx, k.Key); err != nil || c.ID != "risk/alice" || c.Role != policy.Reviewer {
				t.Fatalf("authenticate: %+v %v", c, err)
			}
		}
		if got := cs.keys.Load() - keyReads; got != 1 {
			t.Errorf("five requests read the key's row %d times, want once", got)
		}
		if cs.gens.Load() < 5 {
			t.Errorf("five requests read the generation %d times, want every time", cs.gens.Load())
		}
		keyReads = cs.keys.Load()
		for range 3 {
			if _, err := svc.Authenticate(ctx, "pk_reviewer_unknown"); code(err) != portrait.EUNAUTHORIZED {
				t.Errorf("unknown key: %v", err)
			}
		}
		if got := cs.keys.Load() - keyReads; got != 3 {
			t.Errorf("three requests with an unknown key read the store %d times, want 3", got)
		}
		// A governance change anywhere drops what the node kept.
		keyReads = cs.keys.Load()
		if _, err := e.svc.Create(ctx, admin, "ops/bob", policy.Operator, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Revoke(ctx, admin, "ops/bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, k.Key); err != nil {
			t.Fatal(err)
		}
		if got := cs.keys.Load() - keyReads; got != 1 {
			t.Errorf("after another key's revocation the key was read %d times, want once again", got)
		}
		e.clock.add(time.Hour)
		if _, err := svc.Authenticate(ctx, k.Key); code(err) != portrait.EUNAUTHORIZED || !strings.Contains(err.Error(), "expired") {
			t.Errorf("a kept key past its expiry: %v", err)
		}
	})
}

// TestLastUseThrottled: last use is written at most once a minute per key,
// not once per request.
func TestLastUseThrottled(t *testing.T) {
	onEachStore(t, func(t *testing.T, e env) {
		k, err := e.svc.Create(ctx, admin, "risk/alice", policy.Reviewer, 0)
		if err != nil {
			t.Fatal(err)
		}
		first := e.clock.now()
		lastUsed := func() time.Time {
			got, err := e.store.APIKey(ctx, apikey.Hash(k.Key))
			if err != nil {
				t.Fatal(err)
			}
			return got.LastUsed
		}
		if !lastUsed().IsZero() {
			t.Fatal("a new key has a last use")
		}
		for range 5 {
			if _, err := e.svc.Authenticate(ctx, k.Key); err != nil {
				t.Fatal(err)
			}
			e.clock.add(10 * time.Second)
		}
		// Five requests over 50 s: one write, at the first.
		if got := lastUsed(); !got.Equal(first) {
			t.Errorf("last used %v, want %v (one write a minute)", got, first)
		}
		e.clock.add(15 * time.Second)
		e.svc.Authenticate(ctx, k.Key)
		if got := lastUsed(); !got.Equal(first.Add(65 * time.Second)) {
			t.Errorf("after a minute: last used %v, want %v", got, first.Add(65*time.Second))
		}
	})
}

// TestRegister: a chosen key (the bootstrap admin key) registers once and
// again without effect, never under a taken name, never once revoked.
func TestRegister(t *testing.T) {
	onEachStore(t, func(t *testing.T, e env) {
		sys := policy.Caller{Role: policy.System, ID: "serve"}
		h := apikey.Hash("the-bootstrap-key")
		for range 2 {
			if err := e.svc.Register(ctx, sys, "admin/bootstrap", policy.Admin, h, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
		c, err := e.svc.Authenticate(ctx, "the-bootstrap-key")
		if err != nil || c.ID != "admin/bootstrap" || c.Role != policy.Admin {
			t.Fatalf("bootstrap: %+v %v", c, err)
		}
		if err := e.svc.Register(ctx, sys, "admin/bootstrap", policy.Admin, apikey.Hash("another"), time.Time{}); code(err) != portrait.ECONFLICT || !strings.Contains(err.Error(), "revoke it first") {
			t.Errorf("another key under the bootstrap name: %v", err)
		}
		if err := e.svc.Register(ctx, sys, "admin/other", policy.Admin, h, time.Time{}); code(err) != portrait.ECONFLICT {
			t.Errorf("the same key under another name: %v", err)
		}
		if _, err := e.svc.Revoke(ctx, admin, "admin/bootstrap"); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Register(ctx, sys, "admin/bootstrap", policy.Admin, h, time.Time{}); code(err) != portrait.ECONFLICT || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("a revoked key registered again: %v", err)
		}
		if _, err := e.svc.Authenticate(ctx, "the-bootstrap-key"); code(err) != portrait.EUNAUTHORIZED {
			t.Errorf("revoked bootstrap key: %v", err)
		}
		// A regulator node's own roles are role strings like any other.
		reg := apikey.New(apikey.Deps{Store: e.store, Log: e.log}, apikey.Options{Roles: []policy.Role{"regulator-admin", "inspector"}})
		if err := reg.Register(ctx, sys, "receiver/acme", "receiver", apikey.Hash("r"), time.Time{}); err != nil {
			t.Errorf("a receiver key by hash: %v", err)
		}
		if ins, err := reg.Create(ctx, admin, "cac/wang", "inspector", 0); err != nil {
			t.Errorf("an inspector key: %v", err)
		} else if c, err := reg.Authenticate(ctx, ins.Key); err != nil || c.Role != "inspector" {
			t.Errorf("inspector: %+v %v", c, err)
		}
		if _, err := reg.Create(ctx, admin, "cac/li", policy.Operator, 0); code(err) != portrait.EINVALID {
			t.Errorf("a role the regulator node does not give: %v", err)
		}
	})
}

// BenchmarkAuthenticate is the cost a staff request pays for its key check:
// one read of the generation (the key's row only once), and no write (last
// use is written once a minute).
func BenchmarkAuthenticate(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			var s portrait.Store
			var err error
			if engine == "sqlite" {
				s, err = sqlite.Open(ctx, filepath.Join(b.TempDir(), "p.db"))
			} else {
				if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
					b.Skip("PORTRAIT_TEST_POSTGRES is not set")
				}
				s, err = postgres.Open(ctx, storetest.PostgresDatabase(b))
			}
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			master := make([]byte, keys.MasterSize)
			rand.Read(master)
			kr, _ := keys.New(master)
			log, _ := audit.New("portrait.test/log", kr.LogKey())
			svc := apikey.New(apikey.Deps{Store: s, Log: log}, apikey.Options{})
			k, err := svc.Create(ctx, admin, "risk/alice", policy.Reviewer, 0)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := svc.Authenticate(ctx, k.Key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
