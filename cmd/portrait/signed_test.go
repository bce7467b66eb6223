package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// CN-2: a consent receipt verifies offline with the handler's public key
// alone, and any change to it is caught.
func TestCheckSigned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cat, err := catalog.Load(demoCatalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, filepath.Join(dir, "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	kr, err := loadKeys(filepath.Join(dir, "k.key"), true, logger)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, cat, store, kr, logger, options{Assessments: dir})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := a.ledger.Record(ctx, policy.Caller{Role: policy.Operator, ID: "t"}, consent.ByID("u1"),
		consent.Change{Purpose: "marketing", Status: policy.Granted, NoticeVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(rc)
	file := filepath.Join(dir, "receipt.json")
	os.WriteFile(file, data, 0o600)
	key := base64.StdEncoding.EncodeToString(kr.ReceiptKey().Public().(ed25519.PublicKey))

	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"check-signed"}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("--kind", "receipt", "--file", file, "--key", key); code != 0 || !strings.Contains(out, "valid consent receipt: marketing granted") {
		t.Errorf("genuine receipt: exit %d: %s", code, out)
	}
	os.WriteFile(file, bytes.Replace(data, []byte(`"granted"`), []byte(`"refused"`), 1), 0o600)
	if code, out := run("--kind", "receipt", "--file", file, "--key", key); code != 1 || !strings.Contains(out, "does not verify") {
		t.Errorf("tampered receipt: exit %d: %s", code, out)
	}
	if code, _ := run("--kind", "receipt", "--file", file, "--key", "not-a-key"); code != 1 {
		t.Errorf("bad key: exit %d", code)
	}
	if code, _ := run("--kind", "poem", "--file", file, "--key", key); code != 2 {
		t.Errorf("bad kind: exit %d", code)
	}

	// The erasure response exactly as POST …/erasure returns it (SR-3).
	er, err := a.rights.Erase(ctx, policy.Caller{Role: policy.Operator, ID: "t"}, kr.Pseudonym("u1"))
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := json.Marshal(er)
	os.WriteFile(file, resp, 0o600)
	if code, out := run("--kind", "erasure", "--file", file, "--key", key); code != 0 || !strings.Contains(out, "valid erasure receipt") {
		t.Errorf("erasure response as returned: exit %d: %s", code, out)
	}
	os.WriteFile(file, bytes.Replace(resp, []byte(`"log_index":`), []byte(`"log_index":1`), 1), 0o600)
	if code, out := run("--kind", "erasure", "--file", file, "--key", key); code != 1 {
		t.Errorf("tampered erasure response: exit %d: %s", code, out)
	}
}
