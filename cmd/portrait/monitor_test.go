package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/monitor"
)

const monitorCatalog = "../../monitor/testdata/catalog.yaml"

// TestMonitorCommand seeds a store through `portrait import` (the real
// ingest path) and `--derive`: loyal customers (the loyal label) are shown
// a boot at 125 and the others at 100. `portrait monitor` then reports the
// price gap (FP-1) as JSON and as HTML, and refuses an unknown format.
func TestMonitorCommand(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "p.db"), filepath.Join(dir, "p.key")
	os.Unsetenv("PORTRAIT_MASTER_KEY")
	now := time.Now().UTC().Truncate(time.Second)
	var views, prices strings.Builder
	views.WriteString("user,time,item,category\n")
	prices.WriteString("user,time,item,price,context\n")
	loyal := 0
	for i := range 30 {
		cat := "books"
		if i%3 == 0 {
			cat = "sports" // five sports views make the loyal label hold
			loyal++
		}
		for j := range 6 {
			fmt.Fprintf(&views, "u%d,%s,%s-%d,%s\n", i, now.Add(-time.Duration(j+2)*time.Hour).Format(time.RFC3339), cat, j, cat)
		}
		price := 100
		if i%3 == 0 {
			price = 125
		}
		fmt.Fprintf(&prices, "u%d,%s,boot,%d,web\n", i, now.Add(-time.Hour).Format(time.RFC3339), price)
	}
	vf, pf := filepath.Join(dir, "views.csv"), filepath.Join(dir, "prices.csv")
	os.WriteFile(vf, []byte(views.String()), 0o600)
	os.WriteFile(pf, []byte(prices.String()), 0o600)
	for _, args := range [][]string{
		{"import", "--db", db, "--catalog", monitorCatalog, "--key-file", key, "--file", vf, "--format", "csv", "--subject", "user", "--type", "view"},
		{"import", "--db", db, "--catalog", monitorCatalog, "--key-file", key, "--file", pf, "--format", "csv", "--subject", "user", "--type", "price_shown", "--derive"},
	} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
	}
	store := []string{"--db", db, "--catalog", monitorCatalog, "--key-file", key}

	var out, errb bytes.Buffer
	if code := Main(append([]string{"monitor", "--format", "json"}, store...), &out, &errb); code != 0 {
		t.Fatalf("monitor json: exit %d\n%s", code, errb.String())
	}
	var rep monitor.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("monitor json: %v\n%.2000s", err, out.String())
	}
	if rep.Subjects != 30 || !rep.Price.Declared || rep.Price.Scan == nil || rep.Price.Scan.Events != 30 {
		t.Fatalf("report: %d subjects, price section %+v", rep.Subjects, rep.Price)
	}
	// FP-1: the gap between the loyal and the other customers, 25 %.
	var price *monitor.Alert
	for i, a := range rep.Alerts {
		if a.Kind == "price" {
			price = &rep.Alerts[i]
		}
	}
	if price == nil || price.Requirement != "FP-1" || price.Value != 0.25 || !strings.HasPrefix(price.Scope, "item:boot/web@") || price.LogIndex == 0 {
		t.Errorf("price alert: %+v (loyal subjects %d)", price, loyal)
	}
	if rep.Fairness.Note == "" || rep.Recommenders.Note == "" {
		t.Errorf("empty sections say nothing: fairness %q, recommenders %q", rep.Fairness.Note, rep.Recommenders.Note)
	}

	html := filepath.Join(dir, "report.html")
	out.Reset()
	errb.Reset()
	if code := Main(append([]string{"monitor", "--format", "html", "--out", html}, store...), &out, &errb); code != 0 {
		t.Fatalf("monitor html: exit %d\n%s", code, errb.String())
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	// Chinese by default, English on request.
	if page := string(b); !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page, `lang="zh-CN"`) || !strings.Contains(page, "<svg") || strings.Contains(strings.ToLower(page), "<script") || !strings.Contains(page, "价格歧视（FP-1）") {
		t.Errorf("HTML report:\n%.2000s", page)
	}
	if code := Main(append([]string{"monitor", "--format", "html", "--lang", "en", "--out", html}, store...), &out, &errb); code != 0 {
		t.Fatalf("monitor html en: exit %d\n%s", code, errb.String())
	}
	if b, _ := os.ReadFile(html); !strings.Contains(string(b), "Price discrimination (FP-1)") || !strings.Contains(string(b), `lang="en"`) {
		t.Errorf("English HTML report:\n%.2000s", b)
	}
	if !strings.Contains(out.String(), "written to "+html) || !strings.Contains(out.String(), "30 subjects") {
		t.Errorf("html stdout: %q", out.String())
	}

	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{append([]string{"monitor", "--format", "xml"}, store...), 2, `--format "xml": want json or html`},
		{append([]string{"monitor", "--bogus"}, store...), 2, "flag provided but not defined"},
		{append([]string{"monitor", "--format", "html", "--lang", "fr"}, store...), 2, `--lang "fr": want zh-CN or en`},
		{[]string{"monitor", "--db", db, "--catalog", monitorCatalog, "--key-file", filepath.Join(dir, "none.key")}, 1, "none.key"},
	} {
		out.Reset()
		errb.Reset()
		if code := Main(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d mentioning %q", tc.args[:3], code, errb.String(), tc.code, tc.says)
		}
	}
}
