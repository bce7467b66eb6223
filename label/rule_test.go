package label

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

func testCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c := &catalog.Catalog{
		Fields: []catalog.Field{
			{Name: "age", Type: catalog.TypeNumber},
			{Name: "city"},
			{Name: "vip", Type: catalog.TypeBool},
			{Name: "joined", Type: catalog.TypeTime},
			{Name: "income", Type: catalog.TypeNumber},
			{Name: "ethnicity", Protected: true},
			{Name: "category"}, {Name: "amount", Type: catalog.TypeNumber}, {Name: "item"},
		},
		EventTypes: []catalog.EventType{
			{ID: "view", Fields: []string{"item", "category"}},
			{ID: "purchase", Fields: []string{"item", "amount"}},
		},
	}
	c.Index()
	return c
}

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func daysAgo(d float64) time.Time { return now.Add(-time.Duration(d * 24 * float64(time.Hour))) }

// subjectEvents: views of sports 2, 5, 40 days ago, of books 1 day ago,
// purchases of 10 (3 days), 30 (20 days), 100 (400 days) and one in the future.
func subjectEvents() []Event {
	return []Event{
		{Type: "view", Time: daysAgo(2), Fields: map[string]any{"category": "sports", "item": "ball"}},
		{Type: "view", Time: daysAgo(5), Fields: map[string]any{"category": "sports", "item": "shoe"}},
		{Type: "view", Time: daysAgo(40), Fields: map[string]any{"category": "sports", "item": "ball"}},
		{Type: "view", Time: daysAgo(1), Fields: map[string]any{"category": "books", "item": "novel"}},
		{Type: "purchase", Time: daysAgo(3), Fields: map[string]any{"amount": 10.0, "item": "ball"}},
		{Type: "purchase", Time: daysAgo(20), Fields: map[string]any{"amount": 30.0, "item": "shoe"}},
		{Type: "purchase", Time: daysAgo(400), Fields: map[string]any{"amount": 100.0, "item": "bike"}},
		{Type: "purchase", Time: now.Add(time.Hour), Fields: map[string]any{"amount": 1000.0}},
	}
}

func ruleLabel(rule string, inputs ...string) *catalog.Label {
	return &catalog.Label{ID: "l1", Kind: catalog.KindRule, Version: 3, Rule: rule, Inputs: inputs,
		Name: catalog.Text{"zh-CN": "运动爱好者", "en": "Sports fan"}}
}

// Every aggregate, checked against the counts worked out by hand from
// subjectEvents (the future purchase is never counted).
func TestAggregates(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		rule string
		want bool
	}{
		{`count("view", "30d") == 3`, true},
		{`count("view", "1y") == 4`, true},
		{`count("view", "30d", "category", "sports") == 2`, true},
		{`count("view", "1y", "category", "sports") == 3`, true},
		{`count("purchase", "1y", "amount", 30.0) == 1`, true},
		{`count("purchase", "1y", "amount", 30) == 1`, true},
		{`count("view", "30d", "missing", true) == 0`, true},
		{`count("click", "30d") == 0`, true},
		{`frequency("purchase", "30d") == 2`, true},
		{`frequency("purchase", "2y") == 3`, true},
		{`sum("purchase", "amount", "30d") == 40.0`, true},
		{`monetary("purchase", "amount", "2y") == 140.0`, true},
		{`mean("purchase", "amount", "30d") == 20.0`, true},
		{`min("purchase", "amount", "2y") == 10.0`, true},
		{`max("purchase", "amount", "2y") == 100.0`, true},
		{`max("purchase", "amount", "1h") == 0.0`, true},
		{`distinct("view", "item", "1y") == 3`, true},
		{`distinct("view", "item", "30d") == 3`, true},
		{`distinct("view", "category", "3d") == 2`, true},
		{`recency("view") == 1.0`, true},
		{`recency("purchase") == 3.0`, true},
		{`recency("click") == 1e9`, true},
		{`count("view", "72h") == 2`, true},
		{`events.filter(e, e.type == "view" && e.category == "sports" && e.age < duration("720h")).size() >= 2`, true},
		{`events.size() == 7`, true}, // the future event is dropped
		{`count("view", "30d") > 3`, false},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r, err := Compile(c, ruleLabel(tt.rule))
			if err != nil {
				t.Fatal(err)
			}
			v, err := r.Eval(now, nil, subjectEvents())
			if err != nil {
				t.Fatal(err)
			}
			if v.Bool != tt.want {
				t.Errorf("got %v, want %v (facts %+v)", v.Bool, tt.want, v.Facts)
			}
		})
	}
}

func TestProfileVariables(t *testing.T) {
	c := testCatalog(t)
	joined := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		rule    string
		profile map[string]any
		want    bool
	}{
		{`age >= 18.0 && city == "Beijing" && vip && joined < now`, map[string]any{"age": 30.0, "city": "Beijing", "vip": true, "joined": joined}, true},
		{`age >= 18.0`, map[string]any{"age": 17}, false},
		// Absent values are zero values; fields tells absence apart.
		{`age == 0.0 && city == "" && !vip && !("age" in fields)`, map[string]any{}, true},
		{`"age" in fields && fields.age == 0.0`, map[string]any{"age": 0.0}, true},
	}
	for _, tt := range tests {
		r, err := Compile(c, ruleLabel(tt.rule, "age", "city", "vip", "joined"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Eval(now, tt.profile, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.rule, err)
		}
		if v.Bool != tt.want {
			t.Errorf("%s with %v: got %v, want %v", tt.rule, tt.profile, v.Bool, tt.want)
		}
	}
	r, _ := Compile(c, ruleLabel(`age > 1.0`, "age"))
	if _, err := r.Eval(now, map[string]any{"age": "old"}, nil); err == nil || !strings.Contains(err.Error(), `"age"`) {
		t.Errorf("a string in a number field: got %v, want an error naming age", err)
	}
}

// LP-1: a rule is refused at load with an error naming the label and LP-1.
func TestCompileErrors(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		name, rule string
		inputs     []string
		cfg        Config
		want       string
	}{
		{"does not compile", `count("view", "30d") >`, nil, DefaultConfig, "does not compile"},
		{"wrong result type", `count("view", "30d")`, nil, DefaultConfig, "must return bool"},
		{"undeclared field", `income > 10.0`, []string{"age"}, DefaultConfig, "undeclared reference to 'income'"},
		{"input not in catalog", `true`, []string{"shoe_size"}, DefaultConfig, `input "shoe_size" is not a declared field`},
		{"protected input", `ethnicity == "x"`, []string{"ethnicity"}, DefaultConfig, "protected attribute"},
		{"bad window literal", `count("view", "30x") > 1`, nil, DefaultConfig, "bad window"},
		{"zero window", `sum("purchase", "amount", "0d") > 1.0`, nil, DefaultConfig, "bad window"},
		{"wrong argument type", `count("view", 30) > 1`, nil, DefaultConfig, "does not compile"},
		{"too expensive", `events.exists(e, events.exists(f, e.item == f.item && e.time != f.time))`, nil, DefaultConfig, "above the limit"},
		{"unbounded", `events.exists(e, e.type == "view")`, nil, Config{MaxCost: 1_000_000, MaxString: 1024}, "its cost is unbounded"},
		{"empty rule", ``, nil, DefaultConfig, "needs a rule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileWith(tt.cfg, c, ruleLabel(tt.rule, tt.inputs...))
			if err == nil {
				t.Fatal("compiled; want a refusal")
			}
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Requirement != "LP-1" || ce.Label != "l1" {
				t.Fatalf("got %T %v; want a *CheckError for l1 citing LP-1", err, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"l1"`) || !strings.Contains(msg, "LP-1") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want the label, LP-1 and %q", msg, tt.want)
			}
		})
	}
	// A single comprehension over events stays within the default budget.
	if _, err := Compile(c, ruleLabel(`events.filter(e, e.type == "view" && e.category == "sports").size() >= 5`)); err != nil {
		t.Errorf("one comprehension: %v", err)
	}
}

// A window only known at run time is checked then.
func TestRuntimeWindow(t *testing.T) {
	c := testCatalog(t)
	r, err := Compile(c, ruleLabel(`count("view", city) > 0`, "city"))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := r.Eval(now, map[string]any{"city": "3d"}, subjectEvents()); err != nil || !v.Bool {
		t.Errorf("window from a field: %v %v", v.Bool, err)
	}
	if _, err := r.Eval(now, map[string]any{"city": "soon"}, subjectEvents()); err == nil || !strings.Contains(err.Error(), "bad window") {
		t.Errorf("bad window at run time: got %v", err)
	}
}

// MaxEvents keeps only the most recent events, so a rule's estimated cost
// bounds its run whatever the number of events a subject has.
func TestMaxEvents(t *testing.T) {
	c := testCatalog(t)
	cfg := Config{MaxEvents: 100, MaxCost: 5000, MaxString: 16}
	r, err := CompileWith(cfg, c, ruleLabel(`events.size() == 100 && events.all(e, e.item == "new")`))
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]Event, 250)
	for i := range evs {
		item := "old"
		if i >= 150 {
			item = "new"
		}
		evs[i] = Event{Type: "view", Time: daysAgo(float64(300 - i)), Fields: map[string]any{"item": item}}
	}
	v, err := r.Eval(now, nil, evs)
	if err != nil || !v.Bool {
		t.Errorf("got %v %v; want the 100 newest events only", v.Bool, err)
	}
}

func TestInputs(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		rule          string
		inputs        []string
		fields, types string
	}{
		{`count("view", "30d") > 1 && age > 18.0`, []string{"age", "city"}, "age", "view"},
		{`recency("purchase") < 30.0 || count("view", "7d", "category", "sports") > 2`, nil, "", "purchase,view"},
		{`events.size() > 0 && city == "x"`, []string{"city"}, "city", "*"},
		{`count(city, "7d") > 0`, []string{"city"}, "city", "*"},
		{`"age" in fields`, []string{"age", "vip"}, "age,vip", ""},
	}
	for _, tt := range tests {
		r, err := Compile(c, ruleLabel(tt.rule, tt.inputs...))
		if err != nil {
			t.Fatal(err)
		}
		f, ty := r.Inputs()
		if strings.Join(f, ",") != tt.fields || strings.Join(ty, ",") != tt.types {
			t.Errorf("%s: got %v %v, want %s %s", tt.rule, f, ty, tt.fields, tt.types)
		}
	}
}

// CM-2, SR-1: a value records its label version, inputs, event span,
// computation time, expiry and the facts that decided it, survives JSON,
// and explains itself in zh-CN and en (invariant 6).
func TestProvenanceAndExplain(t *testing.T) {
	c := testCatalog(t)
	l := ruleLabel(`count("view", "30d", "category", "sports") >= 2 && age >= 18.0`, "age", "view")
	l.TTL = catalog.Duration(24 * time.Hour)
	r, err := Compile(c, l)
	if err != nil {
		t.Fatal(err)
	}
	v, err := r.Eval(now, map[string]any{"age": 30.0}, subjectEvents())
	if err != nil {
		t.Fatal(err)
	}
	if !v.Bool || v.Label != "l1" || v.Version != 3 || v.Kind != "rule" || v.Confidence != 1 {
		t.Errorf("value %+v", v)
	}
	if v.EventCount != 4 || !v.From.Equal(daysAgo(40)) || !v.To.Equal(daysAgo(1)) {
		t.Errorf("event span: %d events %v – %v; want 4 views, 40 to 1 days ago", v.EventCount, v.From, v.To)
	}
	if !v.Computed.Equal(now) || !v.Expires.Equal(now.Add(24*time.Hour)) {
		t.Errorf("computed %v expires %v", v.Computed, v.Expires)
	}
	if strings.Join(v.Inputs, ",") != "age,event:view" {
		t.Errorf("inputs %v", v.Inputs)
	}
	var found bool
	for _, f := range v.Facts {
		if f.Func == "count" && f.Type == "view" && f.Field == "category" && f.Equals == "sports" && f.Window == "30d" && f.Value == 2 {
			found = true
		}
	}
	if !found {
		t.Errorf("facts %+v lack the sports count", v.Facts)
	}
	zh, en := v.Explain("zh-CN", l), v.Explain("en", l)
	for _, want := range []string{"运动爱好者", "过去30天", "浏览了2次", "sports", "age为30"} {
		if !strings.Contains(zh, want) {
			t.Errorf("zh %q lacks %q", zh, want)
		}
	}
	for _, want := range []string{"Sports fan", "viewed", "2 times", "the last 30 days", "sports", "your age is 30"} {
		if !strings.Contains(en, want) {
			t.Errorf("en %q lacks %q", en, want)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back Value
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Explain("en", l) != en || !back.Computed.Equal(v.Computed) {
		t.Errorf("after JSON: %q, want %q", back.Explain("en", l), en)
	}
}

func TestExplainEveryAggregate(t *testing.T) {
	c := testCatalog(t)
	for _, rule := range []string{
		`sum("purchase", "amount", "30d") > 0.0`, `mean("purchase", "amount", "30d") > 0.0`,
		`min("purchase", "amount", "30d") > 0.0`, `max("purchase", "amount", "30d") > 0.0`,
		`monetary("purchase", "amount", "1y") > 0.0`, `distinct("view", "item", "12h") >= 0`,
		`recency("purchase") < 5.0`, `recency("click") > 5.0`, `frequency("login", "7d") == 0`,
	} {
		l := ruleLabel(rule)
		r, err := Compile(c, l)
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Eval(now, nil, subjectEvents())
		if err != nil {
			t.Fatal(err)
		}
		for _, lang := range []string{"zh-CN", "en"} {
			s := v.Explain(lang, l)
			if len(v.Facts) != 1 || !strings.Contains(s, v.Facts[0].Type) && !strings.Contains(s, verb(v.Facts[0].Type, lang == "zh-CN")) {
				t.Errorf("%s %s: %q does not mention its fact %+v", rule, lang, s, v.Facts)
			}
			t.Logf("%s", s)
		}
	}
}

func BenchmarkRuleEval(b *testing.B) {
	c := testCatalog(b)
	r, err := Compile(c, ruleLabel(`count("view", "30d", "category", "sports") >= 5 && recency("purchase") < 30.0 && monetary("purchase", "amount", "1y") > 100.0 && age >= 18.0`, "age"))
	if err != nil {
		b.Fatal(err)
	}
	events := make([]Event, 50)
	cats := []string{"sports", "books", "music"}
	for i := range events {
		if i%5 == 0 {
			events[i] = Event{Type: "purchase", Time: daysAgo(float64(i)), Fields: map[string]any{"amount": float64(10 + i)}}
		} else {
			events[i] = Event{Type: "view", Time: daysAgo(float64(i)), Fields: map[string]any{"category": cats[i%3]}}
		}
	}
	profile := map[string]any{"age": 30.0}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Eval(now, profile, events); err != nil {
			b.Fatal(err)
		}
	}
}

// The provenance of a value names the events of the types the rule reads,
// whether or not its aggregates ran (a rule may stop before them), every
// event when a type is known only at run time, and none for a model.
func TestProvenanceSpan(t *testing.T) {
	c := testCatalog(t)
	tests := []struct {
		rule     string
		inputs   []string
		count    int
		from, to float64 // days ago
	}{
		{`count("view", "30d") > 0`, nil, 4, 40, 1},
		{`count("purchase", "30d") > 0 && sum("purchase", "amount", "1y") > 0.0`, nil, 3, 400, 3},
		{`count("view", "30d") > 100 || recency("purchase") < 1.0`, nil, 7, 400, 1},
		{`age > 100.0 && count("view", "30d") > 0`, []string{"age"}, 4, 40, 1}, // stops before the aggregate
		{`count(city, "30d") >= 0 && count("view", "30d") > 0`, []string{"city"}, 7, 400, 1},
		{`count("click", "30d") == 0`, nil, 0, 0, 0},
		{`age > 1.0`, []string{"age"}, 0, 0, 0},
	}
	for _, tt := range tests {
		r, err := Compile(c, ruleLabel(tt.rule, tt.inputs...))
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Eval(now, map[string]any{"age": 30.0, "city": "view"}, subjectEvents())
		if err != nil {
			t.Fatal(err)
		}
		var from, to time.Time
		if tt.count > 0 {
			from, to = daysAgo(tt.from), daysAgo(tt.to)
		}
		if v.EventCount != tt.count || !v.From.Equal(from) || !v.To.Equal(to) {
			t.Errorf("%s: %d events %v – %v; want %d, %v days ago – %v days ago", tt.rule, v.EventCount, v.From, v.To, tt.count, tt.from, tt.to)
		}
	}
}

// Evaluations share pooled state: run concurrently and interleaved, every
// rule gives exactly the value it gives alone (no fact, field read or
// event index of one evaluation leaks into another).
func TestEvalConcurrent(t *testing.T) {
	c := testCatalog(t)
	rules := []*catalog.Label{
		ruleLabel(`count("view", "30d", "category", "sports") >= 2 && age >= 18.0`, "age"),
		ruleLabel(`sum("purchase", "amount", "30d") > 0.0 && distinct("view", "item", "1y") > 1 && city == "x"`, "city"),
		ruleLabel(`recency("click") > 5.0 || count(city, "7d") > 0`, "city"),
		ruleLabel(`"age" in fields && mean("purchase", "amount", "2y") > 1.0`, "age", "vip"),
	}
	subjects := []struct {
		profile map[string]any
		events  []Event
	}{
		{map[string]any{"age": 30.0, "city": "x"}, subjectEvents()},
		{map[string]any{"age": 12.0, "city": "view"}, subjectEvents()[:3]},
		{nil, nil},
	}
	compiled := make([]*Rule, len(rules))
	want := make([][]Value, len(rules))
	for i, l := range rules {
		r, err := Compile(c, l)
		if err != nil {
			t.Fatal(err)
		}
		compiled[i] = r
		for _, s := range subjects {
			v, err := r.Eval(now, s.profile, s.events)
			if err != nil {
				t.Fatal(err)
			}
			want[i] = append(want[i], v)
		}
	}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for n := range 200 {
				i, j := (n+g)%len(rules), (n/len(rules)+g)%len(subjects)
				v, err := compiled[i].Eval(now, subjects[j].profile, subjects[j].events)
				if err != nil {
					errs <- err
					return
				}
				a, _ := json.Marshal(v)
				b, _ := json.Marshal(want[i][j])
				if string(a) != string(b) {
					errs <- fmt.Errorf("rule %d subject %d: got %s, want %s", i, j, a, b)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
