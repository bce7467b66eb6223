package fairness

import (
	"errors"
	"maps"
	"testing"
)

func TestFlipTest(t *testing.T) {
	rows := []map[string]string{
		{"sex": "F", "zip": "10001", "income": "high"},
		{"sex": "M", "zip": "10002", "income": "high"},
		{"sex": "F", "zip": "10002", "income": "low"},
		{"sex": "X", "zip": "10001", "income": "low"},
	}
	orig := make([]map[string]string, len(rows))
	for i, r := range rows {
		orig[i] = maps.Clone(r)
	}
	direct := func(r map[string]string) (bool, error) { return r["sex"] == "M" || r["income"] == "high", nil }
	proxy := func(r map[string]string) (bool, error) { return r["zip"] == "10001", nil }
	fair := func(r map[string]string) (bool, error) { return r["income"] == "high", nil }
	cases := []struct {
		name      string
		model     Model
		attr      string
		flips     int
		evals     int
		subjFlips int
	}{
		// Rows 3 and 4 (low income) flip when made M; M row 2 never flips (high income).
		{"uses sex", direct, "sex", 2, 8, 2},
		{"ignores sex", fair, "sex", 0, 8, 0},
		{"uses zip, a proxy", proxy, "zip", 4, 4, 4},
		{"proxy model on sex", proxy, "sex", 0, 8, 0},
	}
	for _, tc := range cases {
		res, err := FlipTest(rows, tc.attr, nil, tc.model)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Flips != tc.flips || res.Evaluations != tc.evals || res.SubjectsFlipped != tc.subjFlips {
			t.Errorf("%s: flips %d evals %d subjects %d; want %d %d %d", tc.name, res.Flips, res.Evaluations, res.SubjectsFlipped, tc.flips, tc.evals, tc.subjFlips)
		}
		var sum int
		for _, tr := range res.Transitions {
			sum += tr.Flips
		}
		if sum != res.Flips {
			t.Errorf("%s: transitions sum to %d flips of %d", tc.name, sum, res.Flips)
		}
	}
	for i := range rows {
		if !maps.Equal(rows[i], orig[i]) {
			t.Errorf("row %d modified: %v", i, rows[i])
		}
	}
	if _, err := FlipTest(rows, "age", nil, fair); !errors.Is(err, ErrInput) {
		t.Errorf("missing attribute: %v", err)
	}
	if _, err := FlipTest(rows[:1], "sex", nil, fair); !errors.Is(err, ErrInput) {
		t.Errorf("single value: %v", err)
	}
	boom := errors.New("model down")
	if _, err := FlipTest(rows, "sex", nil, func(map[string]string) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("model error not passed on: %v", err)
	}
}
