package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/server"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

// TestStoreTimeout wedges a real store — PostgreSQL: another connection
// holds the audit log's head row (every decision and recommendation
// appends to it) or the governance generation's table (every key check
// reads it); SQLite: another connection
// holds the write lock — and checks that decisions, recommendations and
// key checks, which run without the request's cancellation (settled),
// are answered 503 problem+json with Retry-After once Config.StoreTimeout
// has passed, not held for as long as the store is stuck; and that the
// call goes on, not cut halfway: once the lock goes, the decision
// answered 503 is stored with its audit record, and the store serves
// again.
func TestStoreTimeout(t *testing.T) {
	const bound = 300 * time.Millisecond
	opt := func(c *server.Config) { c.StoreTimeout = bound }
	type wedge struct {
		name string
		// hold takes a lock on h's store from another connection and
		// returns its release.
		hold func(t *testing.T, h *harness) (release func())
		// routes it stalls.
		auth bool // stalls the key check, before any route's work
	}
	pgLock := func(stmt string) func(t *testing.T, h *harness) func() {
		return func(t *testing.T, h *harness) func() {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, h.pgURL)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
			return func() { tx.Rollback(ctx); conn.Close(ctx) }
		}
	}
	stores := map[string]struct {
		open   func(t *testing.T) *harness
		wedges []wedge
	}{
		"sqlite": {
			open: func(t *testing.T) *harness {
				path := filepath.Join(t.TempDir(), "portrait.db")
				st, err := sqlite.Open(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				h := newHarnessOn(t, st, opt)
				h.path = path
				return h
			},
			wedges: []wedge{{name: "write lock",
				hold: func(t *testing.T, h *harness) func() {
					ctx := context.Background()
					db, err := sql.Open("sqlite", h.path)
					if err != nil {
						t.Fatal(err)
					}
					conn, err := db.Conn(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
						t.Fatal(err)
					}
					return func() { conn.ExecContext(ctx, "ROLLBACK"); conn.Close(); db.Close() }
				}}},
		},
		"postgres": {
			open: func(t *testing.T) *harness {
				if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
					t.Skip("PORTRAIT_TEST_POSTGRES is not set")
				}
				u := storetest.PostgresDatabase(t)
				st, err := postgres.Open(context.Background(), u)
				if err != nil {
					t.Fatal(err)
				}
				h := newHarnessOn(t, st, opt)
				h.pgURL = u
				return h
			},
			wedges: []wedge{
				{name: "log head row", hold: pgLock(`SELECT size FROM log_head FOR UPDATE`)},
				// The key check reads the governance generation on every
				// request (verified keys are kept per generation).
				{name: "generation table", auth: true, hold: pgLock(`LOCK TABLE generation IN ACCESS EXCLUSIVE MODE`)},
			},
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		st := stores[name]
		t.Run(name, func(t *testing.T) {
			h := st.open(t)
			h.point.SetCatalog(liveCatalog(t))
			op, adm := h.staff(policy.Operator), h.staff(policy.Admin)
			h.consent("dave", "credit", "granted")
			h.consent("dave", "personalization", "granted")
			evs := []portrait.Event{{SubjectID: "dave", Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"age": 35.0, "income": 9000.0}}}
			if resp := h.json("POST", "/v1/events", op, evs, nil); resp.StatusCode != 200 {
				t.Fatalf("profile: %d", resp.StatusCode)
			}
			if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", adm, art56, nil); resp.StatusCode != 201 {
				t.Fatalf("assess: %d", resp.StatusCode)
			}
			if resp := h.json("POST", "/v1/subjects/dave/usecases/credit_limit/notice", op, nil, nil); resp.StatusCode != 201 {
				t.Fatalf("notice: %d", resp.StatusCode)
			}
			token := h.token("dave")
			decisions := func() int {
				var out struct{ Decisions []json.RawMessage }
				if resp := h.do("GET", "/v1/me/decisions", token, "", nil, &out); resp.StatusCode != 200 {
					t.Fatalf("decisions: %d", resp.StatusCode)
				}
				return len(out.Decisions)
			}
			client := &http.Client{Timeout: 20 * time.Second} // a hung request fails the test instead of hanging it
			send := func(method, path, body string) (int, http.Header, string, time.Duration) {
				req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+op)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, resp.Header, string(b), time.Since(start)
			}
			decide := func() (int, http.Header, string, time.Duration) {
				return send("POST", "/v1/decisions", `{"usecase":"credit_limit","subject":"dave"}`)
			}
			recommend := func() (int, http.Header, string, time.Duration) {
				return send("GET", "/v1/recommendations?subject=dave&usecase=home_feed&n=3", "")
			}
			if code, _, body, _ := decide(); code != 201 {
				t.Fatalf("decision before the wedge: %d %s", code, body)
			}
			for _, w := range st.wedges {
				t.Run(strings.ReplaceAll(w.name, " ", "_"), func(t *testing.T) {
					before := decisions()
					release := w.hold(t, h)
					released := false
					defer func() {
						if !released {
							release()
						}
					}()
					for _, c := range []struct {
						route string
						call  func() (int, http.Header, string, time.Duration)
					}{{"decision", decide}, {"recommendation", recommend}} {
						code, hdr, body, took := c.call()
						if code != 503 || hdr.Get("Retry-After") == "" || hdr.Get("Content-Type") != "application/problem+json" ||
							!strings.Contains(body, `"code":"unavailable"`) {
							t.Errorf("%s with the store wedged (%s): %d Retry-After %q %s %s", c.route, w.name, code, hdr.Get("Retry-After"), hdr.Get("Content-Type"), body)
						}
						if took < bound || took > bound+3*time.Second {
							t.Errorf("%s answered after %s, want the bound %s", c.route, took, bound)
						}
					}
					release()
					released = true
					// The decision answered 503 went on and was stored once
					// the lock went (invariant 3: its record with it); one
					// stopped at the key check was not made.
					want := before + 1
					if w.auth {
						want = before // refused at the key check: never decided
					}
					for deadline := time.Now().Add(10 * time.Second); decisions() != want; time.Sleep(50 * time.Millisecond) {
						if time.Now().After(deadline) {
							t.Fatalf("after the wedge: %d decisions, want %d (the one answered 503, completed)", decisions(), want)
						}
					}
					if code, _, body, _ := decide(); code != 201 {
						t.Errorf("decision after the wedge: %d %s", code, body)
					}
					if _, err := h.log.Sign(context.Background(), h.store); err != nil {
						t.Errorf("audit log after the wedge: %v", err)
					}
				})
			}
		})
	}
}
