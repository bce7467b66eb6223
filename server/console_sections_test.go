package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portrait-dev/portrait/browsertest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
)

// sectionsHarness is consoleHarness with something in every section: an
// open subject request, a violation report, a breach, a suspension and a
// monitor report with fairness, proxy, price and filter-bubble alerts.
func sectionsHarness(t *testing.T) (h *harness, base, dave string) {
	h, base, dave, _ = consoleHarness(t, alertingMonitor)
	if resp := h.json("POST", "/v1/me/requests", h.token("dave"), map[string]string{"type": "explanation"}, nil); resp.StatusCode != 201 {
		t.Fatalf("request: %d", resp.StatusCode)
	}
	if resp := h.do("POST", "/v1/reports", "", "application/json", []byte(`{"description":"我的数据被卖了","contact":"me@example.org"}`), nil); resp.StatusCode != 201 {
		t.Fatalf("report: %d", resp.StatusCode)
	}
	breach := []byte(`{"categories":["user.contact.email"],"cause":"备份泄露","harm":"垃圾邮件","measures":"已更换密钥","advice":"留意可疑邮件","contact":"dpo@example.com"}`)
	if resp := h.do("POST", "/v1/breaches", h.staff(policy.Admin), "application/json", breach, nil); resp.StatusCode != 201 {
		t.Fatalf("breach: %d", resp.StatusCode)
	}
	if resp := h.do("POST", "/v1/suspensions", h.staff(policy.Regulator), "application/json", []byte(`{"kind":"field","id":"city","reason":"正在调查"}`), nil); resp.StatusCode != 201 {
		t.Fatalf("suspension: %d", resp.StatusCode)
	}
	h.alert = raiseAlerts(h)
	return h, base, dave
}

// TestConsoleSectionsRoles walks every console section × every staff role:
// a role gets a link to, and a page of, exactly the sections whose API
// routes it may call; any other section answers 403 with a page in the
// console's language, never JSON (CM-5, RO-1).
func TestConsoleSectionsRoles(t *testing.T) {
	h, base, _ := sectionsHarness(t)
	want := map[string][]policy.Role{
		"/console/reviews":  {policy.Reviewer, policy.Admin, policy.Auditor, policy.Regulator},
		"/console/cases":    {policy.Admin, policy.Operator, policy.Auditor, policy.Regulator},
		"/console/log":      {policy.Admin, policy.Operator, policy.Reviewer, policy.Auditor, policy.Regulator},
		"/console/reports":  {policy.Admin, policy.Auditor, policy.Regulator},
		"/console/breaches": {policy.Admin, policy.Auditor, policy.Regulator},
		"/console/orders":   {policy.Admin, policy.Operator, policy.Reviewer, policy.Auditor, policy.Regulator},
		"/console/monitor":  {policy.Admin, policy.Auditor, policy.Regulator},
		"/console/records":  {policy.Admin, policy.Auditor, policy.Regulator},
		"/console/filing":   {policy.Admin, policy.Auditor, policy.Regulator},
		"/console/changes":  {policy.Admin, policy.Operator, policy.Reviewer, policy.Auditor, policy.Regulator},
	}
	secs := server.ConsoleSections()
	if len(secs) != len(want) {
		t.Errorf("%d console sections, %d expected: update this table deliberately", len(secs), len(want))
	}
	for _, sec := range secs {
		if w, ok := want[sec.Path]; !ok || !sameRoles(w, sec.Roles) {
			t.Errorf("section %s: roles %v, want %v", sec.Path, sec.Roles, w)
		}
	}
	for _, role := range []policy.Role{policy.Admin, policy.Operator, policy.Reviewer, policy.Auditor, policy.Regulator} {
		c, _, home := staffClient(t, base, h.staff(role), "/console/log")
		for path, roles := range want {
			allowed := slices.Contains(roles, role)
			if got := strings.Contains(home, `href="`+path+`"`); got != allowed {
				t.Errorf("%s: link to %s shown=%v, want %v", role, path, got, allowed)
			}
			for _, lang := range []string{"zh-CN", "en"} {
				resp, err := c.Get(base + path + "?lang=" + lang)
				if err != nil {
					t.Fatal(err)
				}
				body := readBody(t, resp)
				switch {
				case allowed && resp.StatusCode != 200:
					t.Errorf("%s %s (%s): %d\n%.600s", role, path, lang, resp.StatusCode, body)
				case !allowed && resp.StatusCode != 403:
					t.Errorf("%s %s (%s): %d, want 403", role, path, lang, resp.StatusCode)
				case !allowed:
					ct := resp.Header.Get("Content-Type")
					words := map[string]string{"zh-CN": "不能查看此页面", "en": "may not see this page"}[lang]
					if !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, `lang="`+lang+`"`) || !strings.Contains(body, words) {
						t.Errorf("%s %s (%s): refusal is %s, not a page in the console's language:\n%.400s", role, path, lang, ct, body)
					}
				}
			}
		}
	}
}

func sameRoles(a, b []policy.Role) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(r policy.Role) bool { return !slices.Contains(b, r) })
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestConsoleSectionsWork: each section shows what its service holds, and
// its forms act through the same services as the API: an operator answers
// a subject request (a refusal needs its reason), an admin answers a
// report, and an audit-log entry is shown with its inclusion proof
// checked against the signed checkpoint (SR-4, RO-8, FA-6).
func TestConsoleSectionsWork(t *testing.T) {
	h, base, _ := sectionsHarness(t)
	op, csrf, cases := staffClient(t, base, h.staff(policy.Operator), "/console/cases")
	if !strings.Contains(cases, "要求说明") || !strings.Contains(cases, `id="answer-`) {
		t.Fatalf("cases page without the request or its form:\n%s", cases)
	}
	cs, err := h.store.Cases(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, c := range cs {
		if c.Type == "explanation" {
			id = c.ID
		}
	}
	post := func(c *http.Client, path string, form url.Values) int {
		t.Helper()
		resp, err := c.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(op, "/console/cases/"+id, url.Values{"csrf": {csrf}, "status": {"refused"}, "text": {""}}); got != 400 {
		t.Errorf("SR-4: refusal without a reason: %d", got)
	}
	if got := post(op, "/console/cases/"+id, url.Values{"csrf": {csrf}, "status": {"fulfilled"}, "text": {"已书面说明决定的理由。"}}); got != 200 {
		t.Errorf("answer: %d", got)
	}
	cs, _ = h.store.Cases(context.Background(), "")
	for _, c := range cs {
		if c.ID == id && (c.Status != "fulfilled" || c.Outcome != "已书面说明决定的理由。") {
			t.Errorf("SR-4: case after the console answer: %+v", c)
		}
	}

	adm, acsrf, reports := staffClient(t, base, h.staff(policy.Admin), "/console/reports")
	if !strings.Contains(reports, "我的数据被卖了") {
		t.Errorf("reports page:\n%s", reports)
	}
	rps, _ := h.store.Cases(context.Background(), "")
	for _, c := range rps {
		if c.Type == "violation_report" {
			if got := post(adm, "/console/reports/"+c.ID, url.Values{"csrf": {acsrf}, "answer": {"已核查并整改。"}}); got != 200 {
				t.Errorf("RO-8: answer a report: %d", got)
			}
		}
	}
	if page := fetchPage(t, adm, base+"/console/reports"); !strings.Contains(page, "已核查并整改。") {
		t.Errorf("RO-8: answer not shown")
	}
	for path, want := range map[string]string{
		"/console/breaches": "备份泄露", "/console/orders": "正在调查", "/console/monitor": "个人内容多样性",
		"/console/records": "个人信息处理者", "/console/filing": "算法",
	} {
		if page := fetchPage(t, adm, base+path); !strings.Contains(page, want) {
			t.Errorf("%s lacks %q:\n%.1500s", path, want, page)
		}
	}

	// FA-6: the log browser finds review entries and proves one.
	aud, _, _ := staffClient(t, base, h.staff(policy.Auditor), "/console/log")
	list := fetchPage(t, aud, base+"/console/log?kind=request")
	if !strings.Contains(list, "权利请求") || strings.Contains(list, "自动化决定 ·") {
		t.Errorf("log search by kind:\n%s", list)
	}
	if page := fetchPage(t, aud, base+"/console/log?kind=request&from=2000-01-01&to=2000-01-02"); !strings.Contains(page, `id="empty"`) {
		t.Errorf("log search by day returned entries")
	}
	if page := fetchPage(t, aud, base+"/console/log/0"); !strings.Contains(page, `id="verified"`) {
		t.Errorf("FA-6: entry 0 not verified:\n%s", page)
	}
	if resp, _ := aud.Get(base + "/console/log/999999"); resp.StatusCode != 400 {
		t.Errorf("entry past the end: %d", resp.StatusCode)
	}
}

// TestConsoleModify: a reviewer corrects a decision through the console
// (采纳、修正或者推翻); the subject sees it as corrected (AD-3).
func TestConsoleModify(t *testing.T) {
	h, base, dave, _ := consoleHarness(t)
	rev, csrf, _ := staffClient(t, base, h.staff(policy.Reviewer), "/console/reviews/"+dave)
	resp, err := rev.PostForm(base+"/console/reviews/"+dave, url.Values{"csrf": {csrf}, "outcome": {"modified"}, "reason": {"额度调整为 8000 元。"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || reviewStatus(t, h, dave) != "closed" {
		t.Fatalf("modify: %d, review %s", resp.StatusCode, reviewStatus(t, h, dave))
	}
	if page := fetchPage(t, rev, base+"/console/reviews/"+dave); !strings.Contains(page, "修正") {
		t.Errorf("closed case does not say corrected")
	}
}

// TestConsoleSectionsBrowser opens every console section in Chromium at
// 1280 and 390 px in both languages, as the admin (who sees them all):
// nothing is wider than the screen, and with PORTRAIT_SCREENSHOTS=1 each
// is saved in docs/screenshots (PNG).
func TestConsoleSectionsBrowser(t *testing.T) {
	browsertest.Require(t)
	h, base, dave := sectionsHarness(t)
	shots := os.Getenv("PORTRAIT_SCREENSHOTS") == "1"
	for _, width := range []int{1280, 390} {
		ctx, cancel := browsertest.Open(t, width, 900, 300*time.Second) // a loaded 2-core machine
		run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			if err := chromedp.Do(ctx, actions...); err != nil {
				t.Fatalf("%d px, %s: %v", width, step, err)
			}
		}
		for _, who := range []struct {
			role  policy.Role
			pages []string
		}{
			{policy.Admin, []string{"reviews", "cases", "log", "log/0", fmt.Sprintf("log/%d", h.alert), "reports", "breaches", "orders", "monitor", "records", "filing"}},
			{policy.Reviewer, []string{"reviews/" + dave}},
		} {
			// Headless Chromium keeps a window at least 500 px wide: the
			// phone's width is emulated, as a phone reports it.
			run("sign in", chromedp.EmulateViewport(int64(width), 900), chromedp.Navigate(base+"/console/signin"), chromedp.WaitVisible(chromedp.ID("key")),
				chromedp.SendKeys(chromedp.ID("key"), h.staff(who.role)), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("whoami")))
			for _, page := range who.pages {
				for _, lang := range []string{"zh-CN", "en"} {
					run(page, chromedp.Navigate(base+"/console/"+page+"?lang="+lang), chromedp.WaitVisible(chromedp.ID("main")))
					over, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
					if err != nil {
						t.Fatal(err)
					}
					if iw, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`)); err != nil || iw != width {
						t.Fatalf("%d px: the page is %d px wide (%v)", width, iw, err)
					}
					if over > 0 {
						t.Errorf("%d px, %s (%s): the page is %d px wider than the screen", width, page, lang, over)
					}
					if lang == "zh-CN" {
						text, err := chromedp.Run(ctx, chromedp.Evaluate[string](visibleText))
						if err != nil {
							t.Fatal(err)
						}
						checkNoRawKeys(t, fmt.Sprintf("/console/%s (%d px)", page, width), text)
					}
					if shots {
						b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
						if err != nil {
							t.Fatal(err)
						}
						name := "console-" + strings.ReplaceAll(strings.Split(page, "/")[0], "/", "-") + "-" + map[string]string{"zh-CN": "zh", "en": "en"}[lang] + "-" + map[int]string{1280: "wide", 390: "phone"}[width] + ".png"
						if page == "log/0" {
							name = strings.Replace(name, "console-log-", "console-entry-", 1)
						}
						if page == fmt.Sprintf("log/%d", h.alert) {
							name = strings.Replace(name, "console-log-", "console-alert-", 1)
						}
						if who.role == policy.Reviewer {
							name = strings.Replace(name, "console-reviews-", "console-case-", 1)
						}
						saveShot(t, name, b)
					}
				}
			}
			run("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("key")))
		}
		cancel()
	}
}
