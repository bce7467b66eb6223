package main

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"testing"

	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/storetest"
)

// TestTwoNodesSessions: two `portrait serve` processes on one PostgreSQL
// database. A sign-out on one node, from the privacy centre or the
// console, ends the session on the other at once, and so does an erasure
// for every token of the subject.
func TestTwoNodesSessions(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	bin := build(t)
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	key := keys.Encode(master)
	const admin = "two-node-admin-key"
	a := startNode(t, bin, dsn, key, admin)
	b := startNode(t, bin, dsn, key, admin)

	token := func(n node, subject string) string {
		var out struct{ Token string }
		if code := n.call(t, "POST", "/v1/subjects/"+subject+"/tokens", admin, "", &out); code != 201 {
			t.Fatalf("token for %s: %d", subject, code)
		}
		return out.Token
	}
	me := func(n node, tok string) int { return n.call(t, "GET", "/v1/me/consents", tok, "", nil) }
	// signIn posts form to path on n and returns the client and the CSRF
	// token of the page at page.
	signIn := func(n node, path string, form url.Values, page string) (*http.Client, string) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.PostForm(n.url+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = c.Get(n.url + page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("%s on %s: no CSRF token (%d)", page, n.url, resp.StatusCode)
		}
		return c, string(m[1])
	}
	withCookie := func(n node, path, name, value string) int {
		req, _ := http.NewRequest("GET", n.url+path, nil)
		req.AddCookie(&http.Cookie{Name: name, Value: value})
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Privacy centre: signed in and out on A; the token is dead on B.
	if code := a.call(t, "PUT", "/v1/subjects/zoe/consents/personalization", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
		t.Fatalf("consent: %d", code)
	}
	tok := token(a, "zoe")
	if me(b, tok) != 200 {
		t.Fatal("the token does not work on B before sign-out")
	}
	c, csrf := signIn(a, "/privacy/signin", url.Values{"token": {tok}}, "/privacy/consents")
	if resp, err := c.PostForm(a.url+"/privacy/signout", url.Values{"csrf": {csrf}}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign out on A: %v %v", resp, err)
	}
	if got := me(b, tok); got != 401 {
		t.Errorf("B after a sign-out on A: %d, want 401", got)
	}
	if got := withCookie(b, "/privacy/labels", "portrait_session", tok); got != 401 {
		t.Errorf("B's privacy centre after a sign-out on A: %d, want 401", got)
	}

	// Console: signed in and out on A; the cookie is dead on B.
	sc, scsrf := signIn(a, "/console/signin", url.Values{"key": {admin}}, "/console/reviews")
	u, _ := url.Parse(a.url + "/console/")
	var session string
	for _, ck := range sc.Jar.Cookies(u) {
		if ck.Name == "portrait_console" {
			session = ck.Value
		}
	}
	if got := withCookie(b, "/console/reviews", "portrait_console", session); got != 200 {
		t.Fatalf("the console session does not work on B before sign-out: %d", got)
	}
	if resp, err := sc.PostForm(a.url+"/console/signout", url.Values{"csrf": {scsrf}}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("console sign out on A: %v %v", resp, err)
	}
	if got := withCookie(b, "/console/reviews", "portrait_console", session); got != 401 {
		t.Errorf("B's console after a sign-out on A: %d, want 401", got)
	}

	// Erasure on A ends on B every token issued before it, on either node.
	t1, t2 := token(a, "zoe"), token(b, "zoe")
	if code := a.call(t, "POST", "/v1/subjects/zoe/erasure", admin, "", nil); code != 201 {
		t.Fatalf("erasure on A: %d", code)
	}
	for _, tk := range []string{t1, t2} {
		if got := me(b, tk); got != 401 {
			t.Errorf("B with a token of the erased subject: %d, want 401", got)
		}
	}
}
