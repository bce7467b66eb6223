package catalog

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// LP-1: the label engine's checks report at the label's rule: or model: node.
func TestLabelChecks(t *testing.T) {
	data, err := os.ReadFile(demoPath)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	check := func(c *Catalog, l *Label) error {
		seen = append(seen, l.ID)
		if c.Label(l.ID) != l {
			t.Errorf("check got a label that is not the indexed one: %s", l.ID)
		}
		switch l.ID {
		case "sports_fan":
			return errors.New("undeclared reference to 'category2'")
		case "credit_score":
			panic("engine bug")
		}
		return nil
	}
	_, err = Parse("demo.yaml", data, check)
	errs := AsErrors(err)
	if errs == nil || len(errs.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	if len(seen) != 6 {
		t.Errorf("check ran on %v, want all six demo labels", seen)
	}
	lines := strings.Split(string(data), "\n")
	for _, p := range errs.Problems {
		if p.Requirement != "LP-1" {
			t.Errorf("requirement = %q, want LP-1", p.Requirement)
		}
		line := lines[p.Line-1]
		switch {
		case strings.Contains(p.Message, "category2"):
			if !strings.HasPrefix(strings.TrimSpace(line), "rule:") || p.Column != strings.Index(line, "'")+1 {
				t.Errorf("sports_fan problem at %d:%d (%q), want the rule value", p.Line, p.Column, line)
			}
		case strings.Contains(p.Message, "engine bug"):
			if strings.TrimSpace(line) != "model:" && !strings.HasPrefix(strings.TrimSpace(line), "kind: logistic") {
				t.Errorf("credit_score problem at %d:%d (%q), want the model", p.Line, p.Column, line)
			}
		default:
			t.Errorf("unexpected problem %s", p)
		}
	}
}

// Checks run only on labels that passed the catalog's own rules, so the
// engine never sees a half-declared label.
func TestLabelChecksSkipBadLabels(t *testing.T) {
	data, err := os.ReadFile("testdata/labels.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	_, err = Parse("labels.yaml", data, func(c *Catalog, l *Label) error {
		seen = append(seen, l.ID)
		return nil
	})
	if AsErrors(err) == nil {
		t.Fatal("labels.yaml should fail")
	}
	if len(seen) != 0 {
		t.Errorf("checks ran on labels with problems: %v", seen)
	}
}

func TestRuleReads(t *testing.T) {
	got := ruleReads(`count("view", "30d", "category", "sports") >= 5 && city == "x" && e.city != "" && ` +
		`sum('purchase', r"amount", """90d""") > max("purchase", "price", "7d") && size(items) > 0 && count("a", "b", "c")`)
	want := []ruleRead{
		{"event", "view", ""}, {"field", "category", "view"}, {"window", "30d", ""},
		{"variable", "city", ""},
		{"variable", "e", ""},
		{"event", "purchase", ""}, {"field", "amount", "purchase"}, {"window", "90d", ""},
		{"event", "purchase", ""}, {"field", "price", "purchase"}, {"window", "7d", ""},
		{"variable", "items", ""},
	}
	if len(got) != len(want) {
		t.Fatalf("ruleReads = %v\nwant %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("read %d = %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{`count("view"`, `"unterminated`, `sum(`, `)))`, `r'`} {
		ruleReads(bad) // must not panic
	}
}

func TestTaxonomy(t *testing.T) {
	for _, k := range []string{"user.location.precise", "user.financial", "user.behavior.purchase_history"} {
		if !KnownCategory(k) {
			t.Errorf("%s should be a fideslang category", k)
		}
	}
	if KnownCategory("user.genetic") || !KnownDataUse("personalize.content.profiling") || KnownDataUse("user") {
		t.Error("taxonomy lookups wrong")
	}
	// SM-1: PIPL Art. 28 categories and everything under them.
	for k, want := range map[string]bool{
		"user.biometric.fingerprint":        true,
		"user.health_and_medical.genetic":   true,
		"user.financial.bank_account":       true,
		"user.location.precise":             true,
		"user.location.imprecise":           false,
		"user.childrens":                    true,
		"user.demographic.religious_belief": true,
		"user.demographic.race_ethnicity":   true,
		"user.criminal_history":             true,
		"user.demographic.age_range":        false,
		"user.behavior.purchase_history":    false,
		"user.financialx":                   false,
	} {
		if SensitiveCategory(k) != want {
			t.Errorf("SensitiveCategory(%s) = %v, want %v", k, !want, want)
		}
	}
	for _, s := range sensitiveCategories {
		if !KnownCategory(s) {
			t.Errorf("sensitive category %s is not in the taxonomy", s)
		}
	}
}

func TestNearest(t *testing.T) {
	for in, want := range map[string]string{"retension": "retention", "purpose": "purposes", "recommender": "recommendation", "zzz": ""} {
		if got := nearest(in, []string{"retention", "purposes", "recommendation", "fields"}); got != want {
			t.Errorf("nearest(%q) = %q, want %q", in, got, want)
		}
	}
}
