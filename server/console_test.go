package server_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/browsertest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
)

// consoleURL serves the harness's API together with the staff console
// pages, mounted at /console/.
func consoleURL(h *harness) string {
	h.t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/console/", h.server.Console())
	mux.Handle("/console/monitor", h.server)
	mux.Handle("/", h.server)
	ts := httptest.NewServer(mux)
	h.t.Cleanup(ts.Close)
	return ts.URL
}

// appealed puts a live credit decision about subject on record and has the
// subject appeal it with statement; it returns the decision and review ids.
func appealed(h *harness, subject, statement string) (decision, review string) {
	h.t.Helper()
	op := h.staff(policy.Operator)
	h.consent(subject, "credit", "granted")
	evs := []portrait.Event{{SubjectID: subject, Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"age": 35.0, "income": 9000.0}}}
	if resp := h.json("POST", "/v1/events", op, evs, nil); resp.StatusCode != 200 {
		h.t.Fatalf("profile of %s: %d", subject, resp.StatusCode)
	}
	tok := h.token(subject)
	if resp := h.json("POST", "/v1/me/usecases/credit_limit/notice", tok, nil, nil); resp.StatusCode != 201 {
		h.t.Fatalf("notice for %s: %d", subject, resp.StatusCode)
	}
	var d decisionResp
	if resp := h.json("POST", "/v1/decisions", op, map[string]string{"usecase": "credit_limit", "subject": subject}, &d); resp.StatusCode != 201 {
		h.t.Fatalf("decision about %s: %d", subject, resp.StatusCode)
	}
	var rv portrait.Review
	if resp := h.json("POST", "/v1/me/decisions/"+d.ID+"/appeal", tok, map[string]string{"statement": statement}, &rv); resp.StatusCode != 201 {
		h.t.Fatalf("appeal by %s: %d", subject, resp.StatusCode)
	}
	return d.ID, rv.ID
}

// consoleHarness is a harness with the credit use-case assessed, dave's
// decision appealed and erin's appealed and past its deadline.
func consoleHarness(t *testing.T, opts ...func(*server.Config)) (h *harness, base, daveReview, erinReview string) {
	return consoleHarnessOn(t, newHarness(t, opts...))
}

// consoleHarnessOn is consoleHarness over h, for the tests that run on
// both stores (onEachStore).
func consoleHarnessOn(t *testing.T, h *harness) (_ *harness, base, daveReview, erinReview string) {
	h.point.SetCatalog(liveCatalog(t))
	if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", h.staff(policy.Admin), art56, nil); resp.StatusCode != 201 {
		t.Fatalf("assess: %d", resp.StatusCode)
	}
	_, daveReview = appealed(h, "dave", "I was promoted last month; my income doubled.")
	_, erinReview = appealed(h, "erin", "My income is wrong.")
	// Time passes for erin's case: its deadline is behind us.
	ctx := context.Background()
	rv, err := h.store.ReviewByID(ctx, erinReview)
	if err != nil {
		t.Fatal(err)
	}
	rv.Deadline = time.Now().Add(-26 * time.Hour)
	if err := h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutReview(ctx, rv) }); err != nil {
		t.Fatal(err)
	}
	return h, consoleURL(h), daveReview, erinReview
}

// staffClient signs in to the console with key and returns the client
// with its session and the CSRF token of the page at path.
func staffClient(t *testing.T, base, key, path string) (*http.Client, string, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(base+"/console/signin", url.Values{"key": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Request.URL.Path, "/console/") || resp.Request.URL.Path == "/console/signin" {
		t.Fatalf("sign in: %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	page := fetchPage(t, c, base+path)
	csrf := ""
	if m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page); m != nil {
		csrf = m[1]
	}
	return c, csrf, page
}

func reviewStatus(t *testing.T, h *harness, id string) string {
	t.Helper()
	rv, err := h.store.ReviewByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rv.Status
}

// TestConsoleAccess: who may read and decide through the console is what
// the API allows; forged sessions, missing CSRF tokens and cross-site
// posts change nothing (AD-3, RO-7). On both engines: the review
// records the console reads and writes are the store's (invariant 7).
func TestConsoleAccess(t *testing.T) { onEachStore(t, testConsoleAccess) }

func testConsoleAccess(t *testing.T, h *harness) {
	h, base, dave, erin := consoleHarnessOn(t, h)
	post := func(c *http.Client, id, csrf, origin string) int {
		t.Helper()
		form := url.Values{"csrf": {csrf}, "outcome": {"overturned"}, "reason": {"Income verified."}}
		req, _ := http.NewRequest("POST", base+"/console/reviews/"+id, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Without a session every page leads to the sign-in form; a wrong key
	// is refused.
	anon := &http.Client{}
	if page := fetchPage(t, anon, base+"/console/reviews/"+dave); !strings.Contains(page, `id="key"`) {
		t.Error("no sign-in form for a page without a session")
	}
	resp, err := anon.PostForm(base+"/console/signin", url.Values{"key": {"not-a-key"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unknown key: %d", resp.StatusCode)
	}

	// A session cookie that was not made here, or was edited, is refused.
	for _, forged := range []string{"x", "AAAA.9999999999.AAAA"} {
		jar, _ := cookiejar.New(nil)
		u, _ := url.Parse(base + "/console/")
		jar.SetCookies(u, []*http.Cookie{{Name: "portrait_console", Value: forged}})
		resp, err := (&http.Client{Jar: jar}).Get(base + "/console/reviews")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("forged session %q: %d", forged, resp.StatusCode)
		}
	}

	// The cookie holds no API key and is HttpOnly, SameSite=Strict.
	resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		PostForm(base+"/console/signin", url.Values{"key": {h.staff(policy.Reviewer)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "portrait_console" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" || strings.Contains(ck.Value, h.staff(policy.Reviewer)) {
		t.Fatalf("session cookie: %+v", ck)
	}

	// AD-3: the reviewer's queue lists both cases, the overdue one marked.
	rev, csrf, page := staffClient(t, base, h.staff(policy.Reviewer), "/console/reviews/"+dave)
	queue := fetchPage(t, rev, base+"/console/reviews")
	if !strings.Contains(queue, `id="open-`+dave+`"`) || !strings.Contains(queue, `id="overdue-`+erin+`"`) || strings.Contains(queue, `id="overdue-`+dave+`"`) {
		t.Errorf("queue without both cases or the overdue mark:\n%s", queue)
	}
	if !strings.Contains(page, "I was promoted last month") || !strings.Contains(page, `id="decide"`) {
		t.Errorf("case page without the statement or the form")
	}
	// A post without the session's CSRF token, or from another site,
	// decides nothing.
	for _, tc := range []struct{ csrf, origin string }{{"", ""}, {"forged", ""}, {csrf, "https://evil.example"}} {
		if got := post(rev, dave, tc.csrf, tc.origin); got != 403 || reviewStatus(t, h, dave) != "open" {
			t.Errorf("post with csrf %q origin %q: %d, review %s", tc.csrf, tc.origin, got, reviewStatus(t, h, dave))
		}
	}

	// RO-7: a reviewer from the team that owns the model sees why and gets
	// no form; posting anyway is refused as the API refuses it.
	owner, ocsrf, opage := staffClient(t, base, h.addKey(policy.Reviewer, "risk-models/omar"), "/console/reviews/"+dave)
	if !strings.Contains(opage, `id="conflict"`) || strings.Contains(opage, `id="decide"`) {
		t.Error("RO-7: the model owner's case page offers a decision")
	}
	if got := post(owner, dave, ocsrf, ""); got != 403 || reviewStatus(t, h, dave) != "open" {
		t.Errorf("RO-7: model owner's post: %d, review %s", got, reviewStatus(t, h, dave))
	}

	// Roles: an auditor reads the overdue report only; an operator may
	// read neither, as GET /v1/reviews and /v1/reviews/overdue decide.
	aud, acsrf, report := staffClient(t, base, h.staff(policy.Auditor), "/console/reviews")
	if !strings.Contains(report, `id="overdue-`+erin+`"`) || strings.Contains(report, dave) || strings.Contains(report, `href="/console/reviews/`+erin) {
		t.Errorf("auditor's overdue report:\n%s", report)
	}
	if resp, _ := aud.Get(base + "/console/reviews/" + erin); resp.StatusCode != 403 {
		t.Errorf("auditor opened a case: %d", resp.StatusCode)
	}
	if got := post(aud, erin, acsrf, ""); got != 403 || reviewStatus(t, h, erin) != "open" {
		t.Errorf("auditor decided a case: %d", got)
	}
	op, _, _ := staffClient(t, base, h.staff(policy.Operator), "/console/signin")
	if resp, _ := op.Get(base + "/console/reviews"); resp.StatusCode != 403 {
		t.Errorf("operator read the queue: %d", resp.StatusCode)
	}

	// An empty reason is refused with the rule, and nothing is closed.
	form := url.Values{"csrf": {csrf}, "outcome": {"upheld"}, "reason": {"  "}}
	resp, err = rev.PostForm(base+"/console/reviews/"+dave, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || reviewStatus(t, h, dave) != "open" {
		t.Errorf("empty reason: %d, review %s", resp.StatusCode, reviewStatus(t, h, dave))
	}
}

// TestConsoleBrowser drives the console in Chromium: a reviewer signs in,
// opens a case, reads the explanation and statement and overturns it with
// a reason; the subject then sees the outcome through the API (AD-2,
// AD-3). A reviewer who owns the model is refused (RO-7).
func TestConsoleBrowser(t *testing.T) {
	browsertest.Require(t)
	h, base, dave, _ := consoleHarness(t)
	owner := h.addKey(policy.Reviewer, "risk-models/omar")
	ctx, _ := browsertest.Open(t, 1280, 900, 60*time.Second)
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
			t.Fatalf("%s: %v\n%s", step, err, loc)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector(`+"`"+sel+"`"+`).textContent`))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}

	// The model owner signs in first: the case says why they may not
	// decide it, and there is no form (RO-7).
	run("owner signs in", chromedp.Navigate(base+"/console/reviews"), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), owner), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("queue")),
		chromedp.Click(chromedp.ID("open-"+dave)), chromedp.WaitVisible(chromedp.ID("conflict")))
	if got := text("#conflict"); !strings.Contains(got, "risk-models") {
		t.Errorf("RO-7 notice: %q", got)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#decide").length`)); n != 0 {
		t.Error("RO-7: the owner is offered the decision form")
	}
	run("owner signs out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("flash")))

	// A reviewer signs in; the pages are in Chinese by default.
	run("reviewer signs in", chromedp.WaitVisible(chromedp.ID("key")), chromedp.SendKeys(chromedp.ID("key"), h.staff(policy.Reviewer)),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("queue")))
	if got := text("h1"); got != "人工复核队列" {
		t.Errorf("default language heading: %q", got)
	}
	run("english", chromedp.Click(chromedp.ID("lang-en")), chromedp.WaitVisible(chromedp.ID("queue")))
	if got := text("h1"); got != "Human review queue" {
		t.Errorf("English heading: %q", got)
	}
	run("open case", chromedp.Click(chromedp.ID("open-"+dave)), chromedp.WaitVisible(chromedp.ID("decide")))
	if got := text("#statement"); !strings.Contains(got, "I was promoted last month") {
		t.Errorf("statement: %q", got)
	}
	if got := text("#explanation"); got == "" {
		t.Error("no explanation on the case page")
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#contributions tbody tr").length`)); n != 2 {
		t.Errorf("contributions rows: %d", n)
	}
	const reason = "Payslips confirm the new income; the limit is granted."
	run("overturn", chromedp.Click(chromedp.ID("outcome-overturned")), chromedp.SendKeys(chromedp.ID("reason"), reason),
		chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("flash")))

	// AD-3: the subject sees the outcome and the reason.
	var mine struct {
		Decisions []struct {
			Status  string
			Outcome *bool
			Final   *bool `json:"final_outcome"`
			Reviews []portrait.Review
		}
	}
	h.do("GET", "/v1/me/decisions", h.token("dave"), "", nil, &mine)
	if len(mine.Decisions) != 1 {
		t.Fatalf("dave's decisions: %+v", mine)
	}
	d := mine.Decisions[0]
	if d.Status != "overturned" || d.Final == nil || d.Outcome == nil || *d.Final == *d.Outcome || len(d.Reviews) != 1 ||
		d.Reviews[0].Reason != reason || d.Reviews[0].Reviewer != "reviewer-1" {
		t.Errorf("AD-3: the subject's view after the console decision: %+v", d)
	}
}
