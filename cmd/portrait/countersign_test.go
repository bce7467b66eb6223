package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/storetest"
)

// TestCountersignature runs a regulator and a joined company as real
// processes (the company on PostgreSQL when PORTRAIT_TEST_POSTGRES is set,
// else SQLite). A changed high-tier use-case, approved at the company by
// a named person other than its author, stays held until the regulator
// countersigns: the engine asks, the regulator verifies the ask against
// its mirror (a forged approval index or altered Art. 56 answers are
// refused), an inspector sees the change in Chinese, the author, the
// approver's judgement and the Art. 56 answers on the console and
// countersigns there, and the engine verifies the signed decision and
// makes the use-case live (SG-7, FA-1).
func TestCountersignature(t *testing.T) {
	reg := startRegulator(t)
	id, tok := reg.enrol(t, "丁公司 D Co.")
	var insp struct{ Key string }
	if code := reg.call(t, "POST", "/v1/staff", reg.admin, `{"name":"supervision/qian.li","role":"inspector"}`, &insp); code != 201 {
		t.Fatalf("inspector key: %d", code)
	}
	dir := t.TempDir()
	c := company{master: masterKey(), origin: "d.example/portrait", token: tok, reg: reg,
		extra: []string{"--assessments", filepath.Join(dir, "assessments")}}
	if os.Getenv(storetest.EnvPostgres) != "" {
		c.dsn = storetest.PostgresDatabase(t)
	} else {
		c.dsn = filepath.Join(dir, "d.db")
	}
	const admin = "company-admin-key"
	p := c.serve(t, admin)
	p.stop()

	// risk/alice restarts the engine with credit_limit (high tier) changed.
	changed := filepath.Join(dir, "catalog.yaml")
	src := strings.Replace(string(demo.Catalog), "en: Automated consumer-credit limit decisions", "en: Automated consumer-credit limit decisions, reviewed monthly", 1)
	if src == string(demo.Catalog) {
		t.Fatal("the demo catalog's credit_limit description moved; update the test")
	}
	if err := os.WriteFile(changed, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c.extra = append(c.extra, "--catalog", changed, "--operator", "risk/alice")
	p = c.serve(t, admin)
	if code := p.call(t, "POST", "/v1/usecases/credit_limit/assessment", admin, string(demo.Assessment), nil); code != 201 {
		t.Fatalf("assessment: %d", code)
	}
	var bob struct{ Key string }
	if code := p.call(t, "POST", "/v1/keys", admin, `{"role":"reviewer","name":"risk/bob","expires_in":"1h"}`, &bob); code != 201 {
		t.Fatalf("reviewer key: %d", code)
	}
	var list struct {
		Changes []oversight.ChangeRequest
		Held    map[string]int64
	}
	p.call(t, "GET", "/v1/catalog/changes", admin, "", &list)
	if len(list.Changes) != 1 || len(list.Changes[0].Countersign) != 1 {
		t.Fatalf("change requests: %+v", list)
	}
	req := list.Changes[0].Index
	judgement := `{"data": "额度决策只读收入和年龄，均为必要字段", "algorithm": "评分卡未变，仅说明文字增加复核周期"}`
	var cr oversight.ChangeRequest
	if code := p.call(t, "POST", fmt.Sprintf("/v1/catalog/changes/%d/approve", req), bob.Key, judgement, &cr); code != 200 || cr.Status != oversight.StatusCountersign {
		t.Fatalf("approve: %d %+v", code, cr)
	}
	held := func() bool {
		list.Held = nil
		p.call(t, "GET", "/v1/catalog/changes", admin, "", &list)
		_, ok := list.Held["use_case:credit_limit"]
		return ok
	}
	if !held() {
		t.Fatal("an approved high-tier change went live without the regulator's countersignature")
	}

	// The engine's poll asks; the regulator lists it once the entries are witnessed.
	var reviews struct{ Requests []regulator.Review }
	waitFor(t, 20*time.Second, "the countersignature request at the regulator", func() bool {
		reg.call(t, "GET", "/v1/countersignatures", insp.Key, "", &reviews)
		return len(reviews.Requests) == 1
	})
	rv := reviews.Requests[0]
	if rv.Company != id || rv.Request != req || rv.Author != "risk/alice" || rv.Approver != "risk/bob" || rv.Status != regulator.CSPending ||
		rv.Answers["credit_limit"].Risks == "" || len(rv.Answers["credit_limit"].SignedBy) < 2 {
		t.Fatalf("review at the regulator: %+v", rv)
	}

	// Nothing unverified is trusted: asks naming other entries, or with
	// answers other than those signed, are refused; staff routes refuse the
	// company, and the company's routes refuse the public.
	ans, _ := json.Marshal(rv.Ask.Assessments[0].Answers)
	var a56 map[string]any
	json.Unmarshal(ans, &a56)
	a56["risks"] = "无风险 no risk at all"
	forgedAns, _ := json.Marshal(a56)
	for name, body := range map[string]string{
		"approval index is the request": fmt.Sprintf(`{"request":%d,"approval":%d,"assessments":[{"use_case":"credit_limit","log_index":%d,"answers":%s}]}`, req, req, rv.Ask.Assessments[0].Index, ans),
		"assessment index wrong":        fmt.Sprintf(`{"request":%d,"approval":%d,"assessments":[{"use_case":"credit_limit","log_index":%d,"answers":%s}]}`, req, rv.Ask.Approval, req, ans),
		"answers edited":                fmt.Sprintf(`{"request":%d,"approval":%d,"assessments":[{"use_case":"credit_limit","log_index":%d,"answers":%s}]}`, req, rv.Ask.Approval, rv.Ask.Assessments[0].Index, forgedAns),
		"not witnessed":                 fmt.Sprintf(`{"request":%d,"approval":%d,"assessments":[]}`, req, 1<<40),
	} {
		var prob struct{ Requirement string }
		code := reg.call(t, "POST", "/v1/mirror/countersignatures", tok, body, &prob)
		if (code != 400 && code != 409) || prob.Requirement != "SG-7" {
			t.Errorf("%s: %d %+v", name, code, prob)
		}
	}
	if code := reg.call(t, "POST", "/v1/countersignatures/"+rv.ID+"/countersign", tok, `{"note":""}`, nil); code != 401 && code != 403 {
		t.Errorf("a company countersigned its own request: %d", code)
	}
	if code := reg.call(t, "GET", "/v1/mirror/countersignatures", "", "", nil); code != 401 {
		t.Errorf("decisions without the enrolment token: %d", code)
	}

	// The inspector reads and countersigns on the console.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.PostForm(reg.url+"/console/signin", url.Values{"key": {insp.Key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page := getPage(t, hc, reg.url+"/console/countersignatures")
	for _, want := range []string{`id="cs-` + rv.ID + `"`, "应用场景「信用额度」：定义已修改", "risk/alice", "risk/bob", "评分卡未变", "第五十六条", string([]rune(demo.Answers().Risks)[:6])} {
		if !strings.Contains(page, want) {
			t.Errorf("countersignature page lacks %q", want)
		}
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	resp, err = hc.PostForm(reg.url+"/console/countersignatures/"+rv.ID, url.Values{"csrf": {csrf[1]}, "decision": {"countersign"}, "note": {"同意：复核周期写明"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("countersign on the console: %d", resp.StatusCode)
	}
	if code := reg.call(t, "POST", "/v1/countersignatures/"+rv.ID+"/refuse", insp.Key, `{"note":"太晚了"}`, nil); code != 409 {
		t.Errorf("a decided request was decided again: %d", code)
	}

	// The engine fetches the decision, verifies it and makes the use-case live.
	waitFor(t, 20*time.Second, "credit_limit live after the countersignature", func() bool { return !held() })
	if list.Changes[0].Status != oversight.StatusApproved || list.Changes[0].Countersigned == nil || !strings.HasPrefix(list.Changes[0].Countersigned.By, "regulator:") {
		t.Errorf("after the countersignature: %+v", list.Changes[0])
	}
}

func getPage(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d\n%s", u, resp.StatusCode, b.String())
	}
	return b.String()
}
