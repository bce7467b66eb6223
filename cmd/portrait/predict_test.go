package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const cdnowLog = "../../examples/cdnow/CDNOW_master.txt.gz"

// The evaluation command on the shipped CDNOW log: the promised JSON keys,
// the whole cohort, the figures the fit gives on the full master file
// (not the 1/10 sample of the literature), and the reports.
func TestPredictCDNOW(t *testing.T) {
	html := filepath.Join(t.TempDir(), "report.html")
	var out, errb bytes.Buffer
	args := []string{"predict", "--format", "cdnow", "--file", cdnowLog, "--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30"}
	if code := Main(append(args, "--json", "--html", html), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	keys := func(m any) []string {
		var ks []string
		for k := range m.(map[string]any) {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	for _, c := range []struct {
		v    any
		want []string
	}{
		{raw, []string{"calibration", "customers", "holdout", "log_likelihood", "model", "params", "time_unit"}},
		{raw["params"], []string{"a", "alpha", "b", "r"}},
		{raw["calibration"], []string{"repeat_transactions"}},
		{raw["holdout"], []string{"actual", "predicted"}},
	} {
		if got := keys(c.v); !reflect.DeepEqual(got, c.want) {
			t.Errorf("keys %v, want %v", got, c.want)
		}
	}
	var res struct {
		Model         string
		TimeUnit      string `json:"time_unit"`
		Customers     int
		Params        struct{ R, Alpha, A, B float64 }
		LogLikelihood float64 `json:"log_likelihood"`
		Calibration   struct {
			Repeat int `json:"repeat_transactions"`
		}
		Holdout struct {
			Actual    int
			Predicted float64
		}
	}
	json.Unmarshal(out.Bytes(), &res)
	if raw["model"] != "bgnbd" || res.TimeUnit != "week" || res.Customers != 23570 {
		t.Errorf("model %v, unit %q, %d customers; want bgnbd, week, 23570", raw["model"], res.TimeUnit, res.Customers)
	}
	// Counted independently of the fit: 69,659 lines, 67,591 distinct
	// customer-days, minus each customer's first.
	if res.Calibration.Repeat+res.Holdout.Actual != 67591-23570 {
		t.Errorf("repeat transactions %d + %d, want %d", res.Calibration.Repeat, res.Holdout.Actual, 67591-23570)
	}
	p := res.Params
	near := func(got, want, tol float64) bool { return math.Abs(got-want) <= tol }
	if !near(p.R, 0.2516, 0.001) || !near(p.Alpha, 4.789, 0.01) || !near(p.A, 0.7234, 0.002) || !near(p.B, 2.161, 0.01) ||
		!near(res.LogLikelihood, -95368.44, 0.05) || !near(res.Holdout.Predicted, 16873.7, 1) {
		t.Errorf("fit %+v, log-likelihood %.2f, holdout predicted %.1f: moved from the recorded figures", p, res.LogLikelihood, res.Holdout.Predicted)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"累计重复购买", "Cumulative repeat transactions", "条件期望", "<polyline", "x=7"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	out.Reset()
	if code := Main(append(args, "--model", "bgnbd_trend"), &out, &errb); code != 0 {
		t.Fatalf("trend: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"model bgnbd_trend", "a year", "MAE", "calibration x"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPredictRefuses(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("00001 19970101 1 11.77\n00002 1997-01-12 1 12.00\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--file", cdnowLog, "--calibration-end", "1997-09-30"}, 2, "required"},
		{[]string{"--file", cdnowLog, "--calibration-end", "30/9/1997", "--holdout-end", "1998-06-30"}, 2, "YYYY-MM-DD"},
		{[]string{"--format", "csv", "--file", cdnowLog, "--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30"}, 2, "only cdnow"},
		{[]string{"--file", cdnowLog, "--calibration-end", "1997-09-30", "--holdout-end", "1997-06-30"}, 1, "not after"},
		{[]string{"--file", cdnowLog, "--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30", "--model", "pareto"}, 1, "want one of"},
		{[]string{"--file", bad, "--calibration-end", "1997-09-30", "--holdout-end", "1998-06-30"}, 1, "line 2: date"},
	} {
		var out, errb bytes.Buffer
		code := Main(append([]string{"predict"}, tc.args...), &out, &errb)
		if code != tc.code || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.want)
		}
	}
}
