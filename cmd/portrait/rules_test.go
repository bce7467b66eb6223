package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/portrait-dev/portrait/rules"
)

func runMain(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// rules check explains every hit with the pack's rule id; the demo passes.
// LP-2, AD-6.
func TestRulesCheck(t *testing.T) {
	if code, out, errs := runMain("rules", "check", demoCatalog); code != 0 || !strings.Contains(out, "no rule of the pack is hit") {
		t.Fatalf("demo: code %d\n%s%s", code, out, errs)
	}
	for file, rule := range map[string]string{
		"../../catalog/testdata/badfaith/traditional.yaml": "LEX-SEXUAL-ORIENTATION",
		"../../catalog/testdata/badfaith/cv_minimal.yaml":  "TF-TERM-RECRUITMENT",
	} {
		code, out, _ := runMain("rules", "check", file)
		if code != 1 || !strings.Contains(out, "\trule "+rule+" — ") || !strings.Contains(out, "(rule "+rule+")") {
			t.Errorf("%s: code %d, want 1 explaining %s:\n%s", file, code, rule, out)
		}
	}
	if code, _, _ := runMain("rules", "check"); code != 2 {
		t.Errorf("no catalog: code %d, want 2", code)
	}
	if code, out, _ := runMain("rules", "show"); code != 0 || !strings.Contains(out, "portrait-default") {
		t.Errorf("show: %d %s", code, out)
	}
}

// --pack accepts only a pack signed by a trusted key: the company cannot
// edit the default pack or sign one of its own.
func TestPackFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("default.pack", rules.DefaultPack())
	if code, out, errs := runMain("catalog", "check", demoCatalog, "--pack", good); code != 0 {
		t.Fatalf("default pack by --pack: %d %s %s", code, out, errs)
	}
	// Lengthen the behaviour retention cap to let 100y pass: the signature breaks.
	edited := write("edited.pack", bytes.Replace(rules.DefaultPack(), []byte(`"max_days": 1095`), []byte(`"max_days": 99999`), 1))
	if code, _, errs := runMain("catalog", "check", demoCatalog, "--pack", edited); code != 1 || !strings.Contains(errs, "altered") {
		t.Errorf("edited pack: %d %s", code, errs)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "company")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := write("company.key", []byte(skey))
	code, signed, errs := runMain("rules", "sign", "--key", keyFile, edited)
	if code != 0 {
		t.Fatalf("sign: %d %s", code, errs)
	}
	own := write("own.pack", []byte(signed))
	if code, _, errs := runMain("rules", "check", "../../catalog/testdata/badfaith/retention_100y.yaml", "--pack", own); code != 1 || !strings.Contains(errs, "not signed by a trusted key") {
		t.Errorf("company-signed pack: %d %s", code, errs)
	}
	if code, _, _ := runMain("rules", "sign", "--key", good, edited); code != 1 {
		t.Errorf("signing with a non-key: %d, want 1", code)
	}
}

// A purpose switched from first-party to third-party advertising without
// a new notice version needs one; with it, the catalog may load (old
// consents stop counting). CN-3, CN-8.
func TestCatalogDiff(t *testing.T) {
	demo, err := os.ReadFile(demoCatalog)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("old.yaml", string(demo))
	third := strings.Replace(string(demo), "data_use: marketing.advertising.first_party.targeted", "data_use: marketing.advertising.third_party.targeted", 1)
	if third == string(demo) {
		t.Fatal("edit did not apply")
	}
	quiet := write("quiet.yaml", third)
	code, out, errs := runMain("catalog", "diff", old, quiet)
	if code != 1 || !strings.Contains(out, `purpose "marketing": data use marketing.advertising.first_party.targeted → marketing.advertising.third_party.targeted; needs a new notice_version`) || !strings.Contains(out, "[CN-3]") {
		t.Errorf("quiet switch: code %d, want 1\n%s%s", code, out, errs)
	}
	bumped := strings.Replace(third, "data_use: marketing.advertising.third_party.targeted\n    notice_version: \"1\"", "data_use: marketing.advertising.third_party.targeted\n    notice_version: \"2\"", 1)
	if bumped == third {
		t.Fatal("bump did not apply")
	}
	if code, out, errs := runMain("catalog", "diff", old, write("bumped.yaml", bumped)); code != 0 || !strings.Contains(out, "consents under 1 no longer count") {
		t.Errorf("with a new notice version: code %d, want 0\n%s%s", code, out, errs)
	}
	relabel := strings.Replace(string(demo), "'count(\"view\", \"30d\", \"category\", \"sports\") >= 5'", "'count(\"view\", \"30d\", \"category\", \"sports\") >= 2'", 1)
	if code, out, _ := runMain("catalog", "diff", old, write("relabel.yaml", relabel)); code != 1 || !strings.Contains(out, `label "sports_fan": changed; needs approval`) {
		t.Errorf("changed label: code %d, want 1\n%s", code, out)
	}
	// A new recipient under the same notice version is a new purpose too (CN-8).
	shared := strings.Replace(string(demo), "    separate_consent: true\n    assessment: PIA-2025-001", "    separate_consent: true\n    recipients: [partner-bank]\n    assessment: PIA-2025-001", 1)
	if code, out, _ := runMain("catalog", "diff", old, write("shared.yaml", shared)); code != 1 || !strings.Contains(out, `purpose "credit": recipients [] → [partner-bank]; needs a new notice_version`) {
		t.Errorf("new recipient: code %d, want 1\n%s", code, out)
	}
	if code, out, _ := runMain("catalog", "diff", old, old); code != 0 || !strings.Contains(out, "no changes") {
		t.Errorf("same catalog: %d %s", code, out)
	}
	if code, _, _ := runMain("catalog", "diff", old, write("broken.yaml", "purposes: [")); code != 2 {
		t.Errorf("parse error: code %d, want 2", code)
	}
	if code, _, _ := runMain("catalog", "diff", old); code != 2 {
		t.Errorf("usage: code %d, want 2", code)
	}
}
