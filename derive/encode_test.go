package derive

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// encodeStored writes exactly what json.Marshal writes — the sealed bytes
// of every label value stay as they were — for values of every kind, for
// strings and numbers at every edge of encoding/json's rules, and for
// random values; where json.Marshal fails, it fails the same way.
func TestEncodeStored(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	cet := time.FixedZone("CET", 3600)
	odd := time.FixedZone("odd", 3600+17)
	cases := map[string]Stored{
		"empty": {},
		"rule": {Value: label.Value{Label: "sports_fan", Version: 1, Kind: "rule", Bool: true, Confidence: 1, Inputs: []string{"category", "event:view"},
			EventCount: 7, From: at.Add(-time.Hour), To: at, Computed: at,
			Facts: []label.Fact{{Func: "count", Type: "view", Field: "category", Equals: "sports", Window: "30d", Value: 7}}}, Seen: 99},
		"rfm": {Value: label.Value{Label: "rfm", Version: 2, Kind: "rfm", Score: 411, Confidence: 1, Inputs: []string{"amount", "event:purchase"}, Computed: at,
			Expires: at.Add(24 * time.Hour), Facts: []label.Fact{{Func: "rfm", Equals: "new"}, {Func: "recency", Type: "purchase", Value: 0.041666666666666664}}},
			RFM: &label.RFMScore{Recency: 0.041666666666666664, Frequency: 1, Monetary: 41, R: 4, F: 1, M: 1, Class: "new"}},
		"rfm named":   {RFM: &label.RFMScore{Class: "x", Name: catalog.Text{"zh-CN": "新客户", "en": "new customers"}}},
		"rfm empty":   {RFM: &label.RFMScore{Name: catalog.Text{}}},
		"segment":     {Value: label.Value{Kind: "segment", Segment: 3, Confidence: 0.5123, Facts: []label.Fact{{Func: "segment", Value: 3, Text: catalog.Text{"zh-CN": "消费较高、购买频繁", "en": "spends a lot, buys often"}}}}},
		"empty text":  {Value: label.Value{Facts: []label.Fact{{Func: "segment", Text: catalog.Text{}}}}},
		"equals":      {Value: label.Value{Facts: []label.Fact{{Equals: 1.5}, {Equals: true}, {Equals: false}, {Equals: ""}, {Equals: 0.0}}}},
		"equals int":  {Value: label.Value{Facts: []label.Fact{{Equals: 3}}}},
		"equals list": {Value: label.Value{Facts: []label.Fact{{Equals: []any{"a"}}}}},
		"inputs":      {Value: label.Value{Inputs: []string{}}},
		"escapes": {Value: label.Value{Label: `q<"x">&\y`, Kind: "a\tb\nc\u0001\u007f\b\f", Inputs: []string{"\u2028", "\u2029", "\xff", "é中文", "a/b"},
			Facts: []label.Fact{{Func: "f", Text: catalog.Text{"<k>": "v&", "\x00": "z"}}}}},
		"floats": {Value: label.Value{Score: 1e21, Confidence: 1e-7, Facts: []label.Fact{{Value: -1e-7}, {Value: 123456789012345678}, {Value: 0.1},
			{Value: -0}, {Value: 1e20}, {Value: 5e-324}, {Value: math.MaxFloat64}, {Value: 1e-6}, {Value: 9.999999e-7}, {Value: 1e-10}, {Value: 1e100}}}},
		"nan":        {Value: label.Value{Score: math.NaN()}},
		"inf":        {Value: label.Value{Facts: []label.Fact{{Value: math.Inf(-1)}}}},
		"zone":       {Value: label.Value{Computed: at.In(cet), From: at.Add(123456789 * time.Nanosecond)}},
		"odd zone":   {Value: label.Value{Computed: at.In(odd)}},
		"year 10000": {Value: label.Value{Computed: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"year -1":    {Value: label.Value{Expires: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"forecast":   {Value: label.Value{Forecast: &label.Forecast{}}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"", "a", "sports", "购买", "<", "\"", "\\", "\n", "\u2028", "\xfe", "event:purchase", "😀"}
	word := func() string { return words[rng.IntN(len(words))] + words[rng.IntN(len(words))] }
	num := func() float64 {
		switch rng.IntN(4) {
		case 0:
			return float64(rng.IntN(1000))
		case 1:
			return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))
		case 2:
			return 0
		}
		return rng.Float64()
	}
	for i := range 2000 {
		v := Stored{Value: label.Value{Label: word(), Version: rng.IntN(5) - 1, Kind: word(), Bool: rng.IntN(2) == 0, Score: num(), Segment: rng.IntN(9),
			Confidence: num(), EventCount: rng.IntN(1e6), Computed: at.Add(time.Duration(rng.Int64N(1e18)) - 5e17)}, Seen: rng.Int64N(3) * rng.Int64N(1e12)}
		if rng.IntN(2) == 0 {
			v.From, v.To = at.Add(-time.Duration(rng.Int64N(1e17))), at.Add(time.Duration(rng.Int64N(1e9)))
		}
		for range rng.IntN(3) {
			v.Inputs = append(v.Inputs, word())
		}
		for range rng.IntN(4) {
			f := label.Fact{Func: word(), Type: word(), Field: word(), Window: word(), Value: num()}
			switch rng.IntN(4) {
			case 1:
				f.Equals = word()
			case 2:
				f.Equals = num()
			case 3:
				f.Equals = rng.IntN(2) == 0
			}
			if rng.IntN(3) == 0 {
				f.Text = catalog.Text{"en": word(), "zh-CN": word()}
			}
			v.Facts = append(v.Facts, f)
		}
		if rng.IntN(3) == 0 {
			v.RFM = &label.RFMScore{Recency: num(), Frequency: rng.IntN(99), Monetary: num(), R: 1 + rng.IntN(5), F: 1 + rng.IntN(5), M: 1 + rng.IntN(5), Class: word()}
		}
		cases[string(rune('A'+i%26))+time.Duration(i).String()] = v
	}
	for name, v := range cases {
		want, werr := json.Marshal(v)
		got, gerr := encodeStored(&v)
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Errorf("%s: error %v, json.Marshal's %v", name, gerr, werr)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
		}
	}
	// The common kinds are written without json.Marshal.
	for _, name := range []string{"rule", "rfm", "rfm named", "segment", "equals", "floats", "zone"} {
		v := cases[name]
		if _, ok := appendStored(nil, &v); !ok {
			t.Errorf("%s: went to json.Marshal", name)
		}
	}
}

// A batch run's view of a subject is the view incremental derivation
// narrows, field for field, for every label of the demo catalog and every
// combination of consents: no label sees a field its grant does not
// cover, whether its events share their field maps or not.
func TestBatchViewNarrows(t *testing.T) {
	e, c := demoEngine(t)
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s := &subject{ps: "p", profile: map[string]any{"age": 40.0, "income": 9000.0, "city": "杭州"}}
	for i, f := range []map[string]any{
		{"item": "i-sports", "category": "sports", "price": 10.0, "device": "d"},
		{"item": "i-books", "category": "books", "price": 0.0},
		{"item": "x", "amount": 41.0, "quantity": 1.0, "price": 41.0, "category": "sports"},
		{"item": "y", "amount": math.Copysign(0, -1), "quantity": 2.0},
		{"item": "z", "amount": 0.0},
		{"search_query": "q"},
		{},
		{"category": []any{"a"}, "amount": map[string]any{"n": 1.0}},
		{"item": "i-sports", "category": "sports", "price": 10.0},
	} {
		s.events = append(s.events, label.Event{Type: []string{"view", "purchase", "search"}[i%3], Time: at.Add(time.Duration(i) * time.Hour), Fields: f})
		s.ids = append(s.ids, int64(i))
	}
	checkBatchViews(t, e, c, s, at)
}

// demoEngine is an engine deciding under the demo catalog, and that
// catalog compiled.
func demoEngine(t *testing.T) (*Engine, *compiled) {
	t.Helper()
	yaml, err := os.ReadFile("../examples/demo/catalog.yaml") // package demo imports derive
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Parse("examples/demo/catalog.yaml", yaml, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{point: policy.New(cat), caller: policy.Caller{Role: policy.System, ID: "derive"}}, compileCatalog(cat)
}

// checkBatchViews checks, for every label of c under several consent
// states, that the batch view of s is the incremental view, that no label
// sees a field its grant does not cover, and that a negative zero amount
// keeps its sign.
func checkBatchViews(t *testing.T, e *Engine, c *compiled, s *subject, at time.Time) {
	t.Helper()
	for _, purposes := range [][]string{{"personalization"}, {"marketing"}, {"credit"}, {"personalization", "marketing", "credit"}} {
		st := &policy.State{Pseudonym: "p", Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
		for _, p := range purposes {
			st.Consents[p] = policy.Consent{Status: policy.Granted, At: at.Add(-time.Hour), NoticeVersion: "1"}
		}
		for _, en := range c.entries {
			g, _ := e.decide(st, en)
			if !g.Valid() {
				continue
			}
			wantProf, wantEvents := s.view(en, g)
			gotProf, gotEvents := s.batchView(en, g)
			if !reflect.DeepEqual(gotProf, wantProf) || !reflect.DeepEqual(gotEvents, wantEvents) {
				t.Errorf("%v, label %s:\nbatch %v %v\nview  %v %v", purposes, en.l.ID, gotProf, gotEvents, wantProf, wantEvents)
			}
			for i, ev := range gotEvents {
				for k := range ev.Fields {
					if !g.Covers(k) {
						t.Errorf("%v, label %s sees field %s", purposes, en.l.ID, k)
					}
				}
				if a, ok := ev.Fields["amount"].(float64); ok && math.Signbit(a) != math.Signbit(s.events[i].Fields["amount"].(float64)) {
					t.Errorf("%v, label %s: event %d amount %v, stored %v", purposes, en.l.ID, i, a, s.events[i].Fields["amount"])
				}
			}
		}
	}
}
