package regulator_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portrait-dev/portrait/browsertest"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/rules"
)

// seedScreens gives a supervised node something on every screen: two
// reports, a complaint, an order, two catalog versions and a draft under
// consultation with a comment.
func seedScreens(t *testing.T, f *fixture, co *company, receipt ed25519.PrivateKey) (complaint string) {
	t.Helper()
	for i := range 2 {
		rep := regulator.Supervision{Company: co.id, Sent: time.Now().UTC(), Noise: regulator.DefaultNoise,
			Noisy: map[string]int64{"subjects_with_requests": int64(5 + 3*i)}, Exact: map[string]int64{"breaches": 0},
			ImpactRatios: map[string]float64{"credit_decision": 0.9 - 0.1*float64(i)}, Alerts: map[string]int{"fairness": i}}
		s, _ := regulator.SignSupervision(rep, receipt)
		b, _ := json.Marshal(s)
		if code := f.call(t, "POST", "/v1/supervision", co.token, string(b), nil); code != 201 {
			t.Fatalf("report: %d", code)
		}
	}
	var rc regulator.ComplaintReceipt
	if code := f.call(t, "POST", "/v1/complaints", "", `{"company":"`+co.id+`","text":"价格歧视 price discrimination"}`, &rc); code != 201 {
		t.Fatalf("complaint: %d", code)
	}
	if code := f.call(t, "POST", "/v1/orders", f.admin, `{"company":"`+co.id+`","kind":"suspend","target":{"kind":"field","id":"income"},"reason":"监管调查 inquiry"}`, nil); code != 201 {
		t.Fatalf("order: %d", code)
	}
	for _, v := range []string{"version: 1\nfields: []\n", "version: 2\nfields: []\nlabels: []\n"} {
		req := strings.NewReader(v)
		if code := f.callBody(t, "POST", "/v1/mirror/catalog", co.token, req); code != 204 {
			t.Fatalf("catalog: %d", code)
		}
	}
	text := string(rules.DefaultPack())
	text = text[:strings.LastIndex(text, "\n\n")]
	var d struct{ ID string }
	body, _ := json.Marshal(map[string]any{"title": "2027年规则 rules for 2027", "pack": json.RawMessage(text)})
	if code := f.call(t, "POST", "/v1/packs", f.admin, string(body), &d); code != 201 {
		t.Fatalf("draft: %d", code)
	}
	f.call(t, "POST", "/v1/packs/"+d.ID+"/open", f.admin, "", nil)
	f.call(t, "POST", "/v1/packs/"+d.ID+"/comments", "", `{"name":"李先生","text":"请公开模拟结果"}`, nil)
	return rc.ID
}

// TestScreensBrowser opens the regulator's console and public portal in
// Chromium at 1280 and 390 px in both languages: nothing is wider than the
// screen and each page speaks its language. At 1280 px it also works
// them: a receivership issued on the order form waits for a second member
// of staff (four eyes), a complaint is closed from the console, and the
// public files a complaint, follows it and comments on a draft pack.
func TestScreensBrowser(t *testing.T) {
	browsertest.Require(t)
	db := engines[0].open(t)
	f, co, receipt := supervised(t, db)
	signer, vkey, err := regulator.PackSigner("regulator.test/rules", make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	f.node.Consult(signer, vkey, func(p *rules.Pack, name string, data []byte) error {
		_, err := catalog.ParseWith(p, name, data)
		return err
	})
	complaint := seedScreens(t, f, co, receipt)
	var second struct{ Key string }
	f.call(t, "POST", "/v1/staff", f.admin, `{"name":"supervision/zhao.lei","role":"regulator-admin"}`, &second)
	base := f.srv.URL

	for _, width := range []int{1280, 390} {
		ctx, cancel := browsertest.Open(t, width, 900, 120*time.Second)
		run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			if err := chromedp.Do(ctx, actions...); err != nil {
				t.Fatalf("%d px, %s: %v", width, step, err)
			}
		}
		text := func() string {
			s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("main").innerText`))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		check := func(page, lang string, want ...string) {
			t.Helper()
			over, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
			if err != nil {
				t.Fatal(err)
			}
			if over > 0 {
				t.Errorf("%d px, %s (%s): the page is %d px wider than the screen", width, page, lang, over)
			}
			got := text()
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("%d px, %s (%s): no %q on the page", width, page, lang, w)
				}
			}
		}
		words := map[string]map[string][]string{
			"zh-CN": {"console/": {"生效中的命令", "未结投诉"}, "console/companies/" + co.id: {"监督报告", "发出命令", "结案", "备案的目录版本"}, "console/packs": {"公众意见", "记录签署", "请公开模拟结果"},
				"public/": {"已见证条目", "生效中的命令", "监督报告"}, "public/packs": {"征求意见中", "提交意见"}, "public/complain": {"提交投诉", "查询进展"}},
			"en": {"console/": {"Orders in force", "Open complaints"}, "console/companies/" + co.id: {"Supervision reports", "Issue order", "Close", "Filed catalog versions"}, "console/packs": {"Public comments", "Record sign-off"},
				"public/": {"Witnessed entries", "Orders in force", "Supervision reports"}, "public/packs": {"open for comment", "Send comment"}, "public/complain": {"Send complaint", "Follow a complaint"}},
		}
		run("sign in", chromedp.Navigate(base+"/console/signin"), chromedp.WaitVisible(chromedp.ID("key")),
			chromedp.SendKeys(chromedp.ID("key"), f.admin), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("whoami")))
		for _, lang := range []string{"zh-CN", "en"} {
			for _, page := range []string{"console/", "console/companies/" + co.id, "console/packs", "public/", "public/packs", "public/complain"} {
				run(page, chromedp.Navigate(base+"/"+page+"?lang="+lang), chromedp.WaitVisible(chromedp.ID("main")))
				check(page, lang, words[lang][page]...)
				if page == "console/companies/"+co.id && !strings.Contains(text(), "+ labels: []") {
					// SG-1: each filed catalog is kept with its diff.
					t.Errorf("%d px: the company page does not show the catalog diff", width)
				}
			}
		}
		if width == 1280 {
			// Four eyes on the order form.
			run("receivership", chromedp.Navigate(base+"/console/companies/"+co.id+"?lang=en"), chromedp.WaitVisible(chromedp.ID("order-form")),
				chromedp.SetValue(chromedp.ID("kind"), "receivership"), chromedp.SetValue(chromedp.ID("target_kind"), "company"),
				chromedp.SendKeys(chromedp.ID("target_id"), co.id), chromedp.SendKeys(chromedp.ID("reason"), "自律失效 self-regulation failed"),
				chromedp.Click(chromedp.ID("issue")), chromedp.WaitVisible(chromedp.ID("flash")))
			orders, _ := f.node.Orders(context.Background(), co.id)
			pending := orders[len(orders)-1]
			if pending.Kind != "receivership" || pending.Status != "pending" {
				t.Fatalf("receivership from the form: %+v", pending)
			}
			run("own approval", chromedp.Click(chromedp.ID("approve-"+pending.ID)), chromedp.WaitVisible(chromedp.ID("error")))
			run("second staff", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("key")),
				chromedp.SendKeys(chromedp.ID("key"), second.Key), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("whoami")),
				chromedp.Navigate(base+"/console/companies/"+co.id), chromedp.WaitVisible(chromedp.ID("approve-"+pending.ID)),
				chromedp.Click(chromedp.ID("approve-"+pending.ID)), chromedp.WaitVisible(chromedp.ID("flash")))
			orders, _ = f.node.Orders(context.Background(), co.id)
			if o := orders[len(orders)-1]; o.Status != "issued" || o.ApprovedBy != "supervision/zhao.lei" {
				t.Errorf("after the second approval: %+v", o)
			}
			// Closing a complaint from the console.
			run("close complaint", chromedp.SendKeys(chromedp.ID("note-"+complaint), "已核实 verified"), chromedp.Click(chromedp.ID("close-"+complaint)),
				chromedp.WaitNotPresent(chromedp.ID("close-"+complaint)))
			cs, _ := f.node.Complaints(context.Background(), co.id)
			if cs[0].Status != "closed" || cs[0].Closing != "已核实 verified" {
				t.Errorf("complaint after the console closed it: %+v", cs[0])
			}
			// The public: a complaint, followed; a comment.
			run("public complaint", chromedp.Navigate(base+"/public/complain?lang=zh-CN"), chromedp.WaitVisible(chromedp.ID("complain-form")),
				chromedp.SendKeys(chromedp.ID("text"), "推荐让我上瘾 addictive recommendations"), chromedp.Click(chromedp.ID("send")), chromedp.WaitVisible(chromedp.ID("receipt")))
			rc := text()
			id := rc[strings.Index(rc, "cmp_"):]
			id = id[:strings.IndexAny(id, "\n ")]
			secret, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#receipt code").innerText`))
			if err != nil {
				t.Fatal(err)
			}
			run("follow", chromedp.SendKeys(chromedp.ID("fid"), id), chromedp.SendKeys(chromedp.ID("fsecret"), secret), chromedp.Click(chromedp.ID("follow")),
				chromedp.WaitVisible(chromedp.ID("followed")))
			if got := text(); !strings.Contains(got, "addictive recommendations") || !strings.Contains(got, "待企业答复") {
				t.Errorf("followed complaint:\n%s", got)
			}
			drafts, _ := f.node.Drafts(context.Background())
			run("comment", chromedp.Navigate(base+"/public/packs?lang=en"), chromedp.WaitVisible(chromedp.ID("ctext-"+drafts[0].ID)),
				chromedp.SendKeys(chromedp.ID("ctext-"+drafts[0].ID), "please publish the simulation"), chromedp.Click(chromedp.ID("comment-"+drafts[0].ID)),
				chromedp.WaitVisible(chromedp.ID("flash")))
			if d, _ := f.node.Draft(context.Background(), drafts[0].ID); len(d.Comments) != 2 {
				t.Errorf("comments after the form: %+v", d.Comments)
			}
		}
		cancel()
	}
}

func (f *fixture) callBody(t *testing.T, method, path, key string, body io.Reader) int {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestConsoleRefusals: the console needs a staff key, a company's token
// is not one, and a form posted without the session's CSRF token changes
// nothing; the public portal needs no login.
func TestConsoleRefusals(t *testing.T) {
	f, co, _ := supervised(t, engines[0].open(t))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, cookie string) *http.Response {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "regulator_session", Value: cookie})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("/console/", ""); r.StatusCode != 303 || r.Header.Get("Location") != "/console/signin" {
		t.Errorf("console without a session: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if r := get("/console/", co.token); r.StatusCode != 303 {
		t.Errorf("console with a company token: %d", r.StatusCode)
	}
	session := signIn(t, f, f.admin)
	if r := get("/console/", session); r.StatusCode != 200 {
		t.Errorf("console with the admin's session: %d", r.StatusCode)
	}
	if r := get("/public/", ""); r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("public portal: %d %q", r.StatusCode, r.Header.Get("Content-Security-Policy"))
	}
	form := url.Values{"kind": {"suspend"}, "target_kind": {"field"}, "target_id": {"income"}, "reason": {"forged"}}
	req, _ := http.NewRequest("POST", f.srv.URL+"/console/companies/"+co.id+"/orders", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "regulator_session", Value: session})
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("order form without the CSRF token: %d", resp.StatusCode)
	}
	if orders, _ := f.node.Orders(context.Background(), co.id); len(orders) != 0 {
		t.Errorf("a forged form issued an order: %+v", orders)
	}
}
