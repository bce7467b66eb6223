package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/portrait-dev/portrait/browsertest"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
)

func TestParseOrigins(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"", nil, false},
		{"https://shop.example.com, http://127.0.0.1:8081", []string{"https://shop.example.com", "http://127.0.0.1:8081"}, false},
		{"https://*.example.com", nil, true},
		{"https://shop.example.com/", nil, true},
		{"shop.example.com", nil, true},
		{"*", nil, true},
		{"ftp://x", nil, true},
	} {
		got, err := server.ParseOrigins(c.in)
		if (err != nil) != c.err || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("ParseOrigins(%q) = %v, %v", c.in, got, err)
		}
	}
}

// CORS answers preflights and sets Access-Control-Allow-Origin only for
// the listed origins; with none listed, no CORS header is ever sent.
func TestCORS(t *testing.T) {
	h := newHarness(t)
	const shop = "https://shop.example.com"
	listed := httptest.NewServer(server.CORS([]string{shop}, h.server))
	defer listed.Close()
	none := httptest.NewServer(server.CORS(nil, h.server))
	defer none.Close()
	send := func(base, method, origin string, preflight bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+"/v1/me/consents", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if preflight {
			req.Header.Set("Access-Control-Request-Method", "PUT")
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	cases := []struct {
		name, base, method, origin string
		preflight                  bool
		status                     int
		allow                      string
	}{
		{"listed preflight", listed.URL, "OPTIONS", shop, true, 204, shop},
		{"other preflight", listed.URL, "OPTIONS", "https://evil.example", true, 403, ""},
		{"listed request", listed.URL, "GET", shop, false, 401, shop},
		{"other request", listed.URL, "GET", "https://evil.example", false, 401, ""},
		{"suffix is not the origin", listed.URL, "OPTIONS", shop + ".evil.example", true, 403, ""},
		{"none listed, preflight", none.URL, "OPTIONS", shop, true, 0, ""},
		{"none listed, request", none.URL, "GET", shop, false, 401, ""},
	}
	for _, c := range cases {
		resp := send(c.base, c.method, c.origin, c.preflight)
		if (c.status != 0 && resp.StatusCode != c.status) || resp.Header.Get("Access-Control-Allow-Origin") != c.allow {
			t.Errorf("%s: %d, Allow-Origin %q; want %d, %q", c.name, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), c.status, c.allow)
		}
		if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: credentials allowed", c.name)
		}
		if c.allow != "" && c.preflight && !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("%s: Allow-Headers %q", c.name, resp.Header.Get("Access-Control-Allow-Headers"))
		}
	}
}

// A subject token sends its own subject's events through the governed
// path; an event about anyone else is refused, one by one.
func TestMeEvents(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.consent("erin", "personalization", "granted")
		tok := h.token("erin")
		now := time.Now().UTC().Format(time.RFC3339)
		body := fmt.Sprintf(`[{"subject":"erin","type":"view","time":%q,"idempotency_key":"e1","fields":{"item":"sku-1","category":"sports"}},
			{"subject":"frank","type":"view","time":%q,"fields":{"item":"sku-2"}}]`, now, now)
		var r struct {
			Accepted, Rejected int
			Results            []struct{ Status, Code string }
		}
		if resp := h.do("POST", "/v1/me/events", tok, "application/json", []byte(body), &r); resp.StatusCode != 200 ||
			r.Accepted != 1 || r.Rejected != 1 || r.Results[1].Code != "forbidden" {
			t.Errorf("own events: %d %+v", resp.StatusCode, r)
		}
		// Retrying with the same idempotency key stores nothing twice.
		h.do("POST", "/v1/me/events", tok, "application/json", []byte(body), &r)
		if r.Accepted != 0 || r.Results[0].Status != "duplicate" {
			t.Errorf("retry: %+v", r)
		}
	})
}

// TestSDKBrowser loads the SDK in Chromium from a page on another origin,
// as a shop's website would: with the shop's origin listed, the page sends
// an event, grants and reads consent, and the browser's GPC signal opts out
// of marketing (CN-12); from an origin not listed, the browser refuses both
// the module and the API.
func TestSDKBrowser(t *testing.T) {
	browsertest.Require(t)
	h := newHarness(t)
	h.consent("gina", "marketing", "granted")
	tok := h.token("gina")
	page := func(api string) string {
		return `<!doctype html><title>shop</title><a id="privacy">隐私中心</a>
<script>Object.defineProperty(Navigator.prototype, "globalPrivacyControl", {get: () => true});</script>
<script type="module">
const API = ` + jsString(api) + `, out = {};
try {
  const { Portrait } = await import(API + "/sdk/portrait.js");
  const p = new Portrait({ server: API, subject: "gina", token: ` + jsString(tok) + ` });
  out.gpc = await p.honourGPC();
  out.track = await p.track("view", { item: "sku-9", category: "sports" });
  out.grant = await p.setConsent("personalization", "granted");
  out.consents = await p.consents();
  p.linkPrivacyCentre(document.getElementById("privacy"), "en");
  try { await p.setConsent("nosuch", "granted", { noticeVersion: "1" }); } catch (e) { out.refused = { status: e.status, code: e.code }; }
} catch (e) { out.error = String(e); }
try { await fetch(API + "/v1/me/consents", { headers: { Authorization: "Bearer x" } }); out.fetch = "ok"; } catch (e) { out.fetch = String(e); }
window.result = JSON.stringify(out);
</script>`
	}
	shopMux := http.NewServeMux()
	shop := httptest.NewServer(shopMux)
	defer shop.Close()
	other := httptest.NewServer(shopMux)
	defer other.Close()
	api := httptest.NewServer(server.CORS([]string{shop.URL}, h.server))
	defer api.Close()
	shopMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page(api.URL))
	})

	ctx, _ := browsertest.Open(t, 1280, 900, 60*time.Second)
	type result struct {
		GPC *struct {
			Receipts []struct{ Purpose, Status, Channel string }
		}
		Track *struct {
			Accepted int
		}
		Grant    *struct{ Status string }
		Consents *struct {
			Consents []struct{ Purpose, Status string }
		}
		Refused *struct {
			Status int
			Code   string
		}
		Error, Fetch string
	}
	load := func(origin string) (result, string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/"), chromedp.Poll[chromedp.Void]("window.result !== undefined", chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("load %s: %v", origin, err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string]("window.result"))
		if err != nil {
			t.Fatal(err)
		}
		href, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("privacy").href`))
		var r result
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return r, href
	}

	r, href := load(shop.URL)
	if r.Error != "" || r.Fetch != "ok" {
		t.Fatalf("listed origin: %+v", r)
	}
	if r.GPC == nil || len(r.GPC.Receipts) == 0 || r.GPC.Receipts[0].Purpose != "marketing" || r.GPC.Receipts[0].Status != "withdrawn" || r.GPC.Receipts[0].Channel != "gpc" {
		t.Errorf("CN-12: GPC in the browser: %+v", r.GPC)
	}
	if r.Track == nil || r.Track.Accepted != 1 {
		t.Errorf("event: %+v", r.Track)
	}
	if r.Grant == nil || r.Grant.Status != "granted" {
		t.Errorf("grant: %+v", r.Grant)
	}
	got := map[string]string{}
	for _, c := range r.Consents.Consents {
		got[c.Purpose] = c.Status
	}
	if got["personalization"] != "granted" || got["marketing"] != "withdrawn" {
		t.Errorf("consents read in the browser: %v", got)
	}
	if r.Refused == nil || r.Refused.Status != 400 {
		t.Errorf("refusal surfaced to the page: %+v", r.Refused)
	}
	if href != api.URL+"/privacy/?lang=en" {
		t.Errorf("privacy centre link %q", href)
	}
	// The server holds the event and the consents the page sent.
	var mine struct {
		Consents []struct{ Purpose, Status string }
	}
	h.do("GET", "/v1/me/consents", tok, "", nil, &mine)
	for _, c := range mine.Consents {
		if c.Purpose == "personalization" && c.Status != "granted" {
			t.Errorf("server-side consent after the page: %+v", c)
		}
	}

	r, _ = load(other.URL)
	if r.Error == "" || r.Track != nil || r.Fetch == "ok" {
		t.Errorf("origin not listed reached the API: %+v", r)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var _ = policy.Subject

// The dead-letter list is read by admins and auditors and replayed by
// admins; a replay the destination still refuses leaves the letter.
func TestDeadLetterAPI(t *testing.T) {
	h := newHarness(t)
	var up atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", 503)
		}
	}))
	defer hook.Close()
	d := &delivery.Dispatcher{Store: h.store, Audit: h.log, Attempts: 1,
		Destinations: []delivery.Destination{{Name: "crm", Sender: &delivery.Webhook{URL: hook.URL, Secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="}}}}
	srv := httptest.NewServer(server.New(server.Config{Store: h.store, Point: h.point, Keys: h.keys, Log: h.log, Deliveries: d}))
	defer srv.Close()
	h.consent("ivy", "marketing", "granted")
	h.consent("ivy", "marketing", "withdrawn")
	if err := d.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	call := func(method, path, key, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var list struct{ Dead []delivery.DeadLetter }
	if code := call("GET", "/v1/deliveries/dead", h.staff(policy.Auditor), "", &list); code != 200 || len(list.Dead) != 1 ||
		list.Dead[0].Event.Type != delivery.Withdrawal {
		t.Fatalf("dead letters: %d %+v", code, list)
	}
	body := fmt.Sprintf(`{"destination":"crm","id":%q}`, list.Dead[0].Event.ID)
	if code := call("POST", "/v1/deliveries/dead/replay", h.staff(policy.Operator), body, nil); code != 403 {
		t.Errorf("operator replay: %d", code)
	}
	if code := call("POST", "/v1/deliveries/dead/replay", h.staff(policy.Admin), body, nil); code != 503 || len(d.Dead()) != 1 {
		t.Errorf("replay to a destination still down: %d, %d left", code, len(d.Dead()))
	}
	up.Store(true)
	if code := call("POST", "/v1/deliveries/dead/replay", h.staff(policy.Admin), body, nil); code != 200 || len(d.Dead()) != 0 {
		t.Errorf("replay: %d, %d left", code, len(d.Dead()))
	}
	if code := call("POST", "/v1/deliveries/dead/replay", h.staff(policy.Admin), body, nil); code != 404 {
		t.Errorf("replay of a delivered letter: %d", code)
	}
}
