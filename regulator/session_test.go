package regulator_test

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/regulator"
)

// TestConsoleSessions: the regulator console's cookie is a signed session
// (keys.StaffSessions, as the engine's console) that does not contain the
// staff key; a forged, altered, expired or foreign session is refused, and
// signing out ends the session for whoever still holds the cookie (RO-7).
func TestConsoleSessions(t *testing.T) {
	eachEngine(t, func(t *testing.T, db regulator.DB) {
		f := newFixture(t, db)
		master := make([]byte, keys.MasterSize)
		rand.Read(master)
		kr, err := keys.New(master)
		if err != nil {
			t.Fatal(err)
		}
		f.node.Supervise(db.(regulator.Docs), kr)
		noRedirect := func(jar http.CookieJar) *http.Client {
			return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
		jar, _ := cookiejar.New(nil)
		c := noRedirect(jar)
		resp, err := c.PostForm(f.srv.URL+"/console/signin", url.Values{"key": {f.admin}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var session string
		for _, ck := range resp.Cookies() {
			if ck.Name == "regulator_session" {
				session = ck.Value
				if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console" {
					t.Errorf("cookie attributes: %+v", ck)
				}
			}
		}
		if resp.StatusCode != http.StatusSeeOther || session == "" {
			t.Fatalf("sign in: %d, session %q", resp.StatusCode, session)
		}
		if strings.Contains(session, f.admin) {
			t.Fatalf("the session cookie holds the staff key: %q", session)
		}
		// opens GET /console/ with cookie value v: true when signed in.
		opens := func(v string) bool {
			t.Helper()
			req, _ := http.NewRequest("GET", f.srv.URL+"/console/", nil)
			req.AddCookie(&http.Cookie{Name: "regulator_session", Value: v})
			resp, err := noRedirect(nil).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}
		if !opens(session) {
			t.Fatal("a genuine session does not open the console")
		}
		sum := sha256.Sum256([]byte(f.admin))
		other, _ := keys.New(make([]byte, keys.MasterSize))
		i := strings.LastIndexByte(session, '.')
		for name, v := range map[string]string{
			"the raw key (the old cookie)": f.admin,
			"altered mac":                  session[:i+1] + strings.Repeat("A", len(session)-i-1),
			"extended expiry":              strings.Replace(session, ".", ".9", 1),
			"expired":                      kr.StaffSessions().New(sum[:], time.Now().Add(-time.Minute)),
			"minted by another key":        other.StaffSessions().New(sum[:], time.Now().Add(time.Hour)),
			"empty":                        "",
		} {
			if opens(v) {
				t.Errorf("%s: the console opened", name)
			}
		}
		// Signing out ends the session, not only the cookie in this browser.
		page := fetch(t, c, f.srv.URL+"/console/")
		csrf := between(page, `name="csrf" value="`, `"`)
		resp, err = c.PostForm(f.srv.URL+"/console/signout", url.Values{"csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign out: %d", resp.StatusCode)
		}
		if opens(session) {
			t.Error("a signed-out session still opens the console")
		}
	})
}

// fetch GETs u with c and returns the body.
func fetch(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, b)
	}
	return string(b)
}

// between is the text of s between the first from and the next to.
func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, to)
	return v
}

// signIn signs in to the console with key and returns the session cookie.
func signIn(t *testing.T, f *fixture, key string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(f.srv.URL+"/console/signin", url.Values{"key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "regulator_session" && ck.Value != "" {
			return ck.Value
		}
	}
	t.Fatalf("sign in: %d, no session", resp.StatusCode)
	return ""
}
