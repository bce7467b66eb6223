package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/server"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
	"github.com/portrait-dev/portrait/tcf/tcftest"
)

// harness is a whole Portrait on one store, served by httptest.
type harness struct {
	t      testing.TB
	url    string
	store  portrait.Store
	keys   *keys.Keyring
	log    *audit.Log
	server *server.Server
	apply  *apply.Service
	apikey map[policy.Role]string
	point  *policy.Point
	mon    *monitor.Monitor
	rights *rights.Service
	path   string     // the SQLite file, on SQLite
	pgURL  string     // the throwaway database, on PostgreSQL
	logs   *logBuffer // what the server logged
	alert  int64      // log index of the first alert raiseAlerts raised
}

// newHarness serves a whole Portrait on a fresh SQLite file: for what is
// about the server (routes, roles, pages), not about the store.
func newHarness(t testing.TB, opts ...func(*server.Config)) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portrait.db")
	store, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, store, opts...)
	h.path = path
	return h
}

// newPostgresHarness serves a whole Portrait on a throwaway PostgreSQL
// database (storetest), dropped when the test ends.
func newPostgresHarness(t testing.TB) *harness {
	t.Helper()
	u := storetest.PostgresDatabase(t)
	store, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, store)
	h.pgURL = u
	return h
}

// onEachStore runs f on a harness over SQLite and, where
// PORTRAIT_TEST_POSTGRES is set, over PostgreSQL, the two side by side:
// the API must behave the same on both engines (invariant 7).
func onEachStore(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, newHarness(t))
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		t.Parallel()
		f(t, newPostgresHarness(t))
	})
}

// newHarnessOn serves a whole Portrait on store, which it closes when the
// test ends.
func newHarnessOn(t testing.TB, store portrait.Store, opts ...func(*server.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { store.Close() })
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	point := policy.New(cat)
	log, err := audit.New("portrait.test/log", kr.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := consent.New(consent.Deps{Store: store, Point: point, Log: log, Keys: kr}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := new(logBuffer)
	logger := slog.New(slog.NewTextHandler(logs, nil))
	in := ingest.New(ingest.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, ingest.Options{Logger: logger})
	mon, err := monitor.New(monitor.Deps{Store: store, Point: point, Keys: kr, Log: log}, monitor.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rights.New(rights.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, rights.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := apply.New(apply.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, apply.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := review.New(review.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, review.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deriver, err := derive.New(derive.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, derive.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ov, err := oversight.New(ctx, oversight.Deps{Store: store, Point: point, Keys: kr, Log: log, Apply: ap}, oversight.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log, Ingester: in, Logger: logger, Monitor: mon,
		Apply: ap, Review: rv, Oversight: ov,
		Deriver: deriver, Audiences: apply.NewAudiences(apply.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}),
		Rights: rs, Demo: true, DemoSubjects: []string{"demo-alice", "demo-bob"}}
	for _, o := range opts {
		o(&cfg)
	}
	srv := server.New(cfg)
	// Served as portrait serve serves it, with its connection limits.
	ts := httptest.NewUnstartedServer(srv)
	ts.Config = srv.HTTPServer()
	ts.Start()
	t.Cleanup(ts.Close)
	h := &harness{t: t, url: ts.URL, store: store, keys: kr, log: log, server: srv, apply: cfg.Apply, apikey: map[policy.Role]string{},
		point: point, mon: cfg.Monitor, rights: rs, logs: logs}
	for _, role := range policy.Roles {
		key := "test-" + string(role)
		sum := sha256.Sum256([]byte(key))
		err := store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutAPIKey(ctx, portrait.APIKey{ID: string(role) + "-1", Hash: sum[:], Role: role, Created: time.Now()})
		})
		if err != nil {
			t.Fatal(err)
		}
		h.apikey[role] = key
	}
	return h
}

// do sends a request as token ("" for none) and decodes a JSON answer into out.
func (h *harness) do(method, path, token, contentType string, body []byte, out any) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp
}

func (h *harness) staff(role policy.Role) string { return h.apikey[role] }

func (h *harness) token(subject string) string {
	var out struct{ Token string }
	resp := h.do("POST", "/v1/subjects/"+subject+"/tokens", h.staff(policy.Operator), "", nil, &out)
	if resp.StatusCode != 201 {
		h.t.Fatalf("issue token: %d", resp.StatusCode)
	}
	return out.Token
}

func (h *harness) consent(subject, purpose, status string) *http.Response {
	h.t.Helper()
	body := fmt.Sprintf(`{"status":%q,"notice_version":"1","channel":"test"}`, status)
	return h.do("PUT", "/v1/subjects/"+subject+"/consents/"+purpose, h.staff(policy.Operator), "application/json", []byte(body), nil)
}

type problem struct {
	Type, Title, Detail, Code, Requirement string
	Status                                 int
}

// TestRoutesRoles walks every route × every role and asserts the allowed
// set: deny by default, and a subject token never reaches staff routes (CM-5).
func TestRoutesRoles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	subjectTok := h.token("alice")
	pub := []string{"anyone"}
	staff := []string{"admin", "operator", "reviewer", "auditor", "regulator"}
	want := map[string][]string{
		"GET /healthz":                                     pub,
		"GET /metrics":                                     pub,
		"GET /openapi.json":                                pub,
		"GET /v1/catalog":                                  staff,
		"POST /v1/events":                                  {"admin", "operator"},
		"GET /sdk/portrait.js":                             pub,
		"POST /v1/me/events":                               {"subject"},
		"POST /v1/me/gpc":                                  {"subject"},
		"GET /v1/deliveries/dead":                          {"admin", "auditor"},
		"POST /v1/deliveries/dead/replay":                  {"admin"},
		"PUT /v1/subjects/{id}/consents/{purpose}":         {"admin", "operator"},
		"GET /v1/subjects/{id}/consents":                   {"admin", "operator"},
		"POST /v1/subjects/{id}/tokens":                    {"admin", "operator"},
		"DELETE /v1/me/token":                              {"subject"},
		"POST /v1/subjects/{id}/guardian-token":            {"admin", "operator"},
		"GET /v1/me/consents":                              {"subject"},
		"PUT /v1/me/consents/{purpose}":                    {"subject"},
		"GET /v1/receipts/key":                             pub,
		"POST /v1/receipts/verify":                         pub,
		"GET /v1/suspensions":                              staff,
		"POST /v1/suspensions":                             {"regulator"},
		"DELETE /v1/suspensions/{kind}/{id}":               {"regulator"},
		"GET /v1/log/checkpoint":                           pub,
		"GET /v1/log/key":                                  pub,
		"GET /v1/log/entries/{index}":                      pub,
		"GET /v1/log/entries":                              pub,
		"GET /v1/log/proof/inclusion":                      pub,
		"GET /v1/log/proof/consistency":                    pub,
		"GET /v1/subjects/{id}/portrait":                   {"admin", "operator"},
		"GET /v1/labels":                                   staff,
		"GET /v1/derivation":                               staff,
		"POST /v1/derivation":                              {"admin"},
		"POST /v1/audiences":                               {"admin", "operator"},
		"PUT /v1/subjects/{id}/protected":                  {"admin", "operator"},
		"GET /v1/subjects/{id}/protected":                  {"auditor"},
		"POST /v1/monitor/runs":                            {"admin", "auditor"},
		"GET /v1/monitor/report":                           {"admin", "auditor", "regulator"},
		"GET /v1/monitor/proxies":                          staff,
		"POST /v1/monitor/proxies/{feature}/clear":         {"reviewer"},
		"GET /v1/me/export":                                {"subject"},
		"GET /v1/subjects/{id}/export":                     {"admin", "operator"},
		"POST /v1/me/erasure":                              {"subject"},
		"POST /v1/subjects/{id}/erasure":                   {"admin", "operator"},
		"GET /v1/me/labels":                                {"subject"},
		"GET /v1/subjects/{id}/labels":                     {"admin", "operator"},
		"DELETE /v1/me/labels/{label}":                     {"subject"},
		"DELETE /v1/subjects/{id}/labels/{label}":          {"admin", "operator"},
		"POST /v1/me/labels/{label}/restore":               {"subject"},
		"POST /v1/subjects/{id}/labels/{label}/restore":    {"admin", "operator"},
		"PUT /v1/me/personalization":                       {"subject"},
		"PUT /v1/subjects/{id}/personalization":            {"admin", "operator"},
		"PUT /v1/me/fields/{field}":                        {"subject"},
		"PUT /v1/subjects/{id}/fields/{field}":             {"admin", "operator"},
		"POST /v1/me/restriction":                          {"subject"},
		"POST /v1/subjects/{id}/restriction":               {"admin", "operator"},
		"DELETE /v1/me/restriction":                        {"subject"},
		"DELETE /v1/subjects/{id}/restriction":             {"admin", "operator"},
		"POST /v1/me/objection":                            {"subject"},
		"POST /v1/subjects/{id}/objection":                 {"admin", "operator"},
		"GET /v1/me/cases":                                 {"subject"},
		"GET /v1/subjects/{id}/cases":                      {"admin", "operator"},
		"POST /v1/me/requests":                             {"subject"},
		"POST /v1/subjects/{id}/requests":                  {"admin", "operator"},
		"GET /v1/cases":                                    {"admin", "operator", "auditor", "regulator"},
		"GET /v1/cases/overdue":                            {"admin", "operator", "auditor", "regulator"},
		"POST /v1/cases/{case}/close":                      {"admin", "operator"},
		"GET /v1/notice":                                   pub,
		"POST /v1/items":                                   {"admin", "operator"},
		"GET /v1/recommendations":                          {"admin", "operator"},
		"GET /v1/me/recommendations":                       {"subject"},
		"POST /v1/decisions":                               {"admin", "operator"},
		"GET /v1/me/decisions":                             {"subject"},
		"POST /v1/me/decisions/{id}/appeal":                {"subject"},
		"POST /v1/me/decisions/{id}/review":                {"subject"},
		"PUT /v1/me/usecases/{id}/automation":              {"subject"},
		"POST /v1/me/usecases/{id}/notice":                 {"subject"},
		"POST /v1/subjects/{id}/usecases/{usecase}/notice": {"admin", "operator"},
		"POST /v1/usecases/{id}/halt":                      {"admin"},
		"POST /v1/usecases/{id}/resume":                    {"admin"},
		"POST /v1/usecases/{id}/assessment":                {"admin"},
		"GET /v1/reviews":                                  {"reviewer"},
		"GET /v1/reviews/overdue":                          {"admin", "reviewer", "auditor", "regulator"},
		"GET /v1/reviews/{id}":                             {"reviewer"},
		"POST /v1/reviews/{id}":                            {"reviewer"},
		"GET /v1/records/processing":                       {"admin", "auditor", "regulator"},
		"GET /v1/filing":                                   {"admin", "auditor", "regulator"},
		"GET /v1/evidence":                                 {"admin", "auditor", "regulator"},
		"POST /v1/breaches":                                {"admin"},
		"GET /v1/catalog/changes":                          staff,
		"POST /v1/catalog/changes/{index}/approve":         {"admin", "reviewer"},
		"POST /v1/catalog/changes/{index}/countersign":     {"admin"},
		"GET /v1/breaches":                                 {"admin", "auditor", "regulator"},
		"POST /v1/reports":                                 pub,
		"GET /v1/reports":                                  {"admin", "auditor", "regulator"},
		"GET /v1/reports/{id}":                             pub,
		"POST /v1/reports/{id}/answer":                     {"admin"},
		"POST /v1/keys":                                    {"admin"},
		"GET /v1/keys":                                     {"admin", "auditor"},
		"DELETE /v1/keys/{name...}":                        {"admin"},
	}
	routes := h.server.Routes()
	if len(routes) != len(want) {
		t.Errorf("%d routes served, %d expected: update this table deliberately when adding a route", len(routes), len(want))
	}
	callers := map[string]string{"anyone": "", "subject": subjectTok}
	for _, r := range policy.Roles {
		callers[string(r)] = h.staff(r)
	}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		allowed, ok := want[key]
		if !ok {
			t.Errorf("route %s is not in the expected table", key)
			continue
		}
		path := strings.NewReplacer("{id}", "alice", "{purpose}", "personalization", "{kind}", "label", "{index}", "0", "{feature}", "city", "{name...}", "risk/nobody").Replace(rt.Pattern)
		for who, tok := range callers {
			if key == "DELETE /v1/me/token" && who == "subject" {
				tok = h.token("alice") // it ends the token it carries
			}
			resp := h.do(rt.Method, path, tok, "application/json", []byte("{}"), nil)
			refused := resp.StatusCode == 401 || resp.StatusCode == 403 && !isPolicyDenial(resp)
			shouldPass := slices.Contains(allowed, who) || slices.Equal(allowed, pub)
			if shouldPass && refused {
				t.Errorf("%s as %s: refused with %d, want allowed", key, who, resp.StatusCode)
			}
			if !shouldPass && !refused {
				t.Errorf("%s as %s: got %d, want 401/403", key, who, resp.StatusCode)
			}
		}
	}
}

func isPolicyDenial(resp *http.Response) bool { return resp.Header.Get("X-Portrait-Denied") != "" }

func TestBadCredentials(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	good := h.token("alice")
	for name, tok := range map[string]string{
		"unknown key":    "nope",
		"forged token":   "pt1.AAAA.BBBB",
		"tampered token": good[:len(good)-2] + "xx",
	} {
		var p problem
		resp := h.do("GET", "/v1/me/consents", tok, "", nil, &p)
		if resp.StatusCode != 401 || p.Code != portrait.EUNAUTHORIZED || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: got %d %+v", name, resp.StatusCode, p)
		}
	}
	expired := h.keys.IssueToken(h.keys.Pseudonym("alice"), -time.Minute)
	var p problem
	if resp := h.do("GET", "/v1/me/consents", expired, "", nil, &p); resp.StatusCode != 401 || !strings.Contains(p.Detail, "expired") {
		t.Errorf("expired token: %d %+v", resp.StatusCode, p)
	}
}

type eventsResp struct {
	Accepted, Rejected, Duplicates int
	Results                        []struct {
		Index         int
		Status        string
		Code          string
		Reason        string
		Requirement   string
		DroppedFields []struct{ Field, Code string } `json:"dropped_fields"`
	}
}

// TestIngest covers governed ingestion end to end: minimum necessary,
// per-event results, idempotency, bad input (CM-1, CM-3).
func TestIngest(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		// CM-1: without consent to personalization, personalization-only
		// fields are dropped; fields with a contract basis are kept.
		now := time.Now().UTC().Format(time.RFC3339)
		batch := fmt.Sprintf(`[
	 {"subject":"alice","type":"view","time":%q,"fields":{"item":"sports-001","category":"sports","price":12.5}},
	 {"subject":"alice","type":"nosuch","time":%q,"fields":{}},
	 {"subject":"alice","type":"view","time":%q,"fields":{"item":"x","shoe_size":42}},
	 {"subject":"alice","type":"view","time":"2999-01-01T00:00:00Z","fields":{"item":"x"}},
	 {"subject":"alice","type":"view","time":%q,"fields":{"price":"cheap"}},
	 {"subject":"alice","type":"purchase","time":%q,"idempotency_key":"o-1","fields":{"item":"a","amount":10}},
	 {"subject":"alice","type":"purchase","time":%q,"idempotency_key":"o-1","fields":{"item":"a","amount":10}},
	 {"subject":"alice","type":"view","time":%q,"extra":1}
	]`, now, now, now, now, now, now, now)
		var r eventsResp
		resp := h.do("POST", "/v1/events", op, "application/json", []byte(batch), &r)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		wantStatus := []string{"accepted", "rejected", "rejected", "rejected", "rejected", "accepted", "duplicate", "rejected"}
		wantCode := []string{"", "undeclared_event_type", "undeclared_field", "future_time", "wrong_type", "", "", "malformed"}
		for i, res := range r.Results {
			if res.Status != wantStatus[i] || res.Code != wantCode[i] {
				t.Errorf("event %d: %s/%s (%s), want %s/%s", i, res.Status, res.Code, res.Reason, wantStatus[i], wantCode[i])
			}
		}
		if r.Accepted != 2 || r.Duplicates != 1 || r.Rejected != 5 {
			t.Errorf("summary %+v", r)
		}

		// Malformed body, wrong content type, oversized body: 4xx problems.
		var p problem
		if resp := h.do("POST", "/v1/events", op, "application/json", []byte(`[{"subject":`), &p); resp.StatusCode != 400 || !strings.Contains(p.Detail, "line 1") {
			t.Errorf("malformed: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("POST", "/v1/events", op, "text/csv", []byte(`a,b`), &p); resp.StatusCode != 400 {
			t.Errorf("csv: %d %+v", resp.StatusCode, p)
		}
		big := bytes.Repeat([]byte(" "), 33<<20)
		if resp := h.do("POST", "/v1/events", op, "application/json", big, &p); resp.StatusCode != 413 || !strings.Contains(p.Detail, "limit") {
			t.Errorf("oversized: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("POST", "/v1/events", op, "application/json", []byte("[\"\xff\"]"), &p); resp.StatusCode != 400 {
			t.Errorf("invalid UTF-8: %d %+v", resp.StatusCode, p)
		}

		// NDJSON: one bad line does not block the good ones.
		nd := fmt.Sprintf("{\"subject\":\"bob\",\"type\":\"view\",\"time\":%q,\"fields\":{\"item\":\"b\"}}\nnot json\n", now)
		r = eventsResp{}
		if resp := h.do("POST", "/v1/events", op, "application/x-ndjson", []byte(nd), &r); resp.StatusCode != 200 || r.Accepted != 1 || r.Rejected != 1 ||
			!strings.Contains(r.Results[1].Reason, "line 2") {
			t.Errorf("ndjson: %d %+v", resp.StatusCode, r)
		}
	})
}

// TestConsentAPI: grant → receipt verifies offline; tampered receipt is
// refused; withdrawal is one call; history is append-only (CN-2, CN-4).
func TestConsentAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		body := `{"status":"granted","notice_version":"1","channel":"app"}`
		var receipt json.RawMessage
		if resp := h.do("PUT", "/v1/subjects/alice/consents/personalization", op, "application/json", []byte(body), &receipt); resp.StatusCode != 200 {
			t.Fatalf("grant: %d %s", resp.StatusCode, receipt)
		}
		var v struct{ Valid bool }
		if resp := h.do("POST", "/v1/receipts/verify", "", "application/json", receipt, &v); resp.StatusCode != 200 || !v.Valid {
			t.Fatalf("receipt does not verify: %d", resp.StatusCode)
		}
		tampered := bytes.Replace(receipt, []byte("granted"), []byte("refused"), 1)
		var p problem
		if resp := h.do("POST", "/v1/receipts/verify", "", "application/json", tampered, &p); resp.StatusCode != 400 {
			t.Errorf("tampered receipt: %d", resp.StatusCode)
		}
		// CN-3: a consent to an old notice version is refused at recording.
		if resp := h.do("PUT", "/v1/subjects/alice/consents/personalization", op, "application/json",
			[]byte(`{"status":"granted","notice_version":"0"}`), &p); resp.StatusCode != 400 {
			t.Errorf("old notice: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("PUT", "/v1/subjects/alice/consents/nosuch", op, "application/json", []byte(body), &p); resp.StatusCode/100 != 4 {
			t.Errorf("unknown purpose: %d", resp.StatusCode)
		}
		if resp := h.do("PUT", "/v1/subjects/alice/consents/personalization", op, "application/json", []byte(`{"status":"maybe"}`), &p); resp.StatusCode != 400 {
			t.Errorf("bad status: %d", resp.StatusCode)
		}
		// CN-4: withdrawal is the same single call.
		if resp := h.consent("alice", "personalization", "withdrawn"); resp.StatusCode != 200 {
			t.Fatalf("withdraw: %d", resp.StatusCode)
		}
		var view struct {
			Consents []struct{ Purpose, Status string }
			History  []struct{ Purpose, Status string }
		}
		tok := h.token("alice")
		h.do("GET", "/v1/me/consents", tok, "", nil, &view)
		if len(view.History) != 2 || view.History[0].Status != "granted" || view.History[1].Status != "withdrawn" {
			t.Errorf("history: %+v", view.History)
		}
		for _, c := range view.Consents {
			if c.Purpose == "personalization" && c.Status != "withdrawn" {
				t.Errorf("current: %+v", c)
			}
		}
		// CM-5: staff reading the history is logged; the subject's own read is not a staff access.
		before := len(logRecords(t, h, "access"))
		var staffView struct{ History []any }
		h.do("GET", "/v1/subjects/alice/consents", op, "", nil, &staffView)
		if recs := logRecords(t, h, "access"); len(staffView.History) != 2 || len(recs) != before+1 || recs[len(recs)-1].Action != "read_consents" {
			t.Errorf("staff read of consents: history %d, access records %d→%d", len(staffView.History), before, len(recs))
		}
		// A subject token sees only its own subject.
		var bobView struct{ History []any }
		h.do("GET", "/v1/me/consents", h.token("bob"), "", nil, &bobView)
		if len(bobView.History) != 0 {
			t.Errorf("bob sees alice's history: %+v", bobView)
		}
	})
}

// TestGPC: Sec-GPC: 1 on a subject's request opts out of advertising and
// sharing purposes only (CN-12).
func TestGPC(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.consent("carol", "marketing", "granted")
		h.consent("carol", "personalization", "granted")
		req, _ := http.NewRequest("GET", h.url+"/v1/me/consents", nil)
		req.Header.Set("Authorization", "Bearer "+h.token("carol"))
		req.Header.Set("Sec-GPC", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var view struct {
			Consents []struct{ Purpose, Status string }
		}
		json.NewDecoder(resp.Body).Decode(&view)
		resp.Body.Close()
		got := map[string]string{}
		for _, c := range view.Consents {
			got[c.Purpose] = c.Status
		}
		if got["marketing"] != "withdrawn" || got["personalization"] != "granted" {
			t.Errorf("after GPC: %v", got)
		}
	})
}

// TestSuspension: only the regulator suspends; the suspension refuses the
// next request; lifting restores it (RO-6).
func TestSuspension(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		body := []byte(`{"kind":"field","id":"category","reason":"under investigation"}`)
		var p problem
		if resp := h.do("POST", "/v1/suspensions", h.staff(policy.Admin), "application/json", body, &p); resp.StatusCode != 403 {
			t.Errorf("admin suspended: %d", resp.StatusCode)
		}
		if resp := h.do("POST", "/v1/suspensions", h.staff(policy.Regulator), "application/json", body, nil); resp.StatusCode != 201 {
			t.Fatalf("regulator: %d", resp.StatusCode)
		}
		now := time.Now().UTC().Format(time.RFC3339)
		ev := fmt.Sprintf(`[{"subject":"dan","type":"view","time":%q,"fields":{"item":"i","category":"sports"}}]`, now)
		var r eventsResp
		h.do("POST", "/v1/events", h.staff(policy.Operator), "application/json", []byte(ev), &r)
		if len(r.Results) != 1 || len(r.Results[0].DroppedFields) != 1 || r.Results[0].DroppedFields[0].Code != "suspended" {
			t.Errorf("suspended field stored: %+v", r)
		}
		if resp := h.do("POST", "/v1/suspensions", h.staff(policy.Regulator), "application/json", []byte(`{"kind":"field","id":"nosuch","reason":"x"}`), &p); resp.StatusCode != 404 {
			t.Errorf("undeclared target: %d", resp.StatusCode)
		}
		if resp := h.do("DELETE", "/v1/suspensions/field/category", h.staff(policy.Regulator), "", nil, nil); resp.StatusCode != 204 {
			t.Fatalf("lift: %d", resp.StatusCode)
		}
		r = eventsResp{}
		h.do("POST", "/v1/events", h.staff(policy.Operator), "application/json", []byte(ev), &r)
		if len(r.Results[0].DroppedFields) != 0 {
			t.Errorf("after lift: %+v", r)
		}
	})
}

// TestLogVerify: the served log passes portrait verify, and the verifier
// notices growth (FA-6).
func TestLogVerify(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.consent("erin", "personalization", "granted")
		cp := filepath.Join(t.TempDir(), "checkpoint")
		var out bytes.Buffer
		if err := audit.Verify(context.Background(), http.DefaultClient, h.url, cp, &out); err != nil {
			t.Fatalf("verify: %v\n%s", err, out.String())
		}
		h.consent("erin", "personalization", "withdrawn")
		if err := audit.Verify(context.Background(), http.DefaultClient, h.url, cp, &out); err != nil {
			t.Fatalf("verify after growth: %v\n%s", err, out.String())
		}
		var p problem
		if resp := h.do("GET", "/v1/log/proof/inclusion?index=99&size=2", "", "", nil, &p); resp.StatusCode != 400 {
			t.Errorf("out-of-range proof: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("GET", "/v1/log/entries/abc", "", "", nil, &p); resp.StatusCode != 400 {
			t.Errorf("bad index: %d", resp.StatusCode)
		}
	})
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Servers    []map[string]any
		Paths      map[string]map[string]any
		Components struct{ Schemas, Responses map[string]any }
	}
	h.do("GET", "/openapi.json", "", "", nil, &doc)
	if doc.OpenAPI != "3.0.3" || doc.Paths["/v1/events"]["post"] == nil || len(doc.Servers) == 0 {
		t.Errorf("openapi: %s, %d paths, servers %v", doc.OpenAPI, len(doc.Paths), doc.Servers)
	}
	// Staff keys: the revocation path is OpenAPI's {name}, not the mux's
	// {name...}, and creation documents its default lifetime.
	if doc.Paths["/v1/keys/{name}"]["delete"] == nil || doc.Paths["/v1/keys/{name...}"] != nil {
		t.Errorf("openapi: no DELETE /v1/keys/{name}")
	}
	post, _ := json.Marshal(doc.Paths["/v1/keys"]["post"])
	key, _ := json.Marshal(doc.Components.Schemas["KeyRequest"])
	if !strings.Contains(string(post), `"x-roles":["admin"]`) || !strings.Contains(string(key), "default 90 days") || !strings.Contains(string(key), `"default":"90d"`) {
		t.Errorf("openapi POST /v1/keys: %s %s", post, key)
	}
	// Every operation: a typed answer or none (204), problems typed, every
	// parameter typed with an example.
	for path, ops := range doc.Paths {
		for method, v := range ops {
			op := v.(map[string]any)
			rs := op["responses"].(map[string]any)
			for st, r := range rs {
				r := r.(map[string]any)
				if st == "204" {
					continue
				}
				if r["content"] == nil && r["$ref"] != "#/components/responses/Problem" {
					t.Errorf("%s %s: response %s has no content schema", method, path, st)
				}
			}
			if rs["default"] == nil {
				t.Errorf("%s %s: no problem response", method, path)
			}
			ps, _ := op["parameters"].([]any)
			for _, p := range ps {
				p := p.(map[string]any)
				if p["example"] == nil || p["example"] == "" || p["schema"] == nil || p["required"] == nil {
					t.Errorf("%s %s: parameter %v lacks type, required or example", method, path, p["name"])
				}
			}
		}
	}
	if doc.Components.Responses["Problem"] == nil {
		t.Errorf("openapi: no Problem response")
	}
	resp := h.do("GET", "/metrics", "", "", nil, nil)
	if resp.StatusCode != 200 {
		t.Errorf("metrics: %d", resp.StatusCode)
	}
}

// Pages may not be framed or load scripts from elsewhere; no response is
// sniffed into another type.
func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/privacy/", "/console/reviews", "/v1/notice"} {
		resp := h.do("GET", path, "", "", nil, nil)
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
		page := path != "/v1/notice"
		csp := resp.Header.Get("Content-Security-Policy")
		if page && (!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") || resp.Header.Get("X-Frame-Options") != "DENY") {
			t.Errorf("%s: CSP %q, X-Frame-Options %q", path, csp, resp.Header.Get("X-Frame-Options"))
		}
	}
}

// TestConsentStringAPI: PUT …/consents/{purpose} takes a TC or GPP string
// in place of a status; the catalog's mapping decides, the receipt keeps
// the string, and a string the mapping cannot read is a 400 (CN-1, CN-2).
func TestConsentStringAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		tc := tcftest.TC{Purposes: []int{1, 3, 4}}.String()
		put := func(path, tok, body string, out any) int {
			t.Helper()
			return h.do("PUT", path, tok, "application/json", []byte(body), out).StatusCode
		}
		var raw json.RawMessage
		if code := put("/v1/subjects/dora/consents/marketing", op, `{"tc_string":"`+tc+`","notice_version":"1","channel":"cmp"}`, &raw); code != 200 {
			t.Fatalf("tc_string: %d %s", code, raw)
		}
		var statusOf struct{ Status string }
		json.Unmarshal(raw, &statusOf)
		if statusOf.Status != "granted" || !bytes.Contains(raw, []byte(`"consent_string":"`+tc+`"`)) {
			t.Errorf("receipt %s", raw)
		}
		var v struct{ Valid bool }
		if resp := h.do("POST", "/v1/receipts/verify", "", "application/json", raw, &v); resp.StatusCode != 200 || !v.Valid {
			t.Errorf("receipt with a consent string does not verify: %d", resp.StatusCode)
		}
		// The subject's own CMP sends a GPP string with a sale opt-out.
		gpp := tcftest.GPP(map[int]string{7: tcftest.USNat{Sale: 1, Sharing: 2, TargetedAdvertising: 2}.String()})
		if code := put("/v1/me/consents/marketing", h.token("dora"), `{"gpp_string":"`+gpp+`"}`, &raw); code != 200 || !bytes.Contains(raw, []byte(`"status":"withdrawn"`)) {
			t.Errorf("gpp_string on /v1/me: %d %s", code, raw)
		}
		var p problem
		for _, c := range []struct{ purpose, body, want string }{
			{"personalization", `{"tc_string":"` + tc + `","notice_version":"1"}`, "declare tcf:"},
			{"marketing", `{"tc_string":"` + tc[:9] + `","notice_version":"1"}`, "malformed"},
			{"marketing", `{"tc_string":"` + tc + `","gpp_string":"` + gpp + `"}`, "not both"},
			{"marketing", `{"status":"refused","tc_string":"` + tc + `","notice_version":"1"}`, "contradicts"},
		} {
			if code := put("/v1/subjects/dora/consents/"+c.purpose, op, c.body, &p); code != 400 || !strings.Contains(p.Detail, c.want) {
				t.Errorf("%s %s: %d %+v, want 400 %q", c.purpose, c.body, code, p, c.want)
			}
		}
	})
}
