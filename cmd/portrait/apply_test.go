package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/keys"
)

// TestAssessAndItems: `portrait assess` writes a signed assessment that
// verifies with the installation's key (FA-1, AD-5); `portrait items
// import` stores an item file and refuses a malformed one.
func TestAssessAndItems(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "portrait.key")
	kr, err := keys.Generate(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTRAIT_MASTER_KEY", "")
	os.Unsetenv("PORTRAIT_MASTER_KEY")
	common := []string{"--db", filepath.Join(dir, "p.db"), "--catalog", "../../apply/testdata/catalog.yaml", "--key-file", keyFile}
	var out, errb bytes.Buffer
	answers := filepath.Join(dir, "answers.json")
	if err := os.WriteFile(answers, demo.Assessment, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"assess", "--usecase", "credit_limit", "--assessments", filepath.Join(dir, "as"), "--answers", answers}, common...)
	if code := Main(args, &out, &errb); code != 0 {
		t.Fatalf("assess: %d %s", code, errb.String())
	}
	var a apply.Assessment
	if err := json.Unmarshal(out.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if a.UseCase != "credit_limit" || a.Model == nil {
		t.Errorf("assessment %+v", a)
	}
	list, err := apply.LoadAssessments(filepath.Join(dir, "as"), kr.ReceiptKey().Public().(ed25519.PublicKey))
	if err != nil || len(list) != 1 {
		t.Fatalf("load: %v %d", err, len(list))
	}
	if code := Main([]string{"assess"}, &out, &errb); code != 2 {
		t.Errorf("assess without --usecase: exit %d", code)
	}

	good := filepath.Join(dir, "items.json")
	os.WriteFile(good, []byte(`[{"id":"a","categories":["books"],"price":3},{"id":"b","categories":["toys"],"price":5}]`), 0o600)
	out.Reset()
	t.Setenv("PORTRAIT_ASSESSMENTS", filepath.Join(dir, "as"))
	if code := Main(append([]string{"items", "import", good}, common...), &out, &errb); code != 0 || !strings.Contains(out.String(), "2 items stored") {
		t.Fatalf("items import: %d %q %s", code, out.String(), errb.String())
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"id":"c","price":3}]`), 0o600)
	errb.Reset()
	if code := Main(append([]string{"items", "import", bad}, common...), &out, &errb); code != 1 || !strings.Contains(errb.String(), "no categories") {
		t.Fatalf("bad items: %d %s", code, errb.String())
	}
}
