package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
	"github.com/portrait-dev/portrait/sqlite"
)

// fromAddr is a client whose connections come from local address ip (any
// 127/8 address is this machine), trusting the test TLS certificate of ts.
func fromAddr(t *testing.T, ip string, ts *httptest.Server) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	if ts != nil && ts.TLS != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// tlsProxy is a real reverse hop: a TLS-terminating httputil.ReverseProxy
// in front of target that sets X-Forwarded-For and X-Forwarded-Proto, as
// nginx or a cloud load balancer does.
func tlsProxy(t *testing.T, target string) *httptest.Server {
	u, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.SetXForwarded()
	}}
	ts := httptest.NewTLSServer(rp)
	t.Cleanup(ts.Close)
	return ts
}

// consentIP records a consent as alice's own request through c to base
// and returns the evidence address the receipt holds.
func consentIP(t *testing.T, c *http.Client, base, tok string, header http.Header) string {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+"/v1/me/consents/personalization", strings.NewReader(`{"status":"granted","notice_version":"1"}`))
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("consent: %d %s", resp.StatusCode, b)
	}
	// The evidence is in the consent history, not the receipt.
	req, _ = http.NewRequest("GET", base+"/v1/me/consents", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ History []struct{ IP string } }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.History) == 0 {
		t.Fatalf("history: %v %+v", err, v)
	}
	return v.History[len(v.History)-1].IP
}

// TestTrustedProxies: behind a TLS-terminating reverse proxy the consent
// evidence is the client's address (truncated), not the proxy's, and
// session cookies are Secure; the same headers from any other peer are
// ignored (CN-2).
func TestTrustedProxies(t *testing.T) {
	h := newHarnessOn(t, newSQLite(t), func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	proxy := tlsProxy(t, h.url)
	h.consent("alice", "personalization", "granted")
	tok := h.token("alice")
	client := fromAddr(t, "127.0.1.2", proxy) // the client: another /24 than the proxy's 127.0.0.1
	spoof := http.Header{"X-Forwarded-For": {"198.51.100.9"}, "Forwarded": {"for=198.51.100.9;proto=https"}, "X-Forwarded-Proto": {"https"}}
	for _, tc := range []struct {
		name   string
		base   string
		header http.Header
		want   string
	}{
		{"through the proxy", proxy.URL, nil, "127.0.1.0/24"},
		// The proxy appends the peer it saw; what the client wrote before it is not believed.
		{"through the proxy, spoofed", proxy.URL, spoof, "127.0.1.0/24"},
		// Straight to the server: the peer is not a trusted proxy.
		{"direct, spoofed", h.url, spoof, "127.0.1.0/24"},
	} {
		if got := consentIP(t, client, tc.base, tok, tc.header); got != tc.want {
			t.Errorf("%s: evidence IP %q, want %q", tc.name, got, tc.want)
		}
	}

	// A trusted peer's own headers, each form (RFC 7239 and the de facto
	// X-Forwarded-For), as a proxy on 127.0.0.1 sends them.
	trustedPeer := fromAddr(t, "127.0.0.1", nil)
	for _, tc := range []struct {
		header http.Header
		want   string
	}{
		{http.Header{"Forwarded": {`for="[2001:db8:cafe::17]:4711";proto=https`}}, "2001:db8:cafe::/48"},
		{http.Header{"Forwarded": {"for=198.51.100.9, for=127.0.0.1"}}, "198.51.100.0/24"},
		// The chain is believed only back to the first untrusted hop.
		{http.Header{"X-Forwarded-For": {"192.0.2.1, 203.0.113.5"}}, "203.0.113.0/24"},
		{http.Header{"X-Forwarded-For": {"192.0.2.1", "127.0.0.1"}}, "192.0.2.0/24"},
		{http.Header{"Forwarded": {"for=unknown"}}, "127.0.0.0/24"},
	} {
		if got := consentIP(t, trustedPeer, h.url, tok, tc.header); got != tc.want {
			t.Errorf("%v: evidence IP %q, want %q", tc.header, got, tc.want)
		}
	}

	// Untrusted: a server trusting no proxy records the proxy's address.
	plain := newHarness(t)
	plain.consent("alice", "personalization", "granted")
	if got := consentIP(t, client, tlsProxy(t, plain.url).URL, plain.token("alice"), nil); got != "127.0.0.0/24" {
		t.Errorf("untrusted proxy: evidence IP %q, want the proxy's 127.0.0.0", got)
	}

	// Cookies: Secure when the client reached the proxy over HTTPS, not
	// when a direct client only claims it.
	for _, tc := range []struct {
		name, base string
		header     http.Header
		want       bool
	}{
		{"through the TLS proxy", proxy.URL, nil, true},
		{"direct, claiming https", h.url, spoof, false},
	} {
		for _, form := range []struct{ path, key, value string }{
			{"/privacy/signin", "token", tok},
			{"/console/signin", "key", h.staff(policy.Reviewer)},
		} {
			req, _ := http.NewRequest("POST", tc.base+form.path, strings.NewReader(url.Values{form.key: {form.value}}.Encode()))
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			cs := resp.Cookies()
			if len(cs) == 0 {
				t.Fatalf("%s %s: no cookie (%d)", tc.name, form.path, resp.StatusCode)
			}
			for _, c := range cs {
				if c.Secure != tc.want {
					t.Errorf("%s %s: cookie %s Secure=%v, want %v", tc.name, form.path, c.Name, c.Secure, tc.want)
				}
			}
		}
	}
}

func TestParseProxies(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		bad  bool
	}{
		{"10.0.0.0/8, 192.168.1.7", "[10.0.0.0/8 192.168.1.7/32]", false},
		{"2001:db8::/32", "[2001:db8::/32]", false},
		{"", "[]", false},
		{"10.0.0.0/8,proxy.example", "", true},
	} {
		got, err := server.ParseProxies(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.bad && fmtPrefixes(got) != tc.want {
			t.Errorf("%q: %v, want %s", tc.in, got, tc.want)
		}
	}
}

func fmtPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

func newSQLite(t *testing.T) portrait.Store {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portrait.db"))
	if err != nil {
		t.Fatal(err)
	}
	return store
}
