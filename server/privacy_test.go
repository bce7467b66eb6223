package server_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/browsertest"
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
		sts, _ := h.store.States(context.Background(), []portrait.Pseudonym{p})
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

// TestPrivacyBrowser drives the real pages in Chromium: sign in, withdraw
// a consent, delete a label, move the dial, download the export, erase;
// after each step the effect is checked through the store (CN-4, LP-3,
// LP-4, LP-5, SR-2, SR-3).
func TestPrivacyBrowser(t *testing.T) {
	browsertest.Require(t)
	h := newHarness(t)
	p := h.seedSubject("demo-alice", 3)
	ctx, _ := browsertest.Open(t, 412, 915, 60*time.Second)
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
		sts, _ := h.store.States(context.Background(), []portrait.Pseudonym{portrait.Pseudonym(p)})
		st := sts[portrait.Pseudonym(p)]
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
	// CM-2: correct a profile field; the page shows it at once.
	run("correct", chromedp.Navigate(h.url+"/privacy/profile?lang=zh-CN"), chromedp.WaitVisible(chromedp.ID("value-city")), shoot("profile-zh"),
		chromedp.SetValue(chromedp.ID("value-city"), "杭州"), chromedp.Click(chromedp.ID("correct-city")), chromedp.WaitVisible(chromedp.ID("flash")),
		chromedp.WaitVisible(chromedp.ID("source-city")))
	prof, err := h.rights.Profile(context.Background(), policy.Caller{Role: policy.Operator, ID: "op-1"}, portrait.Pseudonym(p))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range prof {
		if f.Field == "city" && (f.Value != "杭州" || f.Source != "correction") {
			t.Errorf("after correcting in the page: %+v", f)
		}
	}
	// AD-3: appeal an automated decision with a statement.
	h.consent("demo-alice", "credit", "granted")
	income := []portrait.Event{{SubjectID: "demo-alice", Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"income": 9000.0}}}
	if resp := h.json("POST", "/v1/events", h.staff(policy.Operator), income, nil); resp.StatusCode != 200 {
		t.Fatalf("income: %d", resp.StatusCode)
	}
	if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", h.staff(policy.Admin), art56, nil); resp.StatusCode != 201 {
		t.Fatalf("assess: %d", resp.StatusCode)
	}
	if resp := h.json("POST", "/v1/me/usecases/credit_limit/notice", h.token("demo-alice"), nil, nil); resp.StatusCode != 201 {
		t.Fatalf("notice: %d", resp.StatusCode)
	}
	var dr decisionResp
	if resp := h.json("POST", "/v1/decisions", h.staff(policy.Operator), map[string]string{"usecase": "credit_limit", "subject": "demo-alice"}, &dr); resp.StatusCode != 201 {
		t.Fatalf("decide: %d", resp.StatusCode)
	}
	run("appeal", chromedp.Navigate(h.url+"/privacy/decisions?lang=en"), chromedp.WaitVisible(chromedp.ID("statement-"+dr.ID)),
		chromedp.SetValue(chromedp.ID("statement-"+dr.ID), "My income doubled last month."), shoot("decisions-en"),
		chromedp.Click(chromedp.ID("appeal-"+dr.ID)), chromedp.WaitVisible(chromedp.ID("flash")))
	rvs, err := h.store.Reviews(context.Background(), "open")
	if err != nil || len(rvs) != 1 || rvs[0].DeterminationID != dr.ID || rvs[0].Kind != "appeal" {
		t.Errorf("after appealing in the page: %+v %v", rvs, err)
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
		t.Fatalf("downloaded export: %v", err)
	}
	// SR-1, AD-4: the export opens the decision and shows the appeal.
	if len(doc.Decisions) != 1 || doc.Decisions[0].Explanation["zh-CN"] == "" || doc.Decisions[0].Explanation["en"] == "" ||
		len(doc.Decisions[0].Reviews) != 1 || doc.Decisions[0].Reviews[0].Statement != "My income doubled last month." {
		t.Errorf("decisions in the downloaded export: %+v", doc.Decisions)
	}
	// SR-3: the confirmation lists what goes; confirming erases.
	// SR-3: export is offered first; erasure needs a second, explicit
	// confirmation that names what is lost.
	run("erasure", chromedp.Navigate(h.url+"/privacy/erasure"), chromedp.WaitVisible(chromedp.ID("removal")), chromedp.WaitVisible(chromedp.ID("export-first")), shoot("erasure-en"),
		chromedp.Click(chromedp.ID("continue-erasure")), chromedp.WaitVisible(chromedp.ID("lost")), shoot("erasure-confirm-en"),
		chromedp.Click(chromedp.ID("understand")), chromedp.Click(chromedp.ID("confirm-erasure")), chromedp.WaitVisible(chromedp.ID("receipt")), shoot("erased-en"))
	subs, _ := h.store.Subjects(context.Background(), []portrait.Pseudonym{portrait.Pseudonym(p)})
	if _, ok := subs[portrait.Pseudonym(p)]; ok {
		t.Error("the subject is still stored after erasing in the page")
	}
	run("requests after erasure", chromedp.Navigate(h.url+"/privacy/requests"), chromedp.WaitVisible(chromedp.ID("token")))
}

// postForm posts a privacy-centre form and returns the status and the
// page it lands on.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// CM-2, SR-4, AD-3: from the privacy centre a subject corrects a declared
// profile field (a wrong type or an undeclared field is refused and
// changes nothing), files a request for the staff queue, and appeals an
// automated decision with a statement; each effect is checked in the
// store.
func TestPrivacyCorrectRequestAppeal(t *testing.T) {
	h := newHarness(t)
	p := h.seedSubject("alice", 1)
	ctx := context.Background()
	c, csrf := signedIn(t, h, h.token("alice"), "/privacy/profile")
	profile := func() map[string]rights.ProfileEntry {
		got, err := h.rights.Profile(ctx, policy.Caller{Role: policy.Operator, ID: "op-1"}, portrait.Pseudonym(p))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]rights.ProfileEntry{}
		for _, e := range got {
			m[e.Field] = e
		}
		return m
	}
	for _, tc := range []struct {
		field, value string
		status       int
		want         string
	}{
		{"age", "thirty", 400, "type number"},
		{"shoe_size", "42", 400, "not declared"},
		{"city", "Hangzhou", 403, ""}, // no CSRF token: below
	} {
		form := url.Values{"csrf": {csrf}, "value": {tc.value}}
		if tc.status == 403 {
			form.Del("csrf")
		}
		status, page := postForm(t, c, h.url+"/privacy/profile/"+tc.field, form)
		if status != tc.status || !strings.Contains(page, tc.want) {
			t.Errorf("correct %s=%q: %d, want %d naming %q", tc.field, tc.value, status, tc.status, tc.want)
		}
	}
	if got := profile(); got["city"].Value != "Marker-City-alice" || got["age"].Value != float64(30) {
		t.Fatalf("a refused correction changed the profile: %+v", got)
	}
	status, page := postForm(t, c, h.url+"/privacy/profile/age", url.Values{"csrf": {csrf}, "value": {"41"}})
	if status != 200 || !strings.Contains(page, `value="41"`) || !strings.Contains(page, `id="flash"`) {
		t.Errorf("correction page: %d", status)
	}
	if got := profile()["age"]; got.Value != float64(41) || got.Source != "correction" {
		t.Errorf("after correction: %+v", got)
	}

	// SR-4: a request from the form is an open case with a deadline.
	if status, _ := postForm(t, c, h.url+"/privacy/requests", url.Values{"csrf": {csrf}, "type": {"erasure"}}); status != 400 {
		t.Errorf("a request type the form does not offer: %d", status)
	}
	if status, _ := postForm(t, c, h.url+"/privacy/requests", url.Values{"csrf": {csrf}, "type": {"explanation"}}); status != 200 {
		t.Errorf("file request: %d", status)
	}
	cases, _ := h.rights.Cases(ctx, portrait.Pseudonym(p))
	open := 0
	for _, cs := range cases {
		if cs.Type == rights.TypeExplanation && cs.Status == rights.StatusOpen && cs.Deadline.After(cs.Created) {
			open++
		}
	}
	if open != 1 {
		t.Errorf("%d open explanation cases, want 1: %+v", open, cases)
	}

	// AD-3: the decisions page lists the decision with its explanation and
	// takes an appeal; a second appeal while one is open is refused.
	h.consent("alice", "credit", "granted")
	evs := []portrait.Event{{SubjectID: "alice", Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"income": 9000.0}}}
	if resp := h.json("POST", "/v1/events", h.staff(policy.Operator), evs, nil); resp.StatusCode != 200 {
		t.Fatalf("income: %d", resp.StatusCode)
	}
	if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", h.staff(policy.Admin), art56, nil); resp.StatusCode != 201 {
		t.Fatalf("assess: %d", resp.StatusCode)
	}
	if resp := h.json("POST", "/v1/me/usecases/credit_limit/notice", h.token("alice"), nil, nil); resp.StatusCode != 201 {
		t.Fatalf("notice: %d", resp.StatusCode)
	}
	var d decisionResp
	if resp := h.json("POST", "/v1/decisions", h.staff(policy.Operator), map[string]string{"usecase": "credit_limit", "subject": "alice"}, &d); resp.StatusCode != 201 {
		t.Fatalf("decide: %d", resp.StatusCode)
	}
	page = fetchPage(t, c, h.url+"/privacy/decisions?lang=en")
	if !strings.Contains(page, `id="decision-`+d.ID+`"`) || !strings.Contains(page, `id="appeal-`+d.ID+`"`) {
		t.Fatalf("decisions page does not offer the appeal of %s", d.ID)
	}
	// The page shows the outcome the model gave and its score as numbers,
	// not as pointers (AD-4).
	want := "declined"
	if d.Outcome != nil && *d.Outcome {
		want = "approved"
	}
	if d.Outcome == nil || d.Score == nil || !strings.Contains(page, `<span class="result">`+want+`</span>`) ||
		!strings.Contains(page, fmt.Sprintf("score %.3f", *d.Score)) {
		t.Errorf("decisions page does not show outcome %q and score %v", want, d.Score)
	}
	if status, _ := postForm(t, c, h.url+"/privacy/decisions/"+d.ID+"/appeal", url.Values{"csrf": {csrf}, "statement": {"  "}}); status != 400 {
		t.Errorf("appeal without a statement: %d", status)
	}
	if status, _ := postForm(t, c, h.url+"/privacy/decisions/"+d.ID+"/appeal", url.Values{"statement": {"no csrf"}}); status != 403 {
		t.Errorf("appeal without CSRF: %d", status)
	}
	const statement = "My income is <b>wrong</b>."
	status, page = postForm(t, c, h.url+"/privacy/decisions/"+d.ID+"/appeal", url.Values{"csrf": {csrf}, "statement": {statement}})
	if status != 200 || strings.Contains(page, `id="appeal-`+d.ID+`"`) {
		t.Errorf("appeal: %d; the page still offers an appeal", status)
	}
	open = 0
	rvs, err := h.store.Reviews(ctx, "open")
	if err != nil {
		t.Fatal(err)
	}
	for _, rv := range rvs {
		if rv.DeterminationID == d.ID && rv.Kind == "appeal" {
			open++
		}
	}
	if open != 1 {
		t.Errorf("%d open appeals of %s, want 1", open, d.ID)
	}
	if status, _ := postForm(t, c, h.url+"/privacy/decisions/"+d.ID+"/appeal", url.Values{"csrf": {csrf}, "statement": {"again"}}); status != 409 {
		t.Errorf("second appeal while one is open: %d", status)
	}
	if status, _ := postForm(t, c, h.url+"/privacy/decisions/dec_nosuch/appeal", url.Values{"csrf": {csrf}, "statement": {"x"}}); status != 404 && status != 403 {
		t.Errorf("appeal of a decision that is not mine: %d", status)
	}
}
