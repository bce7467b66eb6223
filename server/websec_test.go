package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
	"github.com/portrait-dev/portrait/sqlite"
)

// TestSigninCrossSite: a sign-in form posted from another site is refused
// with 403 before any session is set (login CSRF), on the privacy centre
// as on the console; the same post from this site still signs in.
func TestSigninCrossSite(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.seedSubject("alice", 1)
	tok := h.token("alice")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values, headers map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", h.url+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	crossSite := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	originOnly := map[string]string{"Origin": "https://evil.example"}
	for _, tc := range []struct {
		path    string
		form    url.Values
		headers map[string]string
	}{
		{"/privacy/signin", url.Values{"token": {tok}}, crossSite},
		{"/privacy/signin", url.Values{"token": {tok}}, originOnly},
		{"/privacy/demo", url.Values{"subject": {"demo-alice"}}, crossSite},
		{"/console/signin", url.Values{"key": {h.staff(policy.Reviewer)}}, crossSite},
	} {
		resp := post(tc.path, tc.form, tc.headers)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("cross-site POST %s %v: %d, cookies %v; want 403 and no session", tc.path, tc.headers, resp.StatusCode, resp.Cookies())
		}
	}
	resp := post("/privacy/signin", url.Values{"token": {tok}}, map[string]string{"Origin": h.url, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Errorf("same-origin sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// logBuffer collects a server's log output for tests to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFailureLogNoRawID: a 5xx on a route whose path holds a subject id
// logs the route pattern and the subject's pseudonym, never the raw id,
// which erasure could not then remove from the log (invariant 4).
func TestFailureLogNoRawID(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, h *harness) {
		const id = "raw-subject-id-4711"
		h.store.Close() // every store read now fails: a forced 5xx
		resp := h.do("GET", "/v1/subjects/"+id+"/consents", h.staff(policy.Operator), "", nil, nil)
		if resp.StatusCode < 500 {
			t.Fatalf("GET on a closed store: %d, want a 5xx", resp.StatusCode)
		}
		logs := h.logs.String()
		if strings.Contains(logs, id) {
			t.Errorf("the raw subject id is in the log:\n%s", logs)
		}
		if !strings.Contains(logs, "/v1/subjects/{id}/consents") || !strings.Contains(logs, string(h.keys.Pseudonym(id))) {
			t.Errorf("the log does not name the route pattern and the pseudonym:\n%s", logs)
		}
	})
}

// TestConnectionLimits drives a real TCP connection against the server as
// portrait serve configures it: a keep-alive connection that stays idle is
// closed, a body that trickles is cut with 408 and the connection closed,
// and a large body that arrives steadily but takes longer than the grace
// is accepted whole (there is no whole-request limit).
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portrait.db"))
	if err != nil {
		t.Fatal(err)
	}
	const grace = 300 * time.Millisecond
	h := newHarnessOn(t, store, func(c *server.Config) {
		c.IdleTimeout, c.BodyGrace, c.MinBodyRate = 400*time.Millisecond, grace, 10_000
	})
	if resp := h.consent("alice", "personalization", "granted"); resp.StatusCode != 200 {
		t.Fatalf("consent: %d", resp.StatusCode)
	}
	addr := strings.TrimPrefix(h.url, "http://")
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn, bufio.NewReader(conn)
	}
	// closedWithin reads until the server closes the connection and
	// fails if that takes longer than limit.
	closedWithin := func(t *testing.T, conn net.Conn, br *bufio.Reader, limit time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		conn.SetReadDeadline(start.Add(limit))
		_, err := io.Copy(io.Discard, br)
		if isTimeout(err) {
			t.Fatalf("the server kept the connection open for %v: %v", limit, err)
		}
		// EOF, or a reset when the server closes on bytes it did not
		// read: closed either way.
		return time.Since(start)
	}
	eventsHeader := func(length int) string {
		return fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: portrait\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			h.staff(policy.Operator), length)
	}

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, br := dial(t)
		fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: portrait\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("GET /healthz: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		if took := closedWithin(t, conn, br, 5*time.Second); took < 300*time.Millisecond {
			t.Errorf("closed after %v, before the idle timeout", took)
		}
	})

	t.Run("trickling body", func(t *testing.T) {
		conn, br := dial(t)
		fmt.Fprint(conn, eventsHeader(100_000))
		stop := make(chan struct{})
		defer close(stop)
		go func() { // 200 bytes a second, far below the 10,000 required
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := conn.Write([]byte("          ")); err != nil {
					return
				}
			}
		}()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if isTimeout(err) {
			t.Fatalf("no answer to a trickling body within 5s: %v", err)
		} else if err != nil {
			// The server closed on the unread trickle and the reset
			// overtook its 408: cut all the same.
			t.Logf("connection cut before the answer was read: %v", err)
			return
		}
		var p problem
		json.NewDecoder(resp.Body).Decode(&p)
		if resp.StatusCode != http.StatusRequestTimeout || p.Code != "timeout" {
			t.Errorf("trickling body: %d %+v, want 408 timeout", resp.StatusCode, p)
		}
		closedWithin(t, conn, br, 5*time.Second)
	})

	t.Run("large steady upload", func(t *testing.T) {
		// 4 MiB (a few events padded with JSON whitespace) sent in 64 KiB
		// steps over about a second: several times the grace, at far
		// more than the minimum rate.
		now := time.Now().UTC()
		var events []string
		for i := range 3 {
			events = append(events, fmt.Sprintf(`{"subject":"alice","type":"view","time":%q,"fields":{"item":"i%d","category":"sports"}}`, now.Add(-time.Duration(i+1)*time.Minute).Format(time.RFC3339), i))
		}
		body := []byte("[" + strings.Join(events, ",") + strings.Repeat(" ", 4<<20) + "]")
		conn, br := dial(t)
		start := time.Now()
		fmt.Fprint(conn, eventsHeader(len(body)))
		for len(body) > 0 {
			n := min(64<<10, len(body))
			if _, err := conn.Write(body[:n]); err != nil {
				t.Fatalf("upload cut after %v: %v", time.Since(start), err)
			}
			body = body[n:]
			time.Sleep(15 * time.Millisecond)
		}
		took := time.Since(start)
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var r eventsResp
		json.NewDecoder(resp.Body).Decode(&r)
		if resp.StatusCode != 200 || r.Accepted != 3 {
			t.Errorf("steady upload of 4 MiB over %v: %d %+v, want 200 with 3 accepted", took, resp.StatusCode, r)
		}
		if took < 2*grace {
			t.Logf("the upload took only %v; it does not show that a long upload passes", took)
		}
	})
}

// TestNULRefused: every text input that reaches a text column gets the
// same answer on both engines, 400 naming the field, where PostgreSQL
// used to fail with 503 and SQLite stored it; nothing is written.
func TestNULRefused(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, h *harness) {
		h.point.SetCatalog(liveCatalog(t))
		adm, op, reg, rev := h.staff(policy.Admin), h.staff(policy.Operator), h.staff(policy.Regulator), h.staff(policy.Reviewer)
		if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", adm, art56, nil); resp.StatusCode != 201 {
			t.Fatalf("assess: %d", resp.StatusCode)
		}
		_, review := appealed(h, "dave", "I was promoted.")
		tok := h.token("dave")
		var c struct{ ID string }
		if resp := h.do("POST", "/v1/me/requests", tok, "application/json", []byte(`{"type":"explanation"}`), &c); resp.StatusCode != 201 {
			t.Fatalf("open a case: %d", resp.StatusCode)
		}
		const nul = "a\u0000b"
		consent := func(field string) map[string]any {
			b := map[string]any{"status": "granted", "notice_version": "1", "channel": "web", "user_agent": "ua", "ip": "192.0.2.1"}
			b[field] = nul
			return b
		}
		for _, tc := range []struct {
			name, method, path, token string
			body                      any
			field                     string
		}{
			{"consent channel", "PUT", "/v1/subjects/erin/consents/personalization", op, consent("channel"), "channel"},
			{"consent notice version", "PUT", "/v1/subjects/erin/consents/personalization", op, consent("notice_version"), "notice version"},
			{"consent user agent", "PUT", "/v1/subjects/erin/consents/personalization", op, consent("user_agent"), "user_agent"},
			{"consent ip", "PUT", "/v1/subjects/erin/consents/personalization", op, consent("ip"), "IP"},
			{"item id", "POST", "/v1/items", op, []map[string]any{{"id": nul, "categories": []string{"x"}, "price": 1}}, "item id"},
			{"item category", "POST", "/v1/items", op, []map[string]any{{"id": "i1", "categories": []string{nul}, "price": 1}}, "item categories"},
			{"item attribute", "POST", "/v1/items", op, []map[string]any{{"id": "i1", "categories": []string{"x"}, "attributes": map[string]any{"brand": []any{nul}}, "price": 1}}, "item attributes.brand"},
			{"item attribute key", "POST", "/v1/items", op, []map[string]any{{"id": "i1", "categories": []string{"x"}, "attributes": map[string]any{nul: 1}, "price": 1}}, "item attributes key"},
			{"halt reason", "POST", "/v1/usecases/credit_limit/halt", adm, map[string]string{"reason": nul}, "reason"},
			{"suspension reason", "POST", "/v1/suspensions", reg, map[string]string{"kind": "purpose", "id": "marketing", "reason": nul}, "reason"},
			{"review reason", "POST", "/v1/reviews/" + review, rev, map[string]string{"outcome": "upheld", "reason": nul}, "reason"},
			{"case refusal", "POST", "/v1/cases/" + c.ID + "/close", op, map[string]string{"status": "refused", "text": nul}, "reason"},
			{"path id", "GET", "/v1/reviews/a%00b", rev, nil, "path"},
			{"query", "GET", "/v1/reviews?status=a%00b", rev, nil, "query parameter"},
		} {
			var p problem
			var resp *http.Response
			if tc.body == nil {
				resp = h.do(tc.method, tc.path, tc.token, "", nil, &p)
			} else {
				resp = h.json(tc.method, tc.path, tc.token, tc.body, &p)
			}
			if resp.StatusCode != 400 || p.Code != "invalid" || !strings.Contains(p.Detail, tc.field) {
				t.Errorf("%s: %d %+v; want 400 invalid naming %q", tc.name, resp.StatusCode, p, tc.field)
			}
		}
		// Nothing was written: erin has no consent record, no item is
		// stored, the use-case is not halted, the review and case are open.
		ctx := context.Background()
		if sts, err := h.store.States(ctx, []portrait.Pseudonym{h.keys.Pseudonym("erin")}); err != nil || len(sts[h.keys.Pseudonym("erin")].Consents) != 0 {
			t.Errorf("a refused consent was recorded: %v", err)
		}
		if items, err := h.store.Items(ctx); err != nil || len(items) != 0 {
			t.Errorf("items after refusals: %d %v", len(items), err)
		}
		if sus, err := h.store.Suspensions(ctx); err != nil || len(sus) != 0 {
			t.Errorf("suspensions after refusals: %+v %v", sus, err)
		}
		if rv, err := h.store.ReviewByID(ctx, review); err != nil || rv.Status != "open" {
			t.Errorf("review after a refused outcome: %+v %v", rv, err)
		}
	})
}

// TestSessionsEnd: signing out ends the session itself, not only the
// browser's cookie — a copy of the privacy-centre cookie (which is also a
// Bearer token) or of the console cookie stops working — and erasing a
// subject ends every token issued before it (SR-3). The end is in the
// store, so every node that shares it sees it (TestTwoNodes runs two).
func TestSessionsEnd(t *testing.T) {
	t.Parallel()
	onEachStore(t, func(t *testing.T, h *harness) {
		h.seedSubject("alice", 1)
		h.seedSubject("bob", 1)
		cookieOf := func(c *http.Client, path, name string) string {
			u, _ := url.Parse(h.url + path)
			for _, ck := range c.Jar.Cookies(u) {
				if ck.Name == name {
					return ck.Value
				}
			}
			t.Fatalf("no %s cookie", name)
			return ""
		}
		withCookie := func(path, name, value string) int {
			req, _ := http.NewRequest("GET", h.url+path, nil)
			req.AddCookie(&http.Cookie{Name: name, Value: value})
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		me := func(tok string) int { return h.do("GET", "/v1/me/consents", tok, "", nil, nil).StatusCode }

		// Privacy centre.
		c, csrf := signedIn(t, h, h.token("alice"), "/privacy/consents")
		stolen := cookieOf(c, "/privacy/", "portrait_session")
		other := h.token("alice") // another session of the same subject
		if me(stolen) != 200 || withCookie("/privacy/labels", "portrait_session", stolen) != 200 {
			t.Fatal("the session does not work before sign-out")
		}
		if code, _ := postForm(t, c, h.url+"/privacy/signout", url.Values{"csrf": {csrf}}); code != 200 {
			t.Fatalf("sign out: %d", code)
		}
		if got := me(stolen); got != 401 {
			t.Errorf("the signed-out token as Bearer: %d, want 401", got)
		}
		if got := withCookie("/privacy/labels", "portrait_session", stolen); got != 401 {
			t.Errorf("a copy of the signed-out cookie: %d, want 401", got)
		}
		if got := me(other); got != 200 {
			t.Errorf("signing out one session ended another of the same subject: %d", got)
		}
		// The API's sign-out, for the company's own front end.
		if resp := h.do("DELETE", "/v1/me/token", other, "", nil, nil); resp.StatusCode != 204 {
			t.Errorf("DELETE /v1/me/token: %d", resp.StatusCode)
		}
		if got := me(other); got != 401 {
			t.Errorf("a token after DELETE /v1/me/token: %d, want 401", got)
		}

		// Console.
		staff, ccsrf, _ := staffClient(t, h.url, h.staff(policy.Reviewer), "/console/reviews")
		copied := cookieOf(staff, "/console/", "portrait_console")
		if got := withCookie("/console/reviews", "portrait_console", copied); got != 200 {
			t.Fatalf("the console session does not work before sign-out: %d", got)
		}
		if code, _ := postForm(t, staff, h.url+"/console/signout", url.Values{"csrf": {ccsrf}}); code != 200 {
			t.Fatalf("console sign out: %d", code)
		}
		if got := withCookie("/console/reviews", "portrait_console", copied); got != 401 {
			t.Errorf("a copy of the signed-out console cookie: %d, want 401", got)
		}

		// Erasure ends every session of the subject, and only theirs.
		bob1, bob2, alice := h.token("bob"), h.token("bob"), h.token("alice")
		if resp := h.do("POST", "/v1/me/erasure", bob1, "", nil, nil); resp.StatusCode != 201 {
			t.Fatalf("erasure: %d", resp.StatusCode)
		}
		for name, tok := range map[string]string{"the erasing token": bob1, "another token of the erased subject": bob2} {
			if got := me(tok); got != 401 {
				t.Errorf("%s after erasure: %d, want 401", name, got)
			}
			if got := withCookie("/privacy/labels", "portrait_session", tok); got != 401 {
				t.Errorf("%s as a privacy-centre cookie after erasure: %d, want 401", name, got)
			}
		}
		if got := me(alice); got != 200 {
			t.Errorf("another subject's token after bob's erasure: %d", got)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
