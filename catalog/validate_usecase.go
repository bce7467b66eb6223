package catalog

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

func (v *validator) useCases() {
	seen := map[string]*yaml.Node{}
	for i := range v.c.UseCases {
		v.useCase(&v.c.UseCases[i], v.pos.useCases[i], seen)
	}
}

func (v *validator) useCase(u *UseCase, o *obj, seen map[string]*yaml.Node) {
	v.id(o, "id", "use-case", u.ID, seen, "RO-9")
	what := named("use-case", u.ID)
	switch {
	case u.Kind == "":
		v.problem(o.at("kind"), "RO-9", "add kind: one of "+strings.Join(useCaseKinds, ", "), "%s: missing kind", what)
	case !contains(useCaseKinds, u.Kind):
		v.problem(o.at("kind"), "RO-9", suggest(u.Kind, useCaseKinds), "%s: unknown kind %q", what, u.Kind)
	}
	switch {
	case u.Tier == "":
		v.problem(o.at("tier"), "RO-9", "add tier: one of "+strings.Join(tiers, ", "), "%s: missing risk tier", what)
	case u.Tier == TierProhibited:
		v.problem(o.at("tier"), "FP-5", "remove the use-case: prohibited practices may not be declared",
			"%s is refused: tier prohibited names a practice forbidden by AI Act Art. 5", what)
	case !contains(tiers, u.Tier):
		v.problem(o.at("tier"), "RO-9", suggest(u.Tier, tiers), "%s: unknown risk tier %q", what, u.Tier)
	}
	v.tags(u, o, what)
	if len(u.Purposes) == 0 {
		v.problem(o.at("purposes"), "CN-1", "add purposes: [the purposes this use-case serves]", "%s: declares no purpose", what)
	}
	v.refs(o, "purposes", what, u.Purposes, "purpose", "purposes", "CN-1", v.purposeDeclared)
	v.refs(o, "labels", what, u.Labels, "label", "labels", "LP-1", v.labelDeclared)
	v.refs(o, "fields", what, u.Fields, "field", "fields", "CM-1", v.fieldDeclared)
	for j, name := range u.Fields {
		f := v.c.Field(name)
		if f == nil {
			continue
		}
		if f.Protected {
			v.problem(o.item("fields", j), "FP-2", fmt.Sprintf("remove %q; protected attributes are kept for bias checks only", name),
				"%s: protected field %q may not be used by a use-case", what, name)
		}
		for _, p := range u.Purposes {
			if v.c.Purpose(p) != nil && !contains(f.Purposes, p) {
				v.problem(o.item("fields", j), "CM-1", fmt.Sprintf("add %q to field %q's purposes, or drop the field here", p, name),
					"%s reads a field not allowed for its purposes: field %q is not declared for purpose %q", what, name, p)
			}
		}
	}
	for j, id := range u.Labels {
		v.labelPurposes(u, v.c.Label(id), o.item("labels", j), what)
	}
	v.useCaseModel(u, o, what)
	v.highRisk(u, o, what)
	v.pricing(u, o, what)
}

// labelPurposes requires a label used by a use-case to be derived for every
// purpose of the use-case (CM-1).
func (v *validator) labelPurposes(u *UseCase, l *Label, at *yaml.Node, what string) {
	if l == nil {
		return
	}
	for _, p := range u.Purposes {
		if v.c.Purpose(p) != nil && !contains(l.Purposes, p) {
			v.problem(at, "CM-1", fmt.Sprintf("add %q to label %q's purposes, or drop the label here", p, l.ID),
				"%s uses label %q, which is not declared for purpose %q", what, l.ID, p)
		}
	}
}

func (v *validator) tags(u *UseCase, o *obj, what string) {
	seen := map[string]bool{}
	for j, tag := range u.Tags {
		at := o.item("tags", j)
		switch {
		case seen[tag]:
			v.problem(at, "RO-9", "remove the repeated tag", "%s tags: %q listed twice", what, tag)
		case v.prohibited(tag) != nil:
			p := v.prohibited(tag)
			v.ruled(at, p.Requirement, p.ID, "remove the use-case: prohibited practices may not be declared",
				"%s is refused: %s", what, p.Clause)
		case !v.knownTag(tag):
			v.problem(at, "RO-9", suggest(tag, Tags), "%s: unknown tag %q", what, tag)
		}
		seen[tag] = true
	}
}

// useCaseModel requires a decision to name the score label that decides
// (AD-1).
func (v *validator) useCaseModel(u *UseCase, o *obj, what string) {
	if u.Model == "" {
		if u.Kind == UseDecision {
			v.problem(o.at("model"), "AD-1", "add model: the id of the score label that decides",
				"%s: a decision use-case must name its model", what)
		}
		return
	}
	l := v.c.Label(u.Model)
	switch {
	case l == nil:
		v.problem(o.at("model"), "AD-1", fmt.Sprintf("declare a score label %q under labels: or correct the name", u.Model),
			"%s model: label %q is not declared", what, u.Model)
	case l.Kind != KindScore && l.Kind != KindBGNBD:
		v.problem(o.at("model"), "AD-1", "name a label of kind score or bgnbd",
			"%s model: label %q is kind %s, not score or bgnbd", what, u.Model, l.Kind)
	default:
		v.labelPurposes(u, l, o.at("model"), what)
	}
}

// highRisk requires an impact assessment on every purpose of an automated
// decision (AD-1, FA-1) or high-risk use (RO-9), and an owner answerable
// for it (RO-7).
func (v *validator) highRisk(u *UseCase, o *obj, what string) {
	req := ""
	switch {
	case u.Kind == UseDecision:
		req = "AD-1"
	case u.Tier == TierHigh:
		req = "RO-9"
	default:
		return
	}
	for j, id := range u.Purposes {
		if p := v.c.Purpose(id); p != nil && p.Assessment == "" {
			v.problem(o.item("purposes", j), req, fmt.Sprintf("add assessment: the id of the impact assessment on record to purpose %q", id),
				"%s needs an impact assessment, but purpose %q has none", what, id)
		}
	}
	if u.Owner == "" {
		v.problem(o.at("owner"), "RO-7", "add owner: the team answerable for the use-case", "%s: missing owner", what)
	}
}

// pricing refuses preference and trading-habit data in prices and terms,
// whether read directly, through a label or through the model (FP-1).
func (v *validator) pricing(u *UseCase, o *obj, what string) {
	priced := false
	for _, t := range pricingTags {
		priced = priced || contains(u.Tags, t)
	}
	if !priced {
		return
	}
	behavior := func(name string) bool {
		f := v.c.Field(name)
		return f != nil && Under(f.Category, behaviorCategory)
	}
	refuse := func(at *yaml.Node, via, name string) {
		v.problem(at, "FP-1", fmt.Sprintf("remove %s; set prices and terms without preference or trading-habit data", via),
			"%s sets prices or terms from field %q, whose category %q is preference or trading-habit data (%s)",
			what, name, v.c.Field(name).Category, via)
	}
	for j, name := range u.Fields {
		if behavior(name) {
			refuse(o.item("fields", j), fmt.Sprintf("field %q", name), name)
		}
	}
	for j, id := range u.Labels {
		if l := v.c.Label(id); l != nil {
			for _, name := range l.Fields() {
				if behavior(name) {
					refuse(o.item("labels", j), fmt.Sprintf("label %q", id), name)
				}
			}
		}
	}
	if l := v.c.Label(u.Model); l != nil {
		for _, name := range l.Fields() {
			if behavior(name) {
				refuse(o.at("model"), fmt.Sprintf("model %q", u.Model), name)
			}
		}
	}
}
