package catalog

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// validator checks the decoded catalog against the rules in doc.go.
type validator struct {
	*decoder
	c   *Catalog
	pos *positions
}

var idPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)

// Use-case kinds.
const (
	UseRecommendation = "recommendation"
	UseAudience       = "audience"
	UseDecision       = "decision"
)

// Model kinds.
const (
	ModelLogistic  = "logistic"
	ModelScorecard = "scorecard"
)

var (
	fieldTypes   = []string{TypeString, TypeNumber, TypeBool, TypeTime}
	labelKinds   = []string{KindRule, KindSegment, KindScore, KindRFM, KindBGNBD}
	modelKinds   = []string{ModelLogistic, ModelScorecard}
	useCaseKinds = []string{UseRecommendation, UseAudience, UseDecision}
	tiers        = []string{TierProhibited, TierHigh, TierLimited, TierMinimal}
)

// pricingTags mark use-cases that set prices or terms (FP-1).
var pricingTags = []string{"pricing", "terms"}

// Tags lists the use-case tags the catalog accepts.
var Tags = []string{
	"recruitment", "worker_management", "credit_scoring", "insurance_pricing", "education",
	"essential_services", "pricing", "terms", "marketing", "minors",
	"exploit_vulnerability", "social_scoring", "criminal_risk", "emotion_workplace", "emotion_school",
	"biometric_categorisation",
}

// behaviorCategory is the fideslang parent of preference and trading-habit
// data, which prices and terms may not use (FP-1).
const behaviorCategory = "user.behavior"

func (v *validator) validate(checks []LabelCheck) {
	v.handler()
	v.blocklist()
	v.purposes()
	v.fields()
	v.eventTypes()
	clean := v.labels()
	v.useCases()
	v.packChecks()
	v.labelChecks(checks, clean)
}

func (v *validator) handler() {
	o := v.pos.handler
	h := v.c.Handler
	if !v.pos.top.has("handler") {
		v.problem(v.pos.top.n, "CN-7", "add handler: {name: {zh-CN: …, en: …}, contact: …, officer: …}",
			"catalog: missing handler, the personal-information handler named in every notice")
		return
	}
	v.bilingual(o, "name", "handler", h.Name, "CN-7")
	if h.Contact == "" {
		v.problem(o.at("contact"), "CN-7", "add contact: with an address subjects can reach, e.g. privacy@example.com",
			"handler: missing contact")
	}
	if h.Officer == "" {
		v.problem(o.at("officer"), "RO-4", "add officer: with the contact of the personal-information protection officer",
			"handler: missing officer")
	}
}

func (v *validator) blocklist() {
	for i, t := range v.c.Blocklist {
		if strings.TrimSpace(t) == "" {
			v.problem(v.pos.top.item("blocklist", i), "LP-1", "remove the empty entry", "catalog blocklist: empty term")
		}
	}
}

// bilingual requires zh-CN and en texts under key (CN-7).
func (v *validator) bilingual(o *obj, key, what string, t Text, req string) {
	for _, lang := range []string{"zh-CN", "en"} {
		if t[lang] != "" {
			continue
		}
		if o.sub[key] != nil && o.sub[key][lang] != nil {
			v.problem(o.sub[key][lang], req, fmt.Sprintf("write the %s text", lang), "%s %s: empty %s text", what, key, lang)
			continue
		}
		v.problem(o.at(key), req, fmt.Sprintf("add %s: {zh-CN: …, en: …} with both languages", key),
			"%s: missing %s %s text", what, key, lang)
	}
}

// ids checks one declaration's id: present, well formed and not repeated.
func (v *validator) id(o *obj, key, kind, id string, seen map[string]*yaml.Node, req string) {
	switch {
	case id == "":
		v.problem(o.at(key), req, fmt.Sprintf("add %s: with a unique name", key), "%s: missing %s", kind, key)
	case !idPattern.MatchString(id):
		v.problem(o.at(key), req, "use letters, digits, _ . or -, starting with a letter", "%s %s %q: not a valid name", kind, key, id)
	case seen[id] != nil:
		v.problem(o.at(key), req, "rename or remove one of them",
			"%s %q declared twice (first at line %d)", kind, id, seen[id].Line)
	default:
		seen[id] = o.at(key)
	}
}

func (v *validator) purposes() {
	seen := map[string]*yaml.Node{}
	for i := range v.c.Purposes {
		p, o := &v.c.Purposes[i], v.pos.purposes[i]
		v.id(o, "id", "purpose", p.ID, seen, "CN-1")
		what := named("purpose", p.ID)
		switch {
		case p.Basis == "":
			v.problem(o.at("basis"), "CN-1", "add basis: one of "+basesList(), "%s: missing legal basis", what)
		case !contains(basisNames(), string(p.Basis)):
			v.problem(o.at("basis"), "CN-1", suggest(string(p.Basis), basisNames()), "%s: unknown legal basis %q", what, p.Basis)
		}
		v.bilingual(o, "notice", what, p.Notice, "CN-7")
		if p.NoticeVersion == "" {
			v.problem(o.at("notice_version"), "CN-7", `add notice_version: "1" and raise it whenever the notice changes`,
				"%s: missing notice_version", what)
		}
		switch {
		case p.DataUse == "":
			v.problem(o.at("data_use"), "CN-7", "add data_use: a fideslang data_use key, e.g. personalize.content.profiling",
				"%s: missing data_use", what)
		case !KnownDataUse(p.DataUse):
			v.problem(o.at("data_use"), "CN-7", suggest(p.DataUse, DataUses()),
				"%s: data_use %q is not a fideslang data_use key", what, p.DataUse)
		}
		if len(p.Recipients) > 0 && !p.Separate {
			v.problem(o.at("recipients"), "CN-8", "add separate_consent: true",
				"%s: gives data to other handlers, which needs separate consent", what)
		}
	}
}

func basisNames() []string {
	out := make([]string, len(Bases))
	for i, b := range Bases {
		out[i] = string(b)
	}
	return out
}

func basesList() string { return strings.Join(basisNames(), ", ") }

// suggest is the fix for an unknown name: the nearest known one, or the list.
func suggest(got string, known []string) string {
	if s := nearest(got, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	if len(known) > 12 {
		return "use a key from the fideslang taxonomy (catalog/fideslang)"
	}
	return "use one of " + strings.Join(known, ", ")
}

// refs checks that every name in list key of o is declared; declared says
// whether it is, kind names the declaration to add.
func (v *validator) refs(o *obj, key, what string, names []string, kind, section, req string, declared func(string) bool) {
	seen := map[string]bool{}
	for i, n := range names {
		switch {
		case seen[n]:
			v.problem(o.item(key, i), req, "remove the repeated entry", "%s %s: %q listed twice", what, key, n)
		case !declared(n):
			v.problem(o.item(key, i), req, fmt.Sprintf("declare %s %q under %s: or remove it here", kind, n, section),
				"%s %s: %s %q is not declared", what, key, kind, n)
		}
		seen[n] = true
	}
}

func (v *validator) purposeDeclared(id string) bool { return v.c.Purpose(id) != nil }
func (v *validator) fieldDeclared(name string) bool { return v.c.Field(name) != nil }
func (v *validator) labelDeclared(id string) bool   { return v.c.Label(id) != nil }

func (v *validator) fields() {
	seen := map[string]*yaml.Node{}
	var age *yaml.Node
	for i := range v.c.Fields {
		f, o := &v.c.Fields[i], v.pos.fields[i]
		v.id(o, "name", "field", f.Name, seen, "CM-1")
		what := named("field", f.Name)
		if f.Type == "" {
			f.Type = TypeString
		} else if !contains(fieldTypes, f.Type) {
			v.problem(o.at("type"), "CM-1", suggest(f.Type, fieldTypes), "%s: unknown type %q", what, f.Type)
		}
		v.bounds(f, o, what)
		switch {
		case f.Category == "":
			v.problem(o.at("category"), "CM-5", "add category: a fideslang data_category key, e.g. user.behavior.purchase_history",
				"%s: missing category", what)
		case !KnownCategory(f.Category):
			v.problem(o.at("category"), "CM-5", suggest(f.Category, Categories()),
				"%s: category %q is not a fideslang data_category key", what, f.Category)
		case SensitiveCategory(f.Category):
			if o.has("sensitive") && !f.Sensitive {
				v.problem(o.at("sensitive"), "SM-1", "remove sensitive: false; sensitive categories stay sensitive",
					"%s: category %q is sensitive personal information (PIPL Art. 28)", what, f.Category)
			}
			f.Sensitive = true
		}
		if len(f.Purposes) == 0 {
			v.problem(o.at("purposes"), "CM-1", "add purposes: [the purposes this field is collected for]",
				"%s: declares no purpose", what)
		}
		v.refs(o, "purposes", what, f.Purposes, "purpose", "purposes", "CM-1", v.purposeDeclared)
		if o.blank("retention") {
			v.problem(o.at("retention"), "CM-3", "add retention: how long to keep it, e.g. 365d",
				"%s: no retention period", what)
		}
		if f.Sensitive {
			for j, id := range f.Purposes {
				if p := v.c.Purpose(id); p != nil && !p.Separate {
					v.problem(o.item("purposes", j), "SM-2",
						fmt.Sprintf("add separate_consent: true to purpose %q, or drop it from this field", id),
						"sensitive %s is used for purpose %q, which has no separate consent", what, id)
				}
			}
		}
		if f.Age {
			if age != nil {
				v.problem(o.at("age"), "SM-3", "keep age: true on one field only",
					"%s: a second age field (the first is at line %d)", what, age.Line)
			} else {
				age = o.at("age")
			}
			if f.Type != TypeNumber {
				v.problem(o.at("age"), "SM-3", "set type: number; the age field holds whole years",
					"%s: the age field must be type number, not %s", what, f.Type)
			}
		}
	}
}

// bounds checks a field's optional min and max: numbers only, min ≤ max.
func (v *validator) bounds(f *Field, o *obj, what string) {
	if f.Min == nil && f.Max == nil {
		return
	}
	if f.Type != TypeNumber {
		key := "min"
		if f.Min == nil {
			key = "max"
		}
		v.problem(o.at(key), "", "remove "+key+", or set type: number",
			"%s: min and max bound number fields only, not type %s", what, f.Type)
		return
	}
	if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
		v.problem(o.at("max"), "", "make max at least min",
			"%s: max %v is below min %v", what, *f.Max, *f.Min)
	}
}

func (v *validator) eventTypes() {
	seen := map[string]*yaml.Node{}
	for i := range v.c.EventTypes {
		e, o := &v.c.EventTypes[i], v.pos.events[i]
		v.id(o, "id", "event type", e.ID, seen, "CM-1")
		v.refs(o, "fields", named("event type", e.ID), e.Fields, "field", "fields", "CM-1", v.fieldDeclared)
	}
}
