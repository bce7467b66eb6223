package catalog

import (
	"fmt"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// TCFMapping says which IAB TCF v2.2 signals stand for consent to a catalog
// purpose when a TC string (or the TCF EU section of a GPP string) is
// recorded for it:
//
//	tcf:
//	  purposes: [1, 3, 4]   # TCF purposes that must all have consent
//	  special_features: [1] # special features that must all be opted in
//	  vendor: 755           # this company's Global Vendor List id, if it has one
//
// With vendor set, the vendor must also have consent and no publisher
// restriction may forbid it a listed purpose.
type TCFMapping struct {
	Purposes        []int `json:"purposes" yaml:"purposes"`
	SpecialFeatures []int `json:"special_features,omitempty" yaml:"special_features,omitempty"`
	Vendor          int   `json:"vendor,omitempty" yaml:"vendor,omitempty"`
}

// USNatMapping says which fields of the GPP US National section (usnat)
// decide a catalog purpose:
//
//	usnat:
//	  opt_outs: [sale, sharing, targeted_advertising] # an opt-out of any refuses
//	  sensitive: [8]   # sensitive-data categories (1–16) that need consent
type USNatMapping struct {
	OptOuts   []string `json:"opt_outs,omitempty" yaml:"opt_outs,omitempty"`
	Sensitive []int    `json:"sensitive,omitempty" yaml:"sensitive,omitempty"`
}

// USNatOptOuts are the opt-out fields of the usnat section a mapping may name.
var USNatOptOuts = []string{"sale", "sharing", "targeted_advertising"}

// Bounds of the ids a mapping may name: TCF v2.2 defines purposes 1–11 and
// special features 1–2; the usnat section (version 2) 16 sensitive-data
// categories.
const (
	maxTCFPurpose   = 11
	maxTCFFeature   = 2
	maxUSNatSensSet = 16
)

var (
	tcfKeys   = []string{"purposes", "special_features", "vendor"}
	usnatKeys = []string{"opt_outs", "sensitive"}
)

// consentStrings decodes a purpose's tcf: and usnat: mappings, checking
// them as it goes so that every problem keeps its line and column.
func (d *decoder) consentStrings(o *obj, what string) (*TCFMapping, *USNatMapping) {
	var t *TCFMapping
	var u *USNatMapping
	consentBasis := d.str(o, "basis", what) == string(BasisConsent)
	if o.has("tcf") {
		m := d.mapping(o.vals["tcf"], what+" tcf", tcfKeys)
		t = &TCFMapping{
			Purposes:        d.ids(m, "purposes", what+" tcf", maxTCFPurpose),
			SpecialFeatures: d.ids(m, "special_features", what+" tcf", maxTCFFeature),
		}
		if m.has("vendor") {
			t.Vendor = int(d.integer(m, "vendor", what+" tcf"))
			if t.Vendor < 1 || t.Vendor > 65535 {
				d.problem(m.at("vendor"), "CN-1", "use the company's Global Vendor List id, 1–65535", "%s tcf vendor %d: not a vendor id", what, t.Vendor)
			}
		}
		if len(t.Purposes) == 0 {
			d.problem(m.at("purposes"), "CN-1", "list the TCF purposes whose consent stands for this purpose, e.g. purposes: [1, 3, 4]",
				"%s tcf: no TCF purposes", what)
		}
		if !consentBasis {
			d.problem(o.at("tcf"), "CN-1", "remove tcf:, or change basis: to consent",
				"%s: a consent string can only decide a purpose based on consent", what)
		}
	}
	if o.has("usnat") {
		m := d.mapping(o.vals["usnat"], what+" usnat", usnatKeys)
		u = &USNatMapping{OptOuts: d.list(m, "opt_outs", what+" usnat"), Sensitive: d.ids(m, "sensitive", what+" usnat", maxUSNatSensSet)}
		for i, name := range u.OptOuts {
			if !contains(USNatOptOuts, name) {
				d.problem(m.item("opt_outs", i), "CN-1", suggest(name, USNatOptOuts), "%s usnat: unknown opt-out %q", what, name)
			}
		}
		if len(u.OptOuts) == 0 && len(u.Sensitive) == 0 {
			d.problem(m.n, "CN-1", "add opt_outs: [sale, sharing, targeted_advertising] or sensitive: [N]", "%s usnat: maps nothing", what)
		}
		if !consentBasis {
			d.problem(o.at("usnat"), "CN-1", "remove usnat:, or change basis: to consent",
				"%s: a consent string can only decide a purpose based on consent", what)
		}
	}
	return t, u
}

// ids decodes a list of whole numbers between 1 and max, without repeats.
func (d *decoder) ids(o *obj, key, what string, max int) []int {
	n := resolve(o.vals[key])
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n, "", fmt.Sprintf("write a list, e.g. %s: [1, 2]", key), "%s %s: want a list of numbers, got %s", what, key, describe(n))
		return nil
	}
	var out []int
	for _, e := range n.Content {
		e = resolve(e)
		v, err := 0, error(nil)
		if e != nil && e.Kind == yaml.ScalarNode && e.ShortTag() == "!!int" {
			v, err = strconv.Atoi(e.Value)
		}
		switch {
		case e == nil || e.Kind != yaml.ScalarNode || e.ShortTag() != "!!int" || err != nil:
			d.problem(e, "", "write each item as a whole number", "%s %s: want a number, got %s", what, key, describe(e))
		case v < 1 || v > max:
			d.problem(e, "CN-1", fmt.Sprintf("use ids 1–%d", max), "%s %s: %d is not a defined id", what, key, v)
		case slices.Contains(out, v):
			d.problem(e, "", "remove the repeat", "%s %s: %d repeated", what, key, v)
		default:
			out = append(out, v)
		}
	}
	return out
}
