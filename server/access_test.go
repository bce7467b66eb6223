package server_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// accessLine is the access-log line for route, or "".
func accessLine(h *harness, route string) string {
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, "msg=request") && strings.Contains(l, `route="`+route+`"`) {
			return l
		}
	}
	return ""
}

// TestAccessLog: one line per request with method, route pattern, status,
// duration and the caller named pseudonymously — staff by key name, a
// subject by pseudonym — never the raw subject id or the key; and the W3C
// trace context continued into the response and the log.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	const key, rawID = "secret-key-of-wang", "raw-subject-id-5150"
	sum := sha256.Sum256([]byte(key))
	if err := h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(ctx, portrait.APIKey{ID: "k1", Name: "growth/wang", Hash: sum[:], Role: policy.Operator, Created: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	h.consent(rawID, "personalization", "granted")

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req, _ := http.NewRequest("GET", h.url+"/v1/subjects/"+rawID+"/consents", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("traceparent", parent)
	req.Header.Set("tracestate", "congo=t61rcWkgMzE")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tp := resp.Header.Get("traceparent")
	if m := regexp.MustCompile(`^00-4bf92f3577b34da6a3ce929d0e0e4736-([0-9a-f]{16})-01$`).FindStringSubmatch(tp); m == nil || m[1] == "00f067aa0ba902b7" {
		t.Errorf("response traceparent %q: want the caller's trace with a new span", tp)
	}
	if ts := resp.Header.Get("tracestate"); ts != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate %q not echoed", ts)
	}
	line := accessLine(h, "GET /v1/subjects/{id}/consents")
	for _, want := range []string{"method=GET", "status=200", "duration_ms=", "caller=operator:growth/wang",
		"trace_id=4bf92f3577b34da6a3ce929d0e0e4736", "parent_id=00f067aa0ba902b7", "span_id=" + tp[36:52],
		`tracestate="congo=t61rcWkgMzE"`, string("subject=" + h.keys.Pseudonym(rawID))} {
		if !strings.Contains(line, want) {
			t.Errorf("access line lacks %q: %s", want, line)
		}
	}
	if logs := h.logs.String(); strings.Contains(logs, rawID) || strings.Contains(logs, key) {
		t.Errorf("the log holds the raw subject id or the key:\n%s", logs)
	}

	// A subject is named by pseudonym; an invalid traceparent starts a
	// new trace and its tracestate is dropped.
	req, _ = http.NewRequest("GET", h.url+"/v1/me/consents", nil)
	req.Header.Set("Authorization", "Bearer "+h.token(rawID))
	req.Header.Set("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	req.Header.Set("tracestate", "congo=t61rcWkgMzE")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tp := resp.Header.Get("traceparent"); !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`).MatchString(tp) || strings.Contains(tp, "0000000000000000") {
		t.Errorf("invalid traceparent: response %q, want a new trace", tp)
	}
	if ts := resp.Header.Get("tracestate"); ts != "" {
		t.Errorf("tracestate %q echoed with an invalid traceparent", ts)
	}
	if line := accessLine(h, "GET /v1/me/consents"); !strings.Contains(line, "caller=subject:"+string(h.keys.Pseudonym(rawID))) {
		t.Errorf("subject access line: %s", line)
	}
	// Requests outside the route table are logged too.
	h.do("GET", "/no/such/path", "", "", nil, nil)
	if !strings.Contains(h.logs.String(), `route=/ status=404`) && !strings.Contains(h.logs.String(), `route="/" status=404`) {
		t.Errorf("no access line for a 404:\n%s", h.logs.String())
	}
}

func TestTraceparentGrammar(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{"00-" + trace + "-00f067aa0ba902b7-01", true},
		{"01-" + trace + "-00f067aa0ba902b7-01-later-fields", true}, // a future version: its first fields are read
		{"00-" + trace + "-00f067aa0ba902b7-01-x", false},           // version 00 has no more fields
		{"ff-" + trace + "-00f067aa0ba902b7-01", false},
		{"00-" + strings.ToUpper(trace) + "-00f067aa0ba902b7-01", false},
		{"00-" + trace + "-0000000000000000-01", false},
		{"00-" + trace + "-00f067aa0ba902b7", false},
		{"", false},
	} {
		req, _ := http.NewRequest("GET", h.url+"/healthz", nil)
		req.Header.Set("traceparent", tc.in)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := strings.Contains(resp.Header.Get("traceparent"), trace); got != tc.keep {
			t.Errorf("traceparent %q: continued %v, want %v (%s)", tc.in, got, tc.keep, resp.Header.Get("traceparent"))
		}
	}
}

// TestHTTPContract: 405 with Allow for a wrong method on a known path,
// WWW-Authenticate on 401, servers in the OpenAPI document, and body
// errors in JSON terms.
func TestHTTPContract(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var p problem
	resp := h.do("DELETE", "/v1/events", h.staff(policy.Operator), "", nil, &p)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || p.Code != "method_not_allowed" {
		t.Errorf("DELETE /v1/events: %d Allow %q %+v", resp.StatusCode, resp.Header.Get("Allow"), p)
	}
	resp = h.do("POST", "/v1/subjects/alice/consents", h.staff(policy.Operator), "", nil, &p)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST consents: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp := h.do("GET", "/v1/nosuch", "", "", nil, &p); resp.StatusCode != 404 || resp.Header.Get("Allow") != "" {
		t.Errorf("unknown path: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	for _, tc := range []struct{ token, want string }{
		{"", `Bearer realm="portrait"`},
		{"not-a-key", `Bearer realm="portrait", error="invalid_token"`},
	} {
		resp := h.do("GET", "/v1/catalog", tc.token, "", nil, nil)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != tc.want {
			t.Errorf("401 with token %q: %d WWW-Authenticate %q", tc.token, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}

	var doc struct{ Servers []struct{ URL string } }
	h.do("GET", "/openapi.json", "", "", nil, &doc)
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("openapi servers: %+v", doc.Servers)
	}

	h.consent("alice", "personalization", "granted")
	for _, tc := range []struct{ body, want, not string }{
		{`{"status":"granted","notice_version":"1","colour":"red"}`, `unknown field "colour"; the fields are "status", "notice_version"`, "server."},
		{`{"status":true}`, `field "status" must be a string, not a JSON bool`, "Go "},
		{`{"status":`, `not valid JSON`, "Go "},
	} {
		resp := h.do("PUT", "/v1/subjects/alice/consents/personalization", h.staff(policy.Operator), "application/json", []byte(tc.body), &p)
		if resp.StatusCode != 400 || !strings.Contains(p.Detail, tc.want) || strings.Contains(p.Detail, tc.not) {
			t.Errorf("body %s: %d %q, want %q", tc.body, resp.StatusCode, p.Detail, tc.want)
		}
	}
}
