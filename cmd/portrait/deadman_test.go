package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/examples/demo"
)

// TestDeadmanSwitch runs a regulator and a joined company as real
// processes. The regulator orders a maximum silence of 2 s for the
// company's high tier; its process is then stopped. Past the silence the
// high-tier decision is refused citing SG-5 while the minimal-tier
// recommendation is still served and /healthz stays 200 and reports it;
// once the regulator is back, the high tier resumes.
func TestDeadmanSwitch(t *testing.T) {
	reg := startRegulator(t)
	id, tok := reg.enrol(t, "丙公司 C Co.")
	c := company{dsn: filepath.Join(t.TempDir(), "c.db"), master: masterKey(), origin: "c.example/portrait", token: tok, reg: reg,
		extra: []string{"--assessments", filepath.Join(t.TempDir(), "assessments")}}
	const admin = "company-admin-key"
	p := c.serve(t, admin)
	readyForCredit(t, p, admin)
	decide := func() (int, string) {
		var prob struct{ Requirement, Detail string }
		code := p.call(t, "POST", "/v1/decisions", admin, `{"usecase":"credit_limit","subject":"zoe"}`, &prob)
		if code != 201 && code != 403 {
			t.Logf("decision: %d %s", code, prob.Detail)
		}
		return code, prob.Requirement
	}
	recommend := func() int {
		return p.call(t, "GET", "/v1/recommendations?subject=zoe&usecase=home_feed&n=3", admin, "", nil)
	}
	health := func() (int, map[string]any) {
		resp, err := http.Get(p.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h struct{ Regulator map[string]any }
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatalf("healthz: %v", err)
		}
		return resp.StatusCode, h.Regulator
	}
	// waitDecide waits up to within for the decision to answer want.
	waitDecide := func(want int, within time.Duration) (int, string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			code, req := decide()
			if code == want || time.Now().After(deadline) {
				return code, req
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code, req := decide(); code != 201 {
		t.Fatalf("high-tier decision before any order: %d %s", code, req)
	}

	// Bad silences are refused.
	for _, body := range []string{
		`{"company":"` + id + `","kind":"max_silence","max_silence_seconds":-1,"reason":"x"}`,
		`{"company":"` + id + `","kind":"max_silence","max_silence_seconds":99999999,"reason":"x"}`,
		`{"company":"` + id + `","kind":"max_silence","max_silence_seconds":"2","reason":"x"}`,
		`{"company":"` + id + `","kind":"suspend","target":{"kind":"field","id":"income"},"max_silence_seconds":5,"reason":"x"}`,
	} {
		if code := reg.call(t, "POST", "/v1/orders", reg.admin, body, nil); code != 400 {
			t.Errorf("bad order %s: %d", body, code)
		}
	}
	var ord struct{ ID, Status string }
	if code := reg.call(t, "POST", "/v1/orders", reg.admin, `{"company":"`+id+`","kind":"max_silence","max_silence_seconds":2,"reason":"高风险用例需保持联络 high tier needs contact"}`, &ord); code != 201 || ord.Status != "issued" {
		t.Fatalf("max_silence order: %d %+v", code, ord)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, r := health(); r != nil && r["max_silence_seconds"] == 2.0 {
			break
		}
		if time.Now().After(deadline) {
			var list any
			reg.call(t, "GET", "/v1/companies/"+id+"/orders", reg.admin, "", &list)
			_, r := health()
			t.Fatalf("the engine does not apply the max_silence order within 10 s: healthz %v, orders %v", r, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// In contact, the high tier runs.
	time.Sleep(3 * time.Second)
	if code, req := decide(); code != 201 {
		t.Fatalf("high-tier decision in contact: %d %s", code, req)
	}

	// SG-5: out of contact past the silence, the high tier stops and the
	// minimal tier goes on; healthz stays 200 and says so.
	reg.stop()
	if code, req := waitDecide(403, 10*time.Second); code != 403 || req != "SG-5" {
		t.Fatalf("high-tier decision out of contact: %d %q, want 403 citing SG-5", code, req)
	}
	if code := recommend(); code != 200 {
		t.Errorf("minimal-tier recommendation out of contact: %d", code)
	}
	code, h := health()
	if code != 200 || h["high_tier_stopped"] != true {
		b, _ := json.Marshal(h)
		t.Errorf("healthz out of contact: %d %s", code, b)
	}

	// Contact returns: the high tier resumes.
	reg.restart(t)
	if code, req := waitDecide(201, 15*time.Second); code != 201 {
		t.Fatalf("high-tier decision after contact returned: %d %s", code, req)
	}
	if code, h := health(); code != 200 || h["high_tier_stopped"] != false {
		t.Errorf("healthz after contact returned: %d %v", code, h)
	}
}

// TestRegulatorDemo runs `portrait regulator demo` as a real process:
// it prints the regulator's and the company's URLs and keys, the company
// joined by enrolment and serves checkpoints the regulator
// cosigned (SG-2); on interrupt it stops and removes its directory.
func TestRegulatorDemo(t *testing.T) {
	p := start(t, "company 企业", nil, "regulator", "demo", "--addr", freeAddr(t), "--company-addr", freeAddr(t))
	// The ready line is `company 企业 "NAME" (ID): URL`.
	p.url = p.url[strings.LastIndex(p.url, " ")+1:]
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.stdout.String(), "Ctrl-C") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	var regURL, wkey, regAdmin, dir string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "regulator 监管节点: "); ok {
			regURL = v
		}
		if v, ok := strings.CutPrefix(l, "witness key 见证公钥: "); ok {
			wkey = v
		}
		if v, ok := strings.CutPrefix(l, "regulator admin key 监管管理员密钥: "); ok {
			regAdmin = v
		}
		if v, ok := strings.CutPrefix(l, "Ctrl-C stops both and removes "); ok {
			dir = v
		}
	}
	if regURL == "" || wkey == "" || regAdmin == "" || dir == "" {
		t.Fatalf("demo output lacks URLs or keys:\n%s", p.stdout.String())
	}
	// The company is enrolled and has filed its origin (re-filing on a
	// catalog change, is not shown here).
	var list struct{ Companies []struct{ ID, Origin string } }
	if code := (node{url: regURL}).call(t, "GET", "/v1/companies", regAdmin, "", &list); code != 200 || len(list.Companies) != 1 || list.Companies[0].Origin != "demo.example/portrait" {
		t.Fatalf("companies at the regulator: %d %+v", code, list)
	}
	// SG-2: the company's checkpoint carries the regulator's cosignature,
	// and portrait verify --witness-key accepts it.
	waitCosigned(t, p, wkey, 1, 15*time.Second)
	if out, err := exec.Command(binary(t), "verify", "--checkpoint", "", "--server", p.url, "--witness-key", wkey, "--regulator", regURL).CombinedOutput(); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	p.stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo left %s behind: %v", dir, err)
	}
}

// TestRestartWhileRegulatorDown: an engine that joined before and is
// restarted while its regulator is down starts rather than failing to
// join, with its high tier stopped — a refusal citing SG-5 — and its
// minimal tier serving, /healthz 200 saying so; the first answer from the
// regulator files, catches up and resumes the high tier. A first join
// with the regulator down still fails. Real processes.
func TestRestartWhileRegulatorDown(t *testing.T) {
	reg := startRegulator(t)
	_, tok := reg.enrol(t, "戊公司 E Co.")
	c := company{dsn: filepath.Join(t.TempDir(), "e.db"), master: masterKey(), origin: "e.example/portrait", token: tok, reg: reg,
		extra: []string{"--assessments", filepath.Join(t.TempDir(), "assessments")}}
	const admin = "company-admin-key"
	p := c.serve(t, admin)
	readyForCredit(t, p, admin)
	decide := func(p *proc) (int, string) {
		var prob struct{ Requirement string }
		code := p.call(t, "POST", "/v1/decisions", admin, `{"usecase":"credit_limit","subject":"zoe"}`, &prob)
		return code, prob.Requirement
	}
	if code, req := decide(p); code != 201 {
		t.Fatalf("high-tier decision while joined: %d %s", code, req)
	}
	before, err := audit.ParseCheckpoint(waitCosigned(t, p, reg.witnessKey, 1, 15*time.Second), string(p.get(t, "/v1/log/key")))
	if err != nil {
		t.Fatal(err)
	}
	p.stop()
	reg.stop()

	// A first join with the regulator down fails, with a clear message.
	out, err := exec.Command(binary(t), "serve", "--addr", freeAddr(t), "--db", filepath.Join(t.TempDir(), "new.db"), "--catalog", "../../examples/demo/catalog.yaml",
		"--origin", "new.example/portrait", "--regulator", reg.url, "--regulator-key", reg.witnessKey, "--regulator-token", tok, "--monitor-every", "0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "first join") {
		t.Errorf("first join with the regulator down: %v\n%s", err, out)
	}

	// SG-5: the restart starts, with the high tier stopped.
	p = c.serve(t, admin)
	if code, req := decide(p); code != 403 || req != "SG-5" {
		t.Fatalf("high-tier decision after a restart with the regulator down: %d %q, want 403 citing SG-5", code, req)
	}
	if code := p.call(t, "GET", "/v1/recommendations?subject=zoe&usecase=home_feed&n=3", admin, "", nil); code != 200 {
		t.Errorf("minimal-tier recommendation with the regulator down: %d", code)
	}
	resp, err := http.Get(p.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Regulator map[string]any }
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || h.Regulator["high_tier_stopped"] != true {
		t.Errorf("healthz with the regulator down: %d %v", resp.StatusCode, h.Regulator)
	}

	// The regulator answers: the high tier resumes.
	reg.restart(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, req := decide(p)
		if code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("high-tier decision after the regulator answered: %d %s", code, req)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Checkpoints are cosigned again.
	waitCosigned(t, p, reg.witnessKey, before.Size+1, 15*time.Second)
}

// readyForCredit makes zoe decidable by the high-tier use-case
// credit_limit on p: consents, a profile, the Art. 56 assessment and the
// pre-use notice.
func readyForCredit(t *testing.T, p *proc, admin string) {
	t.Helper()
	for _, purpose := range []string{"credit", "personalization"} {
		if code := p.call(t, "PUT", "/v1/subjects/zoe/consents/"+purpose, admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
			t.Fatalf("grant %s: %d", purpose, code)
		}
	}
	event := fmt.Sprintf(`[{"subject":"zoe","type":"profile","time":%q,"fields":{"age":35,"income":9000}}]`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	if code := p.call(t, "POST", "/v1/events", admin, event, nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if code := p.call(t, "POST", "/v1/usecases/credit_limit/assessment", admin, string(demo.Assessment), nil); code != 201 {
		t.Fatalf("assessment: %d", code)
	}
	if code := p.call(t, "POST", "/v1/subjects/zoe/usecases/credit_limit/notice", admin, "", nil); code != 201 {
		t.Fatalf("notice: %d", code)
	}
}
