package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/storetest"
)

// publishPack drafts pack at reg, consults on it, has law, ethics and
// sociology sign off and publishes it.
func publishPack(t *testing.T, reg *regulatorNode, title, pack string) {
	t.Helper()
	var d struct{ ID string }
	if code := reg.call(t, "POST", "/v1/packs", reg.admin, `{"title":"`+title+`","pack":`+pack+`}`, &d); code != 201 {
		t.Fatalf("draft: %d", code)
	}
	if code := reg.call(t, "POST", "/v1/packs/"+d.ID+"/open", reg.admin, "", nil); code != 200 {
		t.Fatalf("open: %d", code)
	}
	for _, disc := range []string{"law", "ethics", "sociology"} {
		if code := reg.call(t, "POST", "/v1/packs/"+d.ID+"/signoffs", reg.admin, `{"expert":"expert `+disc+`","discipline":"`+disc+`","statement":"同意"}`, nil); code != 201 {
			t.Fatalf("sign-off: %d", code)
		}
	}
	if code := reg.call(t, "POST", "/v1/packs/"+d.ID+"/publish", reg.admin, "", nil); code != 200 {
		t.Fatalf("publish: %d", code)
	}
}

// TestPackPublishedWhileRunning runs a regulator and a joined company as
// real processes (the company on PostgreSQL when PORTRAIT_TEST_POSTGRES
// is set). The regulator publishes a rule pack while the engine runs: the
// engine learns of it on its poll, keeps a verified copy in its log and
// stops its high tier until a restart applies it (SG-5, SG-6). Restarted
// while the regulator is down, the engine checks its catalog against that
// copy — the regulator's pack in force, not the embedded default — and,
// once the regulator answers with the same pack, resumes the high tier.
func TestPackPublishedWhileRunning(t *testing.T) {
	reg := startRegulator(t)
	_, tok := reg.enrol(t, "己公司 F Co.")
	dir := t.TempDir()
	c := company{master: masterKey(), origin: "f.example/portrait", token: tok, reg: reg,
		extra: []string{"--assessments", filepath.Join(dir, "assessments")}}
	if os.Getenv(storetest.EnvPostgres) != "" {
		c.dsn = storetest.PostgresDatabase(t)
	} else {
		c.dsn = filepath.Join(dir, "f.db")
	}
	const admin = "company-admin-key"
	p := c.serve(t, admin)
	readyForCredit(t, p, admin)
	decide := func(p *proc) (int, string) {
		var prob struct{ Requirement string }
		code := p.call(t, "POST", "/v1/decisions", admin, `{"usecase":"credit_limit","subject":"zoe"}`, &prob)
		return code, prob.Requirement
	}
	waitDecide := func(p *proc, want int, what string) {
		t.Helper()
		waitFor(t, 20*time.Second, what, func() bool { code, _ := decide(p); return code == want })
	}
	if code, req := decide(p); code != 201 {
		t.Fatalf("high-tier decision before any pack: %d %s", code, req)
	}

	publishPack(t, reg, "2027年规则 rules for 2027", draftPack(t, func(m map[string]any) { m["id"], m["version"] = "regulator-2027", 3 }))
	waitDecide(p, 403, "the high tier stopped after the regulator published a pack")
	if code, req := decide(p); req != "SG-5" {
		t.Errorf("high tier under a superseded pack: %d %s, want SG-5", code, req)
	}
	if !strings.Contains(p.stderr.String(), "regulator-2027 v3") || !strings.Contains(p.stderr.String(), "restart to apply it") {
		t.Errorf("the engine does not say why the high tier stopped:\n%s", p.stderr.String())
	}
	if code := p.call(t, "GET", "/v1/recommendations?subject=zoe&usecase=home_feed&n=3", admin, "", nil); code != 200 {
		t.Errorf("minimal tier under a superseded pack: %d", code)
	}

	// Offline restart: the store's verified copy of the regulator's pack.
	p.stop()
	reg.stop()
	p = c.serve(t, admin)
	if !strings.Contains(p.stderr.String(), "copy of the regulator's rule pack") || !strings.Contains(p.stderr.String(), "regulator-2027 v3") {
		t.Errorf("offline restart did not use the copy of the regulator's pack:\n%s", p.stderr.String())
	}
	if code, req := decide(p); code != 403 || req != "SG-5" {
		t.Errorf("high tier while the regulator is down: %d %s", code, req)
	}
	// The regulator answers with the same pack in force: the high tier resumes.
	reg.restart(t)
	waitDecide(p, 201, "the high tier resumed once the regulator answered with the pack the engine used")
}
