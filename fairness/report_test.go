package fairness

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func dec(group string, sel bool) Observation {
	return Observation{Groups: []string{group}, Selected: sel}
}

func TestAuditRefusals(t *testing.T) {
	one := []Observation{dec("a", true)}
	cases := []struct {
		name string
		cfg  Config
		rows []Observation
		want string
	}{
		{"no attribute", Config{}, one, "no protected attribute"},
		{"no rows", Config{Attributes: []string{"g"}}, nil, "no decisions"},
		{"wrong width", Config{Attributes: []string{"g", "h"}}, one, "decision 1 has 1 group values"},
		{"min share", Config{Attributes: []string{"g"}, MinShare: 1}, one, "min share"},
		{"threshold", Config{Attributes: []string{"g"}, Threshold: 2}, one, "threshold"},
		{"same outcomes", Config{Attributes: []string{"g"}}, []Observation{{Groups: []string{"a"}, HasOutcome: true, Outcome: true}}, "all 1 known outcomes are positive"},
		{"too many attributes", Config{Attributes: []string{"a", "b", "c", "d", "e", "f", "g"}}, one, "at most 6"},
	}
	for _, tc := range cases {
		_, err := Audit(tc.cfg, tc.rows)
		if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInput with %q", tc.name, err, tc.want)
		}
	}
}

// FP-3: undefined quantities are null with a note, never NaN.
func TestAuditNulls(t *testing.T) {
	// Nobody selected: no reference rate, so no impact ratios.
	rep, err := Audit(Config{Attributes: []string{"g"}}, []Observation{dec("a", false), dec("b", false)})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rep.Groups {
		if g.ImpactRatio != nil {
			t.Errorf("%s: impact ratio %v with no selection", g.Name, *g.ImpactRatio)
		}
	}
	if len(rep.Sections[0].Notes) == 0 || len(rep.Alerts) != 0 {
		t.Errorf("no-selection report: notes %v alerts %v", rep.Sections[0].Notes, rep.Alerts)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not encode: %v", err)
	}

	// Every group under the minimum share: nothing compared, all disclosed.
	var rows []Observation
	for i := range 60 {
		rows = append(rows, dec(string(rune('A'+i%60)), i%2 == 0))
	}
	rep, err = Audit(Config{Attributes: []string{"g"}, MinShare: DefaultMinShare}, rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Excluded) != 60 || rep.Sections[0].DemographicParityDifference != nil || rep.Sections[0].Reference != "" {
		t.Errorf("all-small report: %d excluded, section %+v", len(rep.Excluded), rep.Sections[0])
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Errorf("report does not encode: %v", err)
	}
}
