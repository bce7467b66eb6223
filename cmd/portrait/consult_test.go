package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/rules"
)

// draftPack is the default pack's text with edit applied.
func draftPack(t *testing.T, edit func(map[string]any)) string {
	t.Helper()
	text := string(rules.DefaultPack())
	text = text[:strings.LastIndex(text, "\n\n")]
	var p map[string]any
	if err := json.Unmarshal([]byte(text), &p); err != nil {
		t.Fatal(err)
	}
	p["issuer"] = "监管机构 regulator.test"
	edit(p)
	b, _ := json.Marshal(p)
	return string(b)
}

// TestConsultation: the regulator drafts rule packs, simulates them
// against the catalogs two joined engines filed (real processes), opens
// one for public comment, records expert sign-offs from law, ethics and
// sociology, and publishes it; an engine restarted under a pack its
// catalog breaks refuses to start naming the pack's rule, and starts
// under one it meets.
func TestConsultation(t *testing.T) {
	reg := startRegulator(t)
	_, tokA := reg.enrol(t, "甲公司 A Co.")
	_, tokB := reg.enrol(t, "乙公司 B Co.")
	const admin = "company-admin-key"
	a := company{dsn: filepath.Join(t.TempDir(), "a.db"), master: masterKey(), origin: "a.example/portrait", token: tokA, reg: reg}
	b := company{dsn: filepath.Join(t.TempDir(), "b.db"), master: masterKey(), origin: "b.example/portrait", token: tokB, reg: reg}
	pa := a.serve(t, admin)
	b.serve(t, admin)

	strict := draftPack(t, func(p map[string]any) {
		p["id"], p["version"] = "regulator-strict", 2
		for _, c := range p["retention"].([]any) {
			if c.(map[string]any)["id"] == "RET-BEHAVIOR" {
				c.(map[string]any)["max_days"] = 30
			}
		}
	})
	fair := draftPack(t, func(p map[string]any) { p["id"], p["version"] = "regulator-2027", 3 })
	draft := func(title, pack string) string {
		var d struct{ ID, Status string }
		if code := reg.call(t, "POST", "/v1/packs", reg.admin, `{"title":"`+title+`","pack":`+pack+`}`, &d); code != 201 || d.Status != "draft" {
			t.Fatalf("draft %s: %d %+v", title, code, d)
		}
		return d.ID
	}
	sID, fID := draft("行为数据保存30天 behaviour kept 30 days", strict), draft("2027年规则 rules for 2027", fair)
	if code := reg.call(t, "POST", "/v1/packs", reg.admin, `{"title":"broken","pack":{"format":"nope"}}`, nil); code != 400 {
		t.Errorf("malformed draft: %d", code)
	}

	// PP-3: the worst case before publication — which companies would fail.
	simulate := func(id string) (fails int, msg string) {
		var out struct {
			Outcomes []struct {
				Filed bool `json:"catalog_filed"`
				Pass  bool
				Error string
			}
		}
		if code := reg.call(t, "POST", "/v1/packs/"+id+"/simulate", reg.admin, "", &out); code != 200 || len(out.Outcomes) != 2 {
			t.Fatalf("simulate: %d %+v", code, out)
		}
		for _, o := range out.Outcomes {
			if !o.Filed {
				t.Fatalf("catalog not filed: %+v", out)
			}
			if !o.Pass {
				fails, msg = fails+1, o.Error
			}
		}
		return fails, msg
	}
	if n, msg := simulate(sID); n != 2 || !strings.Contains(msg, "RET-BEHAVIOR") {
		t.Errorf("strict pack: %d fail, %q", n, msg)
	}
	if n, msg := simulate(fID); n != 0 {
		t.Errorf("fair pack: %d fail: %s", n, msg)
	}

	// PP-1, PP-2: no publication before public comment and sign-off by
	// law, ethics and sociology; the comments are published with the pack.
	consult := func(id string, disciplines ...string) {
		t.Helper()
		if code := reg.call(t, "POST", "/v1/packs/"+id+"/publish", reg.admin, "", nil); code != 409 {
			t.Errorf("published a draft never consulted on: %d", code)
		}
		if code := reg.call(t, "POST", "/v1/packs/"+id+"/comments", "", `{"name":"王女士","text":"too early"}`, nil); code != 409 {
			t.Errorf("comment before the consultation opened: %d", code)
		}
		if code := reg.call(t, "POST", "/v1/packs/"+id+"/open", reg.admin, "", nil); code != 200 {
			t.Fatalf("open: %d", code)
		}
		if code := reg.call(t, "POST", "/v1/packs/"+id+"/comments", "", `{"name":"王女士 Ms Wang","text":"保存期限应更短 keep it shorter"}`, nil); code != 201 {
			t.Fatalf("comment: %d", code)
		}
		for i, d := range disciplines {
			if i == len(disciplines)-1 {
				if code := reg.call(t, "POST", "/v1/packs/"+id+"/publish", reg.admin, "", nil); code != 409 {
					t.Errorf("published without a sign-off in %s: %d", d, code)
				}
			}
			body := `{"expert":"expert ` + d + `","discipline":"` + d + `","statement":"同意 agreed"}`
			if code := reg.call(t, "POST", "/v1/packs/"+id+"/signoffs", reg.admin, body, nil); code != 201 {
				t.Fatalf("sign-off %s: %d", d, code)
			}
		}
		var pub struct {
			Status   string
			Comments []struct{ Name, Text string }
			Signoffs []struct{ Expert, Discipline string }
			Log      []int64
		}
		if code := reg.call(t, "POST", "/v1/packs/"+id+"/publish", reg.admin, "", &pub); code != 200 || pub.Status != "published" {
			t.Fatalf("publish: %d %+v", code, pub)
		}
		// Comments are published; every step is in the regulator's log.
		reg.call(t, "GET", "/v1/packs/"+id, "", "", &pub)
		if len(pub.Comments) != 1 || pub.Comments[0].Name != "王女士 Ms Wang" || len(pub.Signoffs) != len(disciplines) || len(pub.Log) != 4+len(disciplines) {
			t.Errorf("consultation record: %+v", pub)
		}
	}
	consult(sID, "law", "ethics", "sociology")

	// SG-6: restarted under the regulator's strict pack, A refuses to
	// start, naming the rule.
	pa.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "serve", "--addr", freeAddr(t), "--db", a.dsn, "--catalog", "../../examples/demo/catalog.yaml",
		"--origin", a.origin, "--regulator", reg.url, "--regulator-key", reg.witnessKey, "--monitor-every", "0")
	cmd.Env = append(cmd.Environ(), keys.EnvVar+"="+a.master, "PORTRAIT_ADMIN_KEY="+admin, "PORTRAIT_REGULATOR_TOKEN="+a.token)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "RET-BEHAVIOR") {
		t.Fatalf("A started under a pack its catalog breaks (%v):\n%s", err, out)
	}

	// Under the fair pack, published after its own consultation, A starts.
	consult(fID, "technology", "law", "sociology", "ethics")
	var cur struct{ Draft string }
	reg.call(t, "GET", "/v1/packs/current", "", "", &cur)
	if cur.Draft != fID {
		t.Fatalf("pack in force %q, want %s", cur.Draft, fID)
	}
	a.serve(t, admin)
}
