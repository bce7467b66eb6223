package catalog

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// withMapping inserts lines after the demo catalog's marketing purpose id
// (or after the analytics one), returning the catalog and the 1-based line
// of the first inserted line.
func withMapping(t *testing.T, purpose, lines string) ([]byte, int) {
	t.Helper()
	data, err := os.ReadFile(demoPath)
	if err != nil {
		t.Fatal(err)
	}
	anchor := "  - id: " + purpose + "\n"
	i := strings.Index(string(data), anchor)
	if i < 0 {
		t.Fatalf("demo catalog has no purpose %s", purpose)
	}
	i += len(anchor)
	line := strings.Count(string(data[:i]), "\n") + 1
	return []byte(string(data[:i]) + lines + string(data[i:])), line
}

func TestConsentStringMappings(t *testing.T) {
	data, _ := withMapping(t, "credit", "    tcf: {purposes: [1, 3, 4], special_features: [1], vendor: 755}\n    usnat: {opt_outs: [sale, targeted_advertising], sensitive: [8]}\n")
	c, err := Parse("demo.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Purpose("credit")
	if p.TCF == nil || !slices.Equal(p.TCF.Purposes, []int{1, 3, 4}) || p.TCF.Vendor != 755 || !slices.Equal(p.TCF.SpecialFeatures, []int{1}) {
		t.Errorf("tcf = %+v", p.TCF)
	}
	if p.USNat == nil || !slices.Equal(p.USNat.OptOuts, []string{"sale", "targeted_advertising"}) || !slices.Equal(p.USNat.Sensitive, []int{8}) {
		t.Errorf("usnat = %+v", p.USNat)
	}
	if c.Purpose("personalization").TCF != nil {
		t.Error("an unmapped purpose has a mapping")
	}
}

// CN-1: a mapping that names undefined TCF ids, unknown opt-outs or a
// purpose not based on consent is refused at load, at its line and column.
func TestConsentStringMappingProblems(t *testing.T) {
	cases := []struct {
		purpose, lines string
		at, want       string // the text the problem must point at; its message
	}{
		{"credit", "    tcf: {purposes: [1, 12]}\n", "12]", "12 is not a defined id"},
		{"credit", "    tcf: {purposes: [2, 2]}\n", "2]", "2 repeated"},
		{"credit", "    tcf: {purposes: []}\n", "[]", "no TCF purposes"},
		{"credit", "    tcf: {purposes: [1], vendor: 70000}\n", "70000", "not a vendor id"},
		{"credit", "    tcf: {purposes: [1], venodr: 7}\n", "venodr", `unknown key "venodr"`},
		{"credit", "    tcf: {purposes: [one]}\n", "one", "want a number"},
		{"credit", "    tcf: {special_features: [3], purposes: [1]}\n", "3]", "3 is not a defined id"},
		{"credit", "    usnat: {opt_outs: [sell]}\n", "sell", `unknown opt-out "sell"`},
		{"credit", "    usnat: {sensitive: [17]}\n", "17", "17 is not a defined id"},
		{"credit", "    usnat: {}\n", "{}", "maps nothing"},
		{"analytics", "    tcf: {purposes: [8]}\n", "{purposes", "only decide a purpose based on consent"},
	}
	for _, c := range cases {
		data, first := withMapping(t, c.purpose, c.lines)
		_, err := Parse("demo.yaml", data)
		errs := AsErrors(err)
		if errs == nil {
			t.Errorf("%q: loaded, want %q", c.lines, c.want)
			continue
		}
		var found bool
		for _, p := range errs.Problems {
			if strings.Contains(p.Message, c.want) {
				found = true
				if col := strings.Index(c.lines, c.at) + 1; p.Line != first || p.Column != col {
					t.Errorf("%q: problem at %d:%d, want %d:%d (%s)", c.lines, p.Line, p.Column, first, col, p)
				}
			}
		}
		if !found {
			t.Errorf("%q: problems %v, want %q", c.lines, err, c.want)
		}
	}
}
