package fairness

import (
	"encoding/csv"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestCramersV(t *testing.T) {
	// For a 2×2 table V is |φ| = |ad − bc| / √((a+b)(c+d)(a+c)(b+d)).
	a, b, c, d := 10.0, 20.0, 30.0, 5.0
	phi := math.Abs(a*d-b*c) / math.Sqrt((a+b)*(c+d)*(a+c)*(b+d))
	cases := []struct {
		name  string
		table [][]int64
		want  float64
		ok    bool
	}{
		{"2x2 phi", [][]int64{{10, 20}, {30, 5}}, phi, true},
		{"perfect 3x3", [][]int64{{7, 0, 0}, {0, 9, 0}, {0, 0, 4}}, 1, true},
		{"independent", [][]int64{{10, 20}, {20, 40}}, 0, true},
		{"empty rows ignored", [][]int64{{10, 20}, {0, 0}, {30, 5}}, phi, true},
		{"one column", [][]int64{{3}, {4}}, 0, false},
		{"ragged", [][]int64{{10, 20}, {30}}, -1, true},
	}
	for _, tc := range cases {
		v, ok := CramersV(tc.table, false)
		if ok != tc.ok || (tc.want >= 0 && math.Abs(v-tc.want) > 1e-12) {
			t.Errorf("%s: V = %v ok %v, want %v %v", tc.name, v, ok, tc.want, tc.ok)
		}
		if vc, okc := CramersV(tc.table, true); okc && (vc > v+1e-12 || vc < 0) {
			t.Errorf("%s: corrected V %v above uncorrected %v", tc.name, vc, v)
		}
	}
}

func TestCorrelationRatio(t *testing.T) {
	var g1, g2 Moments
	for _, x := range []float64{1, 2, 3} {
		g1.Add(x)
	}
	for _, x := range []float64{4, 5, 6} {
		g2.Add(x)
	}
	// SS_between = 3·1.5² + 3·1.5² = 13.5; SS_total = Σ(x − 3.5)² = 17.5.
	eta, ok := CorrelationRatio([]Moments{g1, g2})
	if !ok || math.Abs(eta-math.Sqrt(13.5/17.5)) > 1e-12 {
		t.Errorf("eta = %v, want %v", eta, math.Sqrt(13.5/17.5))
	}
	var c Moments
	c.Add(5)
	c.Add(5)
	if _, ok := CorrelationRatio([]Moments{c, c}); ok {
		t.Error("constant variable has a correlation ratio")
	}
}

// FP-6: on Adult, relationship ("Husband", "Wife") is a proxy for sex; the
// scanner flags it, with the value an independent count gives.
func TestProxyScanAdult(t *testing.T) {
	path := dataset(t, "adult/adult.csv")
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
		col[h] = i
	}
	protected := []string{"sex", "race"}
	cats := []string{"relationship", "marital-status", "occupation", "workclass", "native-country", "education"}
	nums := []string{"age", "hours-per-week", "education-num", "fnlwgt"}
	s, err := NewProxyScanner(ProxyOptions{Protected: protected, Categorical: cats, Numeric: nums})
	if err != nil {
		t.Fatal(err)
	}
	indep := map[[2]string]float64{} // relationship × sex counts
	for _, r := range recs[1:] {
		p := []string{r[col["sex"]], r[col["race"]]}
		cv := make([]string, len(cats))
		for i, c := range cats {
			cv[i] = r[col[c]]
		}
		nv := make([]float64, len(nums))
		for i, c := range nums {
			if nv[i], err = strconv.ParseFloat(r[col[c]], 64); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Add(p, cv, nv); err != nil {
			t.Fatal(err)
		}
		indep[[2]string{r[col["relationship"]], r[col["sex"]]}]++
	}
	// Independent χ² for relationship × sex: 2 columns, so V = √(χ²/n).
	rows, cols := map[string]float64{}, map[string]float64{}
	var n float64
	for k, v := range indep {
		rows[k[0]] += v
		cols[k[1]] += v
		n += v
	}
	var chi2 float64
	for r, rs := range rows {
		for c, cs := range cols {
			e := rs * cs / n
			o := indep[[2]string{r, c}]
			chi2 += (o - e) * (o - e) / e
		}
	}
	wantV := math.Sqrt(chi2 / n)

	found := map[string]ProxyFinding{}
	for _, pf := range s.Findings() {
		found[pf.Feature+"/"+pf.Protected] = pf
		if math.IsNaN(pf.Value) || pf.Value < 0 || pf.Value > 1 {
			t.Errorf("%+v: value out of [0, 1]", pf)
		}
	}
	if len(found) != (len(cats)+len(nums))*len(protected) {
		t.Errorf("%d findings, want one per feature and attribute", len(found))
	}
	rel := found["relationship/sex"]
	if !rel.Flagged || rel.Requirement != "FP-6" || math.Abs(rel.Value-wantV) > 1e-9 || rel.Measure != "cramers_v" {
		t.Errorf("relationship/sex = %+v; want flagged FP-6 with V %v", rel, wantV)
	}
	if fw := found["fnlwgt/sex"]; fw.Flagged || fw.Measure != "correlation_ratio" {
		t.Errorf("fnlwgt/sex = %+v; a sampling weight should not be a proxy for sex", fw)
	}
}

func TestProxyScannerRefusals(t *testing.T) {
	// FP-2: a protected attribute cannot also be scanned as a feature.
	if _, err := NewProxyScanner(ProxyOptions{Protected: []string{"sex"}, Categorical: []string{"sex"}}); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "FP-2") {
		t.Errorf("protected attribute as feature: %v", err)
	}
	if _, err := NewProxyScanner(ProxyOptions{Protected: []string{"sex"}}); !errors.Is(err, ErrInput) {
		t.Errorf("no features: %v", err)
	}
	s, err := NewProxyScanner(ProxyOptions{Protected: []string{"sex"}, Categorical: []string{"id"}, Numeric: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add([]string{"F"}, []string{"1"}, []float64{math.NaN()}); !errors.Is(err, ErrInput) {
		t.Errorf("NaN feature: %v", err)
	}
	if err := s.Add([]string{"F"}, nil, []float64{1}); !errors.Is(err, ErrInput) {
		t.Errorf("short row: %v", err)
	}
	// An identifier with more levels than MaxLevels is reported untested,
	// and a constant numeric feature has nothing to measure.
	for i := range MaxLevels + 5 {
		sex := "F"
		if i%2 == 0 {
			sex = "M"
		}
		if err := s.Add([]string{sex}, []string{strconv.Itoa(i)}, []float64{7}); err != nil {
			t.Fatal(err)
		}
	}
	for _, pf := range s.Findings() {
		if pf.Flagged || pf.Note == "" {
			t.Errorf("%+v: want unflagged with a note", pf)
		}
	}
}
