package server_test

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rights"
)

// signedIn returns a client holding alice's privacy-centre session and
// the CSRF token of the form on path.
func signedIn(t *testing.T, h *harness, tok, path string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(h.url+"/privacy/signin", url.Values{"token": {tok}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign in: %v %v", resp, err)
	}
	resp.Body.Close()
	body := fetchPage(t, c, h.url+path)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on %s", path)
	}
	return c, m[1]
}

func fetchPage(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// CN-4: a form post without the session's CSRF token is refused and
// changes nothing; with it, withdrawal is one post. Pages escape what
// they show; a forged session cookie gets nothing.
func TestPrivacyCSRF(t *testing.T) {
	h := newHarness(t)
	h.seedSubject("alice", 1)
	c, csrf := signedIn(t, h, h.token("alice"), "/privacy/consents")
	p := h.keys.Pseudonym("alice")
	state := func() policy.Status {
		sts, _ := h.store.States(context.Background(), []string{p})
		return sts[p].Consents["personalization"].Status
	}
	for _, bad := range []string{"", "forged", csrf[:len(csrf)-2] + "xx"} {
		resp, err := c.PostForm(h.url+"/privacy/consents/personalization", url.Values{"csrf": {bad}, "action": {"withdrawn"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 || state() != policy.Granted {
			t.Errorf("csrf %q: %d, consent %v", bad, resp.StatusCode, state())
		}
	}
	resp, err := c.PostForm(h.url+"/privacy/consents/personalization", url.Values{"csrf": {csrf}, "action": {"withdrawn"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || state() != policy.Withdrawn {
		t.Errorf("withdraw: %d, consent %v", resp.StatusCode, state())
	}
	page := fetchPage(t, c, h.url+"/privacy/consents?done=consent&what=%3Cscript%3Ealert(1)%3C/script%3E")
	if strings.Contains(page, "<script>alert(1)") || !strings.Contains(page, "&lt;script&gt;alert(1)") {
		t.Error("the flash message is not escaped")
	}
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(h.url + "/privacy/")
	jar.SetCookies(u, []*http.Cookie{{Name: "portrait_session", Value: "pt1.AAAA.BBBB"}})
	forged := &http.Client{Jar: jar}
	resp, err = forged.Get(h.url + "/privacy/labels")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("forged session: %d", resp.StatusCode)
	}
	if resp, _ := http.PostForm(h.url+"/privacy/demo", url.Values{"subject": {"alice"}}); resp.StatusCode != 404 {
		t.Errorf("demo sign-in as a subject that is not a demo subject: %d", resp.StatusCode)
	}
}

func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("PORTRAIT_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (set PORTRAIT_CHROMIUM); the browser test needs one")
	return ""
}

// TestPrivacyBrowser drives the real pages in Chromium: sign in, withdraw
// a consent, delete a label, move the dial, download the export, erase;
// after each step the effect is checked through the store (CN-4, LP-3,
// LP-4, LP-5, SR-2, SR-3).
func TestPrivacyBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test in -short mode")
	}
	exe := chromium(t)
	h := newHarness(t)
	p := h.seedSubject("demo-alice", 3)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	shots := os.Getenv("PORTRAIT_SCREENSHOTS") == "1"
	shoot := func(name string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			if !shots {
				return chromedp.Void{}, nil
			}
			b, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, os.WriteFile(filepath.Join("..", "docs", "screenshots", name+".png"), b, 0o644)
		}
	}
	if shots {
		os.MkdirAll(filepath.Join("..", "docs", "screenshots"), 0o755)
	}
	state := func() (consent policy.Status, level int, suppressed map[string]bool) {
		sts, _ := h.store.States(context.Background(), []string{p})
		st := sts[p]
		return st.Consents["personalization"].Status, st.Personalization, st.Suppressed
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// Sign in with the demo picker.
	run("sign in", chromedp.Navigate(h.url+"/privacy/"), shoot("signin-zh"), chromedp.Click(chromedp.ID("demo-demo-alice")),
		chromedp.WaitVisible(chromedp.CSS(".cards")), shoot("home-zh"))
	run("notice", chromedp.Navigate(h.url+"/privacy/notice"), chromedp.WaitVisible(chromedp.ID("h-dec")), shoot("notice-zh"),
		chromedp.Navigate(h.url+"/privacy/notice?lang=en"), chromedp.WaitVisible(chromedp.ID("h-dec")), shoot("notice-en"))
	// CN-4: withdraw in one click.
	run("withdraw", chromedp.Navigate(h.url+"/privacy/consents?lang=zh-CN"), shoot("consents-zh"),
		chromedp.Click(chromedp.ID("withdraw-personalization")), chromedp.WaitVisible(chromedp.ID("grant-personalization")))
	if c, _, _ := state(); c != policy.Withdrawn {
		t.Errorf("after withdrawing in the page: consent %v", c)
	}
	// Withdrawing deleted the personalization-only label (CN-4); grant
	// again and put a label back to delete it from the page (LP-3).
	run("grant", chromedp.Click(chromedp.ID("grant-personalization")), chromedp.WaitVisible(chromedp.ID("withdraw-personalization")))
	h.putLabel(p, "sports_fan")
	run("labels", chromedp.Navigate(h.url+"/privacy/labels"), chromedp.Click(chromedp.CSS("#label-sports_fan summary")), shoot("labels-zh"),
		chromedp.Navigate(h.url+"/privacy/labels?lang=en"), chromedp.Click(chromedp.CSS("#label-sports_fan summary")), shoot("labels-en"),
		chromedp.Click(chromedp.ID("delete-sports_fan")), chromedp.WaitVisible(chromedp.ID("restore-sports_fan")))
	if _, _, sup := state(); !sup["sports_fan"] {
		t.Errorf("after deleting in the page: suppressed %v", sup)
	}
	var ls struct{ Labels []rights.LabelEntry }
	h.do("GET", "/v1/me/labels", h.token("demo-alice"), "", nil, &ls)
	if len(ls.Labels) != 1 || ls.Labels[0].Value != nil {
		t.Errorf("label value still stored after delete: %+v", ls.Labels)
	}
	// LP-4, LP-5: move the dial.
	run("dial", chromedp.Navigate(h.url+"/privacy/personalization"), chromedp.SetValue(chromedp.ID("level"), "25"), shoot("personalization-en"),
		chromedp.Click(chromedp.ID("save-level")), chromedp.WaitVisible(chromedp.ID("flash")))
	if _, lvl, _ := state(); lvl != 25 {
		t.Errorf("after the dial: level %d", lvl)
	}
	// SR-2: download the export with the page's session.
	if err := chromedp.Do(ctx, chromedp.Navigate(h.url+"/privacy/export"), shoot("export-en")); err != nil {
		t.Fatal(err)
	}
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("download").getAttribute("href")`))
	if err != nil {
		t.Fatal(err)
	}
	export, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){var x=new XMLHttpRequest();x.open("GET",`+"`"+href+"`"+`,false);x.send();return x.responseText})()`))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := rights.VerifyExport([]byte(export), h.keys.ReceiptKey().Public().(ed25519.PublicKey))
	if err != nil || doc.SubjectID != "demo-alice" {
		t.Errorf("downloaded export: %v", err)
	}
	// SR-3: the confirmation lists what goes; confirming erases.
	run("erasure", chromedp.Navigate(h.url+"/privacy/erasure"), chromedp.WaitVisible(chromedp.ID("removal")), shoot("erasure-en"),
		chromedp.Click(chromedp.ID("confirm-erasure")), chromedp.WaitVisible(chromedp.ID("receipt")), shoot("erased-en"))
	subs, _ := h.store.Subjects(context.Background(), []string{p})
	if _, ok := subs[p]; ok {
		t.Error("the subject is still stored after erasing in the page")
	}
	run("requests after erasure", chromedp.Navigate(h.url+"/privacy/requests"), chromedp.WaitVisible(chromedp.ID("token")))
}
