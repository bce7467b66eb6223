package label

import (
	"encoding/csv"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/catalog"
)

func TestScore(t *testing.T) {
	logit := Model{Kind: "logistic", Weights: map[string]float64{"a": 2, "b": -1}, Intercept: -1, Threshold: 0.5}
	s, contrib, err := logit.Score(map[string]float64{"a": 1, "b": 0.5})
	want := 1 / (1 + math.Exp(-(-1 + 2 - 0.5)))
	if err != nil || math.Abs(s-want) > 1e-12 || contrib["a"] != 2 || contrib["b"] != -0.5 || !logit.Outcome(s) {
		t.Errorf("logistic: %v %v %v, want %v", s, contrib, err, want)
	}
	card := Model{Kind: "scorecard", Weights: map[string]float64{"on_time": 40, "late": -25}, Intercept: 600, Threshold: 620}
	s, _, err = card.Score(map[string]float64{"on_time": 1, "late": 1})
	if err != nil || s != 615 || card.Outcome(s) {
		t.Errorf("scorecard: %v %v", s, err)
	}
	if _, _, err := logit.Score(map[string]float64{"a": 1}); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("missing feature: got %v, want an error naming b", err)
	}
}

func TestCounterfactual(t *testing.T) {
	m := catalog.Model{Kind: "logistic", Weights: map[string]float64{"income": 0.001, "debts": -1, "age": 0.1}, Intercept: -3, Threshold: 0.5}
	x := map[string]float64{"income": 1000, "debts": 2, "age": 30}
	before, _, _ := Model(m).Score(x)
	field, nv, ok := Counterfactual(m, x, []string{"income", "debts"})
	if !ok {
		t.Fatal("no counterfactual")
	}
	x2 := map[string]float64{"income": x["income"], "debts": x["debts"], "age": x["age"]}
	x2[field] = nv
	after, _, _ := Model(m).Score(x2)
	if Model(m).Outcome(before) == Model(m).Outcome(after) {
		t.Errorf("%s → %v does not flip the outcome (%v → %v)", field, nv, before, after)
	}
	// z = -3 + 1 - 2 + 3 = -1: income needs +1000 (relative 1), debts
	// needs -1 (relative 0.5): debts is the smaller change.
	if field != "debts" || math.Abs(nv-1) > 1e-3 {
		t.Errorf("got %s = %v, want debts ≈ 1", field, nv)
	}
	if _, _, ok := Counterfactual(m, x, []string{"age_of_car"}); ok {
		t.Error("a feature the model does not weigh cannot flip it")
	}
}

// The model recovers the weights that generated the data.
func TestTrainRecoversWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := []float64{1.5, -2, 0.5}
	const b = 0.3
	n := 20000
	X := make([][]float64, n)
	y := make([]bool, n)
	for i := range X {
		X[i] = []float64{rng.NormFloat64(), rng.NormFloat64()*3 + 5, rng.NormFloat64() * 0.5}
		z := b
		for j := range w {
			z += w[j] * X[i][j]
		}
		y[i] = rng.Float64() < sigmoid(z)
	}
	names := []string{"x0", "x1", "x2"}
	m, err := Train(X, y, names, 0)
	if err != nil {
		t.Fatal(err)
	}
	for j, name := range names {
		if math.Abs(m.Weights[name]-w[j]) > 0.15 {
			t.Errorf("%s: got %v, want %v", name, m.Weights[name], w[j])
		}
	}
	if math.Abs(m.Intercept-b) > 0.3 {
		t.Errorf("intercept %v, want %v", m.Intercept, b)
	}
	again, _ := Train(X, y, names, 0)
	for _, name := range names {
		if again.Weights[name] != m.Weights[name] {
			t.Errorf("training is not deterministic for %s", name)
		}
	}
	if _, err := Train(X[:3], y, names, 0); err == nil {
		t.Error("mismatched rows and outcomes trained")
	}
}

// On real census data the model separates incomes above 50K better than
// chance (AUC) and better than always guessing the majority (accuracy).
func TestTrainAdult(t *testing.T) {
	dir := os.Getenv("PORTRAIT_DATASETS")
	if dir == "" {
		t.Skip("opt-in: set PORTRAIT_DATASETS to the folder holding adult/adult.csv (.ci/run sets it)")
	}
	f, err := os.Open(filepath.Join(dir, "adult", "adult.csv"))
	if err != nil {
		t.Fatalf("PORTRAIT_DATASETS is set but the Adult data set is missing: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimSpace(h)] = i
	}
	names := []string{"age", "education-num", "hours-per-week"}
	var X [][]float64
	var y []bool
	for _, r := range rows[1:] {
		x := make([]float64, len(names))
		for j, n := range names {
			x[j], err = strconv.ParseFloat(strings.TrimSpace(r[col[n]]), 64)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
		}
		X = append(X, x)
		y = append(y, strings.HasPrefix(strings.TrimSpace(r[col["income"]]), ">50K"))
	}
	// Train on even rows, test on odd ones.
	var trX, teX [][]float64
	var trY, teY []bool
	for i := range X {
		if i%2 == 0 {
			trX, trY = append(trX, X[i]), append(trY, y[i])
		} else {
			teX, teY = append(teX, X[i]), append(teY, y[i])
		}
	}
	m, err := Train(trX, trY, names, 1e-4)
	if err != nil {
		t.Fatal(err)
	}
	md := Model(m)
	scores := make([]float64, len(teX))
	correct, positives := 0, 0
	for i, x := range teX {
		fs := map[string]float64{}
		for j, n := range names {
			fs[n] = x[j]
		}
		scores[i], _, err = md.Score(fs)
		if err != nil {
			t.Fatal(err)
		}
		if md.Outcome(scores[i]) == teY[i] {
			correct++
		}
		if teY[i] {
			positives++
		}
	}
	acc := float64(correct) / float64(len(teX))
	majority := math.Max(float64(positives), float64(len(teX)-positives)) / float64(len(teX))
	a := auc(scores, teY)
	t.Logf("Adult: accuracy %.3f (majority %.3f), AUC %.3f, weights %v", acc, majority, a, m.Weights)
	if acc <= majority {
		t.Errorf("accuracy %.3f does not beat the majority guess %.3f", acc, majority)
	}
	if a < 0.7 {
		t.Errorf("AUC %.3f; age, education and hours separate income better than 0.7", a)
	}
	for _, n := range names {
		if m.Weights[n] <= 0 {
			t.Errorf("weight of %s is %v; more of it goes with higher income", n, m.Weights[n])
		}
	}
}

// auc is the Mann–Whitney statistic: the chance that a random positive
// scores above a random negative, ties counting half.
func auc(scores []float64, y []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSum float64
	pos := 0
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // average 1-based rank
		for _, k := range idx[i:j] {
			if y[k] {
				rankSum += mid
				pos++
			}
		}
		i = j
	}
	neg := len(y) - pos
	return (rankSum - float64(pos*(pos+1))/2) / float64(pos*neg)
}

// LP-1: score and segment labels read only declared numeric fields.
func TestCheckModelsAndSegments(t *testing.T) {
	c := testCatalog(t)
	good := catalog.Model{Kind: "logistic", Weights: map[string]float64{"age": 0.1, "income": 0.01}, Threshold: 0.5}
	tests := []struct {
		name  string
		label catalog.Label
		want  string
	}{
		{"score ok", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"age", "income"}, Model: &good}, ""},
		{"no model", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"age"}}, "needs a model"},
		{"no weights", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"age"}, Model: &catalog.Model{Kind: "logistic", Threshold: 0.5}}, "no weights"},
		{"weight not input", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"age"}, Model: &good}, `"income" is not one of the label's inputs`},
		{"string feature", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"city"}, Model: &catalog.Model{Kind: "logistic", Weights: map[string]float64{"city": 1}, Threshold: 0.5}}, "must be a number"},
		{"no threshold", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"age"}, Model: &catalog.Model{Kind: "logistic", Weights: map[string]float64{"age": 1}}}, "threshold"},
		{"bad model kind", catalog.Label{ID: "s", Kind: "score", Inputs: []string{"age"}, Model: &catalog.Model{Kind: "forest", Weights: map[string]float64{"age": 1}}}, "forest"},
		{"segment ok", catalog.Label{ID: "s", Kind: "segment", Features: []string{"age", "income"}, K: 3}, ""},
		{"segment k", catalog.Label{ID: "s", Kind: "segment", Features: []string{"age"}, K: 1}, "k >= 2"},
		{"segment undeclared", catalog.Label{ID: "s", Kind: "segment", Features: []string{"height"}, K: 2}, `"height" is not a declared field`},
		{"segment string", catalog.Label{ID: "s", Kind: "segment", Features: []string{"city"}, K: 2}, "must be a number"},
		{"segment none", catalog.Label{ID: "s", Kind: "segment", K: 2}, "needs features"},
		{"unknown kind", catalog.Label{ID: "s", Kind: "oracle", Rule: "true"}, "oracle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(c, &tt.label)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Requirement != "LP-1" || !strings.Contains(err.Error(), `label "s"`) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want an LP-1 refusal of s mentioning %q", err, tt.want)
			}
		})
	}
}

// A score label evaluates per subject with contributions as its facts.
func TestScoreLabel(t *testing.T) {
	c := testCatalog(t)
	l := &catalog.Label{ID: "credit", Kind: "score", Version: 2, Inputs: []string{"age", "income"},
		Name:  catalog.Text{"en": "Credit score", "zh-CN": "信用分"},
		Model: &catalog.Model{Kind: "logistic", Weights: map[string]float64{"age": 0.05, "income": 0.001}, Intercept: -4, Threshold: 0.5}}
	r, err := Compile(c, l)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Eval(now, map[string]any{"age": 40.0, "income": 3000.0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := sigmoid(-4 + 2 + 3); math.Abs(v.Score-want) > 1e-12 || !v.Bool || v.Kind != "score" || len(v.Facts) != 2 {
		t.Errorf("value %+v, want score %v", v, want)
	}
	if s := v.Explain("en", l); !strings.Contains(s, "Credit score") || !strings.Contains(s, "income (3000) counted 3.00") {
		t.Errorf("explain: %q", s)
	}
	if _, err := r.Eval(now, map[string]any{"age": 40.0}, nil); err == nil || !strings.Contains(err.Error(), `"income"`) {
		t.Errorf("missing feature: %v", err)
	}
}
