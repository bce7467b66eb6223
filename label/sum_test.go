package label

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAdd(t *testing.T) {
	for _, tt := range []struct{ a, b, want float64 }{
		{1, 2, 3},
		{1e308, 1e308, math.MaxFloat64},
		{-1e308, -1e308, -math.MaxFloat64},
		{math.MaxFloat64, 1e308, math.MaxFloat64},
		{5, math.Inf(1), 5},
		{5, math.NaN(), 5},
	} {
		if got := Add(tt.a, tt.b); got != tt.want {
			t.Errorf("Add(%g, %g) = %g, want %g", tt.a, tt.b, got, tt.want)
		}
	}
}

// Aggregates over values too large to sum stay finite, so the label can be
// encoded: before, sum and mean of two amounts of 1e308 were +Inf and the
// derivation failed with a 500 (issue 9).
func TestAggregatesCannotOverflow(t *testing.T) {
	c := testCatalog(t)
	huge := []Event{
		{Type: "purchase", Time: daysAgo(1), Fields: map[string]any{"amount": 1e308}},
		{Type: "purchase", Time: daysAgo(2), Fields: map[string]any{"amount": 1e308}},
		{Type: "purchase", Time: daysAgo(3), Fields: map[string]any{"amount": math.Inf(1)}},
	}
	for _, tt := range []struct {
		rule string
		want float64
	}{
		{`sum("purchase", "amount", "30d") > 0.0`, math.MaxFloat64},
		{`mean("purchase", "amount", "30d") > 0.0`, 1e308},
		{`max("purchase", "amount", "30d") > 0.0`, 1e308},
	} {
		r, err := Compile(c, ruleLabel(tt.rule, "amount"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Eval(now, nil, huge)
		if err != nil {
			t.Fatalf("%s: %v", tt.rule, err)
		}
		if len(v.Facts) != 1 || v.Facts[0].Value != tt.want {
			t.Errorf("%s: facts %+v, want value %g", tt.rule, v.Facts, tt.want)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Errorf("%s: the label cannot be encoded: %v", tt.rule, err)
		}
	}
	s := RFM(now, map[string][]Event{"a": huge}, "purchase", "amount")["a"]
	if s.Monetary != math.MaxFloat64 || s.Frequency != 3 {
		t.Errorf("RFM = %+v", s)
	}
}
