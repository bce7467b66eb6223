package server_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/portrait-dev/portrait/policy"
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
		if !strings.Contains(logs, "/v1/subjects/{id}/consents") || !strings.Contains(logs, h.keys.Pseudonym(id)) {
			t.Errorf("the log does not name the route pattern and the pseudonym:\n%s", logs)
		}
	})
}
