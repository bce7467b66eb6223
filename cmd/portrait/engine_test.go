package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
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
	// A rejected row fails the import (exit 1) after the summary; the
	// accepted rows are stored.
	if code := Main(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "1 of 41 rows rejected") {
		t.Fatalf("import with a rejected row: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "rows 41: accepted 40") || !strings.Contains(out.String(), "line 42: field time: invalid_time") {
		t.Errorf("import output:\n%s", out.String())
	}
	// Not a terminal: no progress bar in the output.
	if strings.Contains(errb.String(), "\r") {
		t.Errorf("progress bar drawn off a terminal: %q", errb.String())
	}
	// --allow-rejects opts out; --json prints the summary as JSON.
	out.Reset()
	errb.Reset()
	if code := Main(append(args, "--allow-rejects", "--json"), &out, &errb); code != 0 {
		t.Fatalf("import --allow-rejects: exit %d\n%s%s", code, out.String(), errb.String())
	}
	var rep struct {
		Import struct {
			Rows, Duplicates, Rejected int
			Errors                     []struct{ Line int }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Import.Rows != 41 || rep.Import.Duplicates != 40 || rep.Import.Rejected != 1 || len(rep.Import.Errors) != 1 {
		t.Errorf("import --json: %v %+v\n%s", err, rep, out.String())
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
	if !strings.Contains(out.String(), "subjects 8, events 20, labels written 16") || strings.Contains(errb.String(), "%") {
		t.Errorf("derive output:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	out.Reset()
	if code := Main([]string{"derive", "--json", "--db", db, "--catalog", demoCatalog, "--key-file", key}, &out, &errb); code != 0 {
		t.Fatalf("derive --json: exit %d\n%s%s", code, out.String(), errb.String())
	}
	var sum struct{ Subjects, Events int }
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || sum.Subjects != 8 || sum.Events != 20 {
		t.Errorf("derive --json: %v %s", err, out.String())
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

// trainCatalog writes the demo catalog with a declared repayment outcome:
// a profile field repaid (credit only) and a rule label repaid_on_time
// reading it, the outcome `portrait train` fits credit_score to.
func trainCatalog(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(demoCatalog)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, r := range [][2]string{
		{"  - name: gender\n", `  - name: repaid
    type: bool
    profile: true
    category: user.financial
    ground: "PIPL Art. 29 separate consent to purpose credit"
    purposes: [credit]
    retention: 3y
  - name: gender
`},
		{"    fields: [age, city, income]\n", "    fields: [age, city, income, repaid]\n"},
		{"\nuse_cases:\n", `  - id: repaid_on_time
    kind: rule
    name: {zh-CN: 按时还款, en: Repaid on time}
    description:
      zh-CN: 上一笔信贷按时还款
      en: Repaid the last credit on time
    rule: 'repaid'
    inputs: [repaid]
    purposes: [credit]
    version: 1
    owner: risk-models

use_cases:
`},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("demo catalog lacks %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTrain fits credit_score with `portrait train` on profile values
// stored through `portrait import` (the governed ingest path) for subjects
// with separate consent to credit, after `portrait derive` computed their
// outcome label. Repayment is drawn from a known logistic model in which
// income helps and age does not matter, so the fitted income weight must
// be positive and dominate; the written catalog must load with version 2.
// Subjects without credit consent are not used (SM-2).
func TestTrain(t *testing.T) {
	dir := t.TempDir()
	db, key, catPath, csvPath, out := filepath.Join(dir, "p.db"), filepath.Join(dir, "p.key"), filepath.Join(dir, "catalog.yaml"),
		filepath.Join(dir, "profile.csv"), filepath.Join(dir, "trained.yaml")
	os.Unsetenv("PORTRAIT_MASTER_KEY")
	trainCatalog(t, catPath)
	ctx := context.Background()
	cat, err := catalog.Load(catPath, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	kr, err := loadKeys(key, true, discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, cat, store, kr, discard, options{Assessments: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	const n, consenting = 240, 200
	for i := range consenting {
		if _, err := a.ledger.Record(ctx, policy.Caller{Role: policy.Operator, ID: "t"}, consent.ByID(fmt.Sprintf("c%d", i)),
			consent.Change{Purpose: "credit", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("subject,time,income,age,repaid\n")
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	for i := range n {
		income := 1000 + rng.Float64()*9000
		age := 20 + rng.Float64()*50
		p := 1 / (1 + math.Exp(-(income-5500)/1500))
		fmt.Fprintf(&b, "c%d,%s,%.0f,%.0f,%t\n", i, at, income, age, rng.Float64() < p)
	}
	os.WriteFile(csvPath, []byte(b.String()), 0o644)
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args = append(args, "--db", db, "--catalog", catPath, "--key-file", key)
		if code := Main(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	if got := run("import", "--file", csvPath, "--format", "csv", "--type", "profile"); !strings.Contains(got, fmt.Sprintf("accepted %d", n)) {
		t.Fatalf("import: %s", got)
	}
	run("derive")
	got := run("train", "--label", "credit_score", "--outcome", "repaid_on_time", "--out", out)
	if !strings.Contains(got, fmt.Sprintf("version 2 fitted on %d subjects", consenting)) {
		t.Errorf("train output %q: want version 2 fitted on the %d consenting subjects", got, consenting)
	}
	trained, err := catalog.Load(out, label.Check)
	if err != nil {
		t.Fatalf("the trained catalog does not load: %v", err)
	}
	l := trained.Label("credit_score")
	if l == nil || l.Version != 2 || l.Model == nil {
		t.Fatalf("trained credit_score %+v: want version 2 with a model", l)
	}
	w := l.Model.Weights
	// Per 1,000 of income the true log-odds rise by 0.67 and per 10 years
	// of age by 0; the fit must recover the sign and the ranking.
	if w["income"] <= 0 || 1000*w["income"] < 10*math.Abs(w["age"]) || math.IsNaN(l.Model.Intercept) {
		t.Errorf("weights %v intercept %v: want a positive income weight dominating age", w, l.Model.Intercept)
	}
	if orig := cat.Label("repaid_on_time"); trained.Label("repaid_on_time").Version != orig.Version {
		t.Error("train changed another label's version")
	}
}
