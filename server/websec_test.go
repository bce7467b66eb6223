package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
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
		{"/console/signin", url.Values{"key": {h.staff("reviewer")}}, crossSite},
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
