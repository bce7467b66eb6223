package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/fairness"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files in testdata/")

// dataset returns the path of a real data set under PORTRAIT_DATASETS.
// COMPAS and Adult may not be copied into the project, so the tests that
// read them are opt-in; .ci/run points the variable at the shared folder.
func dataset(t *testing.T, rel string) string {
	t.Helper()
	dir := os.Getenv("PORTRAIT_DATASETS")
	if dir == "" {
		t.Skipf("opt-in: set PORTRAIT_DATASETS to the folder holding %s (.ci/run sets it)", rel)
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("PORTRAIT_DATASETS is set but %s is missing: %v", p, err)
	}
	return p
}

// jsonReport is the external JSON contract of `portrait fairness`, written
// out independently of the package's own types.
type jsonReport struct {
	N      int `json:"n"`
	Groups []struct {
		Name              string   `json:"name"`
		Attributes        []string `json:"attributes"`
		N                 int      `json:"n"`
		Selected          int      `json:"selected"`
		SelectionRate     float64  `json:"selection_rate"`
		ImpactRatio       *float64 `json:"impact_ratio"`
		Excluded          bool     `json:"excluded"`
		FalsePositiveRate *float64 `json:"false_positive_rate"`
		FalseNegativeRate *float64 `json:"false_negative_rate"`
	} `json:"groups"`
	Alerts []struct {
		Group       string  `json:"group"`
		Metric      string  `json:"metric"`
		Value       float64 `json:"value"`
		Threshold   float64 `json:"threshold"`
		Test        string  `json:"test"`
		PValue      float64 `json:"p_value"`
		Requirement string  `json:"requirement"`
		Message     string  `json:"message"`
	} `json:"alerts"`
	Excluded []struct {
		Group       string  `json:"group"`
		N           int     `json:"n"`
		Share       float64 `json:"share"`
		Requirement string  `json:"requirement"`
	} `json:"excluded"`
}

func runJSON(t *testing.T, args ...string) (jsonReport, []byte) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := fairnessCmd(append(args, "--format", "json"), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep jsonReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("unmarshal report: %v", err)
	}
	return rep, out.Bytes()
}

// tally is the independent count for one group, made with a plain loop over
// encoding/csv rows.
type tally struct{ n, sel, pos, tp, fp int }

func countCSV(t *testing.T, path string, groups []string, pred string, positive map[string]bool, outcome, outPos string, keep func(map[string]string) bool) (map[string]*tally, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	out := map[string]*tally{}
	total := 0
	for _, r := range recs[1:] {
		row := map[string]string{}
		for h, i := range col {
			row[h] = r[i]
		}
		if keep != nil && !keep(row) {
			continue
		}
		total++
		// Each attribute alone, and the intersection of all of them.
		var keys []string
		var vals []string
		for _, g := range groups {
			keys = append(keys, row[g])
			vals = append(vals, row[g])
		}
		if len(groups) > 1 {
			keys = append(keys, strings.Join(vals, " × "))
		}
		for _, k := range keys {
			c := out[k]
			if c == nil {
				c = &tally{}
				out[k] = c
			}
			c.n++
			sel := positive[row[pred]]
			if sel {
				c.sel++
			}
			if outcome != "" {
				if row[outcome] == outPos {
					c.pos++
					if sel {
						c.tp++
					}
				} else if sel {
					c.fp++
				}
			}
		}
	}
	return out, total
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// checkAgainst compares every group of rep named in want with the
// independent counts, including impact ratios against the highest rate among
// groups (of the same attribute set) holding at least 2 % of decisions.
func checkAgainst(t *testing.T, rep jsonReport, want map[string]*tally, total int, members map[string][]string, withOutcome bool) {
	t.Helper()
	byName := map[string]int{}
	for i, g := range rep.Groups {
		byName[g.Name] = i
	}
	if rep.N != total {
		t.Errorf("n = %d, independent count %d", rep.N, total)
	}
	for section, names := range members {
		best := -1.0
		for _, name := range names {
			w := want[name]
			if float64(w.n)/float64(total) >= fairness.DefaultMinShare {
				best = math.Max(best, float64(w.sel)/float64(w.n))
			}
		}
		for _, name := range names {
			w := want[name]
			i, ok := byName[name]
			if !ok {
				t.Errorf("%s: group %q missing from report", section, name)
				continue
			}
			g := rep.Groups[i]
			rate := float64(w.sel) / float64(w.n)
			if g.N != w.n || g.Selected != w.sel || !near(g.SelectionRate, rate) {
				t.Errorf("%s: n %d sel %d rate %v; independent %d %d %v", name, g.N, g.Selected, g.SelectionRate, w.n, w.sel, rate)
			}
			small := float64(w.n)/float64(total) < fairness.DefaultMinShare
			if g.Excluded != small {
				t.Errorf("%s: excluded %v, share %v", name, g.Excluded, float64(w.n)/float64(total))
			}
			if small {
				if g.ImpactRatio != nil {
					t.Errorf("%s: excluded group has impact ratio %v", name, *g.ImpactRatio)
				}
			} else if g.ImpactRatio == nil || !near(*g.ImpactRatio, rate/best) {
				t.Errorf("%s: impact ratio %v, independent %v", name, g.ImpactRatio, rate/best)
			}
			if withOutcome {
				fpr := float64(w.fp) / float64(w.n-w.pos)
				fnr := float64(w.pos-w.tp) / float64(w.pos)
				if g.FalsePositiveRate == nil || !near(*g.FalsePositiveRate, fpr) || g.FalseNegativeRate == nil || !near(*g.FalseNegativeRate, fnr) {
					t.Errorf("%s: FPR %v FNR %v; independent %v %v", name, g.FalsePositiveRate, g.FalseNegativeRate, fpr, fnr)
				}
			}
			// FP-4: an alert exactly for the compared groups under 0.8.
			alerted := false
			for _, a := range rep.Alerts {
				if a.Group == name {
					alerted = true
					if a.Requirement != "FP-4" || a.Metric != "impact_ratio" || a.Threshold != fairness.FourFifths || !near(a.Value, rate/best) ||
						(a.Test != fairness.TestFisher && a.Test != fairness.TestZ) || a.PValue < 0 || a.PValue > 1 || a.Message == "" {
						t.Errorf("alert for %s malformed: %+v", name, a)
					}
				}
			}
			if wantAlert := !small && rate/best < fairness.FourFifths; alerted != wantAlert {
				t.Errorf("%s: alert %v, want %v (impact ratio %v)", name, alerted, wantAlert, rate/best)
			}
		}
	}
}

func keysOf(m map[string]*tally, pred func(string) bool) []string {
	var out []string
	for k := range m {
		if pred(k) {
			out = append(out, k)
		}
	}
	return out
}

// FP-3, FP-4: COMPAS, every race group against an independent count.
func TestCOMPAS(t *testing.T) {
	path := dataset(t, "compas/compas-scores-two-years.csv")
	pos := map[string]bool{"Medium": true, "High": true}
	want, total := countCSV(t, path, []string{"race"}, "score_text", pos, "two_year_recid", "1", nil)
	rep, _ := runJSON(t, "--csv", path, "--group", "race", "--predicted", "score_text", "--positive", "Medium,High",
		"--outcome", "two_year_recid", "--outcome-positive", "1")
	checkAgainst(t, rep, want, total, map[string][]string{"race": keysOf(want, func(string) bool { return true })}, true)

	// Cross-check with the published article ("Machine Bias", 2016): Black
	// defendants who did not reoffend were labelled higher risk 44.85 % of
	// the time, white ones 23.45 %; those figures match this unfiltered file.
	for _, g := range rep.Groups {
		switch g.Name {
		case "African-American":
			if math.Abs(*g.FalsePositiveRate-0.4485) > 0.0005 {
				t.Errorf("FPR African-American %v, ProPublica 0.4485", *g.FalsePositiveRate)
			}
		case "Caucasian":
			if math.Abs(*g.FalsePositiveRate-0.2345) > 0.0005 {
				t.Errorf("FPR Caucasian %v, ProPublica 0.2345", *g.FalsePositiveRate)
			}
		}
	}
	// Groups under 2 % are disclosed, not silently dropped (FP-3).
	excluded := map[string]bool{}
	for _, e := range rep.Excluded {
		excluded[e.Group] = e.Requirement == "FP-3" && e.Share < fairness.DefaultMinShare
	}
	if !excluded["Asian"] || !excluded["Native American"] || len(rep.Excluded) != 2 {
		t.Errorf("excluded = %+v; want Asian and Native American, disclosed under FP-3", rep.Excluded)
	}
}

// FP-3: the report agrees with an independent count after ProPublica's
// row filters (applied here, in the test), and the gap in false-positive
// rates persists.
func TestCOMPASProPublicaFilter(t *testing.T) {
	path := dataset(t, "compas/compas-scores-two-years.csv")
	keep := func(r map[string]string) bool {
		days, err := strconv.ParseFloat(r["days_b_screening_arrest"], 64)
		if err != nil {
			return false
		}
		return days <= 30 && days >= -30 && r["is_recid"] != "-1" && r["c_charge_degree"] != "O" && r["score_text"] != "N/A"
	}
	// Write the filtered rows out and audit that file, as a user would.
	f, _ := os.Open(path)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	filtered := filepath.Join(t.TempDir(), "filtered.csv")
	out, _ := os.Create(filtered)
	w := csv.NewWriter(out)
	w.Write(recs[0])
	for _, r := range recs[1:] {
		row := map[string]string{}
		for h, i := range col {
			row[h] = r[i]
		}
		if keep(row) {
			w.Write(r)
		}
	}
	w.Flush()
	out.Close()

	pos := map[string]bool{"Medium": true, "High": true}
	want, total := countCSV(t, filtered, []string{"race"}, "score_text", pos, "two_year_recid", "1", nil)
	if total != 6172 {
		t.Errorf("ProPublica's filters keep %d rows; they reported 6172", total)
	}
	rep, _ := runJSON(t, "--csv", filtered, "--group", "race", "--predicted", "score_text", "--positive", "Medium,High",
		"--outcome", "two_year_recid", "--outcome-positive", "1")
	checkAgainst(t, rep, want, total, map[string][]string{"race": keysOf(want, func(string) bool { return true })}, true)
	aa, ca := want["African-American"], want["Caucasian"]
	fprAA, fprCA := float64(aa.fp)/float64(aa.n-aa.pos), float64(ca.fp)/float64(ca.n-ca.pos)
	t.Logf("filtered FPR African-American %.4f, Caucasian %.4f", fprAA, fprCA)
	if !(fprAA > 1.5*fprCA) {
		t.Errorf("filtered FPR African-American %v vs Caucasian %v: expected the published gap", fprAA, fprCA)
	}
}

// FP-3, FP-4: Adult, sex and race and their intersections.
func TestAdult(t *testing.T) {
	path := dataset(t, "adult/adult.csv")
	pos := map[string]bool{">50K": true}
	want, total := countCSV(t, path, []string{"sex", "race"}, "income", pos, "", "", nil)
	rep, raw := runJSON(t, "--csv", path, "--group", "sex", "--group", "race", "--predicted", "income", "--positive", ">50K")
	members := map[string][]string{
		"sex":        {"Male", "Female"},
		"race":       keysOf(want, func(k string) bool { return !strings.Contains(k, "×") && k != "Male" && k != "Female" }),
		"sex × race": keysOf(want, func(k string) bool { return strings.Contains(k, "×") }),
	}
	if len(members["sex × race"]) != 10 {
		t.Fatalf("independent count found %d sex × race cells, want 10", len(members["sex × race"]))
	}
	checkAgainst(t, rep, want, total, members, false)

	f, m := want["Female"], want["Male"]
	ir := (float64(f.sel) / float64(f.n)) / (float64(m.sel) / float64(m.n))
	if ir >= 0.8 {
		t.Fatalf("independent Female/Male impact ratio %v; expected well under 0.8 on Adult", ir)
	}
	// Without outcomes the error-rate fields are absent, not null.
	if bytes.Contains(raw, []byte("false_positive_rate")) {
		t.Error("report without --outcome carries false_positive_rate")
	}
}

// The JSON field names are the external contract.
func TestJSONShape(t *testing.T) {
	var out, errb bytes.Buffer
	code := fairnessCmd([]string{"--csv", "testdata/decisions.csv", "--group", "group", "--group", "sex", "--predicted", "decision",
		"--positive", "approve", "--outcome", "outcome", "--outcome-positive", "1", "--score", "score", "--format", "json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"groups", "alerts", "excluded", "sections", "calibration"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("top-level %q missing", k)
		}
	}
	groups := raw["groups"].([]any)
	for _, g := range groups {
		m := g.(map[string]any)
		for _, k := range []string{"name", "attributes", "n", "selection_rate", "impact_ratio", "false_positive_rate", "false_negative_rate"} {
			if _, ok := m[k]; !ok {
				t.Errorf("group %v lacks %q", m["name"], k)
			}
		}
	}
	// fairness.Group C has one member, whose outcome is positive: its false-positive
	// rate has no denominator and must be null, not NaN, with a note.
	for _, g := range groups {
		m := g.(map[string]any)
		if m["name"] == "C" {
			if v, ok := m["false_positive_rate"]; !ok || v != nil {
				t.Errorf("C false_positive_rate = %v, want null", v)
			}
			if m["notes"] == nil {
				t.Error("C: null rate without a note")
			}
		}
	}
	if bytes.Contains(out.Bytes(), []byte("NaN")) || bytes.Contains(out.Bytes(), []byte("Inf")) {
		t.Error("report contains NaN or Inf")
	}
	var typed jsonReport
	if err := json.Unmarshal(out.Bytes(), &typed); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range typed.Groups {
		names[g.Name] = true
	}
	if !names["A × F"] || !names["B × M"] {
		t.Errorf("intersection names missing: %v", names)
	}
}

// Golden text output for the small fixture.
func TestTextGolden(t *testing.T) {
	var out, errb bytes.Buffer
	code := fairnessCmd([]string{"--csv", "testdata/decisions.csv", "--group", "group", "--group", "sex", "--predicted", "decision",
		"--positive", "approve", "--outcome", "outcome", "--outcome-positive", "1", "--score", "score", "--min-share", "0.1", "--format", "text"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	golden := filepath.Join("testdata", "decisions.txt")
	if *updateGolden {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("text report differs from %s (go test -update rewrites it):\n%s", golden, out.String())
	}
}

// HTML: self-contained, no script, every value escaped, the threshold line drawn.
func TestHTML(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.csv")
	body := "g,d\n<script>alert(1)</script>,y\n<script>alert(1)</script>,n\n\"a&b\",y\n\"a&b\",y\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := fairnessCmd([]string{"--csv", p, "--group", "g", "--predicted", "d", "--positive", "y", "--format", "html"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	page := out.String()
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("page contains a script element")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(page, "a&amp;b") {
		t.Error("group names not escaped")
	}
	if !strings.Contains(page, "<svg") || !strings.Contains(page, `stroke-dasharray`) {
		t.Error("no SVG chart with the threshold line")
	}
	// Chinese by default, English with --lang en.
	if !strings.Contains(page, `<html lang="zh-CN">`) || !strings.Contains(page, "公平性审计：4 个决定") {
		t.Errorf("the page is not in Chinese by default:\n%.600s", page)
	}
	// The alert and the notes are Chinese too, not the English messages.
	if !strings.Contains(page, "选中率只有参照组") || strings.Contains(page, "selection rate") {
		t.Errorf("the alert is not said in Chinese:\n%s", page)
	}
	var en bytes.Buffer
	if code := fairnessCmd([]string{"--csv", p, "--group", "g", "--predicted", "d", "--positive", "y", "--format", "html", "--lang", "en"}, &en, &errb); code != 0 {
		t.Fatalf("--lang en: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(en.String(), `<html lang="en">`) || !strings.Contains(en.String(), "Fairness audit of 4 decisions") {
		t.Errorf("--lang en page:\n%.600s", en.String())
	}
	local := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
	if strings.Contains(local, "http://") || strings.Contains(local, "https://") || strings.Contains(local, "src=") {
		t.Error("page refers to an external resource")
	}
}

// Bad input: exit 2, a message saying what is wrong, nothing on stdout.
func TestCommandBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.csv", "race,pred,out,score\nA,yes,1,0.5\nB,no,0,0.2\n")
	base := func(file string, extra ...string) []string {
		return append([]string{"--csv", file, "--group", "race", "--predicted", "pred", "--positive", "yes", "--format", "json"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing column", []string{"--csv", good, "--group", "racee", "--predicted", "pred", "--positive", "yes"}, []string{`column "racee"`, "available columns: race, pred, out, score"}},
		{"missing predicted column", []string{"--csv", good, "--group", "race", "--predicted", "p", "--positive", "yes"}, []string{`column "p" (--predicted)`}},
		{"positive never occurs", base(good, "--positive", "yes,maybe"), []string{`"maybe" never occurs`, `"yes", "no"`}},
		{"outcome positive never occurs", base(good, "--outcome", "out", "--outcome-positive", "true"), []string{`"true" never occurs`}},
		{"all-identical outcomes", base(write("same.csv", "race,pred,out\nA,yes,1\nB,no,1\n"), "--outcome", "out", "--outcome-positive", "1"), []string{"need both outcomes"}},
		{"non-numeric score", base(write("score.csv", "race,pred,out,score\nA,yes,1,0.5\nB,no,0,high\n"), "--outcome", "out", "--outcome-positive", "1", "--score", "score"), []string{"line 3", `"high"`}},
		{"NaN score", base(write("nan.csv", "race,pred,out,score\nA,yes,1,NaN\n"), "--outcome", "out", "--outcome-positive", "1", "--score", "score"), []string{"line 2", "finite"}},
		{"empty file", base(write("empty.csv", "")), []string{"is empty"}},
		{"header only", base(write("header.csv", "race,pred\n")), []string{"no decisions"}},
		{"ragged row", base(write("ragged.csv", "race,pred\nA,yes\nB,no,extra\n")), []string{"line 3", "3 fields", "header has 2"}},
		{"bad quote", base(write("quote.csv", "race,pred\nA,\"yes\nB\"x,no\n")), []string{"line"}},
		{"no such file", base(filepath.Join(dir, "nope.csv")), []string{"nope.csv"}},
		{"missing flags", []string{"--format", "json"}, []string{"missing --csv, --group, --predicted, --positive"}},
		{"bad format", base(good, "--format", "pdf"), []string{`"pdf"`}},
		{"outcome without value", base(good, "--outcome", "out"), []string{"--outcome-positive"}},
		{"min share out of range", base(good, "--min-share", "1.5"), []string{"--min-share"}},
		{"stray argument", append(base(good), "extra"), []string{`"extra"`}},
		{"unknown flag", base(good, "--groups", "x"), []string{"groups"}},
		{"same attribute twice", base(good, "--group", "race"), []string{"given twice"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := fairnessCmd(tc.args, &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("stdout not empty: %q", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb.String(), w)
				}
			}
		})
	}
}

// Alerts do not change the exit status: they are findings.
func TestAlertsExitZero(t *testing.T) {
	var out, errb bytes.Buffer
	code := fairnessCmd([]string{"--csv", "testdata/decisions.csv", "--group", "group", "--predicted", "decision", "--positive", "approve", "--format", "json"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), `"requirement": "FP-4"`) {
		t.Fatalf("exit %d with alerts expected in %s", code, out.String())
	}
}
