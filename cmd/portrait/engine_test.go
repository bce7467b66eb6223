package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

const demoCatalog = "../../examples/demo/catalog.yaml"

// TestImportThenDerive runs `portrait import` on a CSV with a bad row,
// grants consent to some subjects, then runs `portrait derive`.
func TestImportThenDerive(t *testing.T) {
	dir := t.TempDir()
	db, key, csvPath := filepath.Join(dir, "p.db"), filepath.Join(dir, "p.key"), filepath.Join(dir, "views.csv")
	t.Setenv("PORTRAIT_MASTER_KEY", "")
	os.Unsetenv("PORTRAIT_MASTER_KEY")
	var b strings.Builder
	b.WriteString("user,type,time,item,category,cost\n")
	now := time.Now().UTC()
	for i := range 40 {
		fmt.Fprintf(&b, "u%d,view,%s,item-%d,sports,%d\n", i%8, now.Add(-time.Duration(i+1)*time.Hour).Format(time.RFC3339), i, 10+i)
	}
	b.WriteString("u1,view,not-a-time,x,sports,1\n")
	os.WriteFile(csvPath, []byte(b.String()), 0o644)
	var out, errb bytes.Buffer
	args := []string{"import", "--db", db, "--catalog", demoCatalog, "--key-file", key, "--file", csvPath, "--format", "csv",
		"--subject", "user", "--map", "item=item,category=category,cost=price"}
	if code := Main(args, &out, &errb); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "rows 41: accepted 40") || !strings.Contains(out.String(), "line 42: field time: invalid_time") {
		t.Errorf("import output:\n%s", out.String())
	}

	// Consent for four of the eight subjects.
	ctx := context.Background()
	cat, err := catalog.Load(demoCatalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := loadKeys(key, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, cat, store, kr, slog.New(slog.NewTextHandler(io.Discard, nil)), options{Assessments: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := a.ledger.Record(ctx, policy.Caller{Role: policy.Operator, ID: "t"}, consent.ByID(fmt.Sprintf("u%d", i)),
			consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()

	out.Reset()
	errb.Reset()
	if code := Main([]string{"derive", "--db", db, "--catalog", demoCatalog, "--key-file", key}, &out, &errb); code != 0 {
		t.Fatalf("derive: exit %d\n%s%s", code, out.String(), errb.String())
	}
	// 4 subjects × (sports_fan, big_spender, rfm, shopper_segment).
	if !strings.Contains(out.String(), "subjects 8, events 20, labels written 16") || !strings.Contains(errb.String(), "100%") {
		t.Errorf("derive output:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
}

func TestEngineCommandErrors(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "p.db"), filepath.Join(dir, "p.key")
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"import", "--db", db, "--catalog", demoCatalog, "--key-file", key}, 2, "--file and --format are required"},
		{[]string{"import", "--db", db, "--catalog", demoCatalog, "--key-file", key, "--file", "nosuch.csv", "--format", "csv"}, 1, "nosuch.csv"},
		{[]string{"import", "--db", db, "--catalog", demoCatalog, "--key-file", key, "--file", demoCatalog, "--format", "xlsx"}, 1, `format "xlsx"`},
		{[]string{"derive", "--db", db, "--catalog", demoCatalog, "--key-file", filepath.Join(dir, "none.key")}, 1, "none.key"},
		{[]string{"train", "--db", db, "--catalog", demoCatalog, "--key-file", key, "--label", "sports_fan", "--outcome", "big_spender", "--out", filepath.Join(dir, "c.yaml")}, 1, "not a declared score label"},
		{[]string{"train", "--label", "credit_score"}, 2, "are required"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tc.args, code, errb.String(), tc.code, tc.says)
		}
	}
}
