package server_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

// readCounter is a real store that counts the generation and key reads
// made through it.
type readCounter struct {
	portrait.Store
	mu         sync.Mutex
	gens, keys int
}

func (s *readCounter) Generation(ctx context.Context) (int64, error) {
	s.mu.Lock()
	s.gens++
	s.mu.Unlock()
	return s.Store.Generation(ctx)
}

func (s *readCounter) APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error) {
	s.mu.Lock()
	s.keys++
	s.mu.Unlock()
	return s.Store.APIKey(ctx, hash)
}

func (s *readCounter) take() (gens, keys int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gens, keys = s.gens, s.keys
	s.gens, s.keys = 0, 0
	return gens, keys
}

// TestDecisionReadsGenerationOnce: a decision over HTTP reads the
// governance generation once — its staff key check reads it, and the
// decision is made at it — and the key's row not at all once the node
// verified it; yet a key revoked, or a consent withdrawn, between two
// requests binds the next one (CM-5, CN-4, invariant 5). On both engines.
func TestDecisionReadsGenerationOnce(t *testing.T) {
	open := map[string]func(t *testing.T) portrait.Store{
		"sqlite": func(t *testing.T) portrait.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) portrait.Store {
			if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
				t.Skip("PORTRAIT_TEST_POSTGRES is not set")
			}
			s, err := postgres.Open(context.Background(), storetest.PostgresDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			rc := &readCounter{Store: open[engine](t)}
			h := newHarnessOn(t, rc)
			h.point.SetCatalog(liveCatalog(t))
			op, adm := h.staff(policy.Operator), h.staff(policy.Admin)
			var k struct{ Key string }
			if resp := h.json("POST", "/v1/keys", adm, map[string]string{"role": "operator", "name": "risk/olga"}, &k); resp.StatusCode != 201 {
				t.Fatalf("create key: %d", resp.StatusCode)
			}
			h.daveAwaitsCredit(op, adm)
			decide := func() int {
				var d map[string]any
				resp := h.json("POST", "/v1/decisions", k.Key, map[string]string{"usecase": "credit_limit", "subject": "dave"}, &d)
				if resp.StatusCode == 201 && d["outcome"] == nil {
					t.Fatalf("decision without an outcome: %+v", d)
				}
				return resp.StatusCode
			}
			if code := decide(); code != 201 {
				t.Fatalf("first decision: %d", code)
			}
			rc.take()
			for range 3 {
				if code := decide(); code != 201 {
					t.Fatalf("decision: %d", code)
				}
			}
			if gens, keys := rc.take(); gens != 3 || keys != 0 {
				t.Errorf("3 decisions read the generation %d times and the key's row %d times, want 3 and 0", gens, keys)
			}

			// A withdrawal binds the next decision.
			if resp := h.consent("dave", "credit", "withdrawn"); resp.StatusCode != 200 && resp.StatusCode != 201 {
				t.Fatalf("withdraw: %d", resp.StatusCode)
			}
			if code := decide(); code != 403 {
				t.Fatalf("the decision after a withdrawal: %d, want 403", code)
			}
			h.consent("dave", "credit", "granted")
			if code := decide(); code != 201 {
				t.Fatalf("the decision after consent again: %d", code)
			}
			// A revocation binds the next request.
			if resp := h.json("DELETE", "/v1/keys/risk/olga", adm, nil, nil); resp.StatusCode != 204 {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			if code := decide(); code != 401 {
				t.Fatalf("the decision after the key's revocation: %d, want 401", code)
			}
		})
	}
}
