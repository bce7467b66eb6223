package catalog

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// labels checks every label and returns which ones had no problem of their
// own, so that the label engine's checks run only on sound declarations.
func (v *validator) labels() map[int]bool {
	clean := map[int]bool{}
	seen := map[string]*yaml.Node{}
	for i := range v.c.Labels {
		before := len(v.probs)
		v.label(&v.c.Labels[i], v.pos.labels[i], v.pos.models[i], seen)
		clean[i] = len(v.probs) == before
	}
	return clean
}

func (v *validator) label(l *Label, o, mo *obj, seen map[string]*yaml.Node) {
	v.id(o, "id", "label", l.ID, seen, "LP-1")
	what := named("label", l.ID)
	v.bilingual(o, "name", what, l.Name, "LP-1")
	v.bilingual(o, "description", what, l.Description, "LP-1")
	switch {
	case l.Kind == "":
		v.problem(o.at("kind"), "LP-1", "add kind: one of "+strings.Join(labelKinds, ", "), "%s: missing kind", what)
	case !contains(labelKinds, l.Kind):
		v.problem(o.at("kind"), "LP-1", suggest(l.Kind, labelKinds), "%s: unknown kind %q", what, l.Kind)
	}
	if l.Version < 1 {
		v.problem(o.at("version"), "LP-1", "add version: 1 and raise it whenever the definition changes",
			"%s: version must be 1 or more", what)
	}
	if l.Owner == "" {
		v.problem(o.at("owner"), "LP-1", "add owner: the team answerable for the label", "%s: missing owner", what)
	}
	if len(l.Purposes) == 0 {
		v.problem(o.at("purposes"), "CM-1", "add purposes: [the purposes the label is derived for]", "%s: declares no purpose", what)
	}
	v.refs(o, "purposes", what, l.Purposes, "purpose", "purposes", "CM-1", v.purposeDeclared)
	v.refs(o, "inputs", what, l.Inputs, "field", "fields", "CM-1", v.fieldDeclared)
	v.refs(o, "features", what, l.Features, "field", "fields", "CM-1", v.fieldDeclared)
	v.labelKind(l, o, mo, what)
	v.labelFields(l, o, mo, what)
	if l.Sensitive {
		for j, id := range l.Purposes {
			if p := v.c.Purpose(id); p != nil && !p.Separate {
				v.problem(o.item("purposes", j), "SM-2", fmt.Sprintf("add separate_consent: true to purpose %q", id),
					"sensitive %s (derived from sensitive fields) is used for purpose %q, which has no separate consent", what, id)
			}
		}
	}
	if l.Kind == KindRule && l.Rule != "" {
		v.ruleReads(l, o, what)
	}
}

func (v *validator) labelKind(l *Label, o, mo *obj, what string) {
	if l.Rule != "" && l.Kind != KindRule && l.Kind != "" {
		v.problem(o.at("rule"), "LP-1", "remove rule:, or set kind: rule", "%s: rule: is only for kind rule, not %s", what, l.Kind)
	}
	if l.Model != nil && l.Kind != KindScore && l.Kind != "" {
		v.problem(o.at("model"), "LP-1", "remove model:, or set kind: score", "%s: model: is only for kind score, not %s", what, l.Kind)
	}
	if l.Kind != KindBGNBD && l.Kind != "" {
		for _, key := range []string{"event", "horizon"} {
			if o.has(key) {
				v.problem(o.at(key), "LP-1", fmt.Sprintf("remove %s:, or set kind: bgnbd", key), "%s: %s: is only for kind bgnbd, not %s", what, key, l.Kind)
			}
		}
	}
	switch l.Kind {
	case KindBGNBD:
		v.bgnbd(l, o, what)
	case KindRule:
		if l.Rule == "" {
			v.problem(o.at("rule"), "LP-1", `add rule: a CEL condition, e.g. count("view", "30d") >= 5`, "%s: kind rule needs a rule", what)
		}
	case KindSegment:
		if len(l.Features) == 0 {
			v.problem(o.at("features"), "LP-1", "add features: [numeric fields to cluster on]", "%s: kind segment needs features", what)
		}
		for j, name := range l.Features {
			if f := v.c.Field(name); f != nil && f.Type != TypeNumber {
				v.problem(o.item("features", j), "LP-1", "use number fields as segment features",
					"%s features: field %q is type %s, not number", what, name, f.Type)
			}
		}
		if l.K < 2 {
			v.problem(o.at("k"), "LP-1", "add k: the number of segments, 2 or more", "%s: kind segment needs k of 2 or more", what)
		}
	case KindScore:
		v.model(l, o, mo, what)
	case KindRFM:
		numeric := false
		for _, name := range l.Inputs {
			if f := v.c.Field(name); f != nil && f.Type == TypeNumber {
				numeric = true
			}
		}
		if !numeric {
			v.problem(o.at("inputs"), "LP-1", "add inputs: [the number field holding the amount spent, e.g. amount]",
				"%s: kind rfm needs a number input for the monetary value", what)
		}
	}
}

// bgnbd checks a purchase forecast: the purchase event type it counts is
// declared, and its horizon is given and bounded. It reads only the times
// of those events, so it needs no inputs.
func (v *validator) bgnbd(l *Label, o *obj, what string) {
	switch {
	case l.Event == "":
		v.problem(o.at("event"), "LP-1", "add event: the purchase event type to count, e.g. event: purchase",
			"%s: kind bgnbd needs the purchase event type", what)
	case v.c.EventType(l.Event) == nil:
		v.problem(o.at("event"), "CM-1", fmt.Sprintf("declare event type %q under event_types: or correct the name", l.Event),
			"%s: event type %q is not declared", what, l.Event)
	}
	switch {
	case !o.has("horizon"):
		v.problem(o.at("horizon"), "LP-1", `add horizon: how far ahead to forecast, e.g. horizon: 90d`,
			"%s: kind bgnbd needs a forecast horizon", what)
	case l.Horizon > MaxHorizon:
		v.problem(o.at("horizon"), "LP-1", "forecast at most 3 years ahead, e.g. horizon: 365d",
			"%s: horizon %s is longer than %s", what, l.Horizon, MaxHorizon)
	}
	if len(l.Inputs) > 0 {
		v.problem(o.at("inputs"), "CM-1", "remove inputs:; a forecast reads only the times of its purchase events",
			"%s: kind bgnbd reads no fields, but declares inputs %v", what, l.Inputs)
	}
}

func (v *validator) model(l *Label, o, mo *obj, what string) {
	if l.Model == nil {
		v.problem(o.at("model"), "LP-1", "add model: {kind: logistic, weights: {field: weight}, intercept: 0, threshold: 0.5}",
			"%s: kind score needs a model", what)
		return
	}
	m := l.Model
	switch {
	case m.Kind == "":
		v.problem(mo.at("kind"), "LP-1", "add kind: logistic or scorecard", "%s model: missing kind", what)
	case !contains(modelKinds, m.Kind):
		v.problem(mo.at("kind"), "LP-1", suggest(m.Kind, modelKinds), "%s model: unknown kind %q", what, m.Kind)
	}
	if len(m.Weights) == 0 && mo.blank("weights") {
		v.problem(mo.at("weights"), "LP-1", "add weights: {field: weight} over declared fields", "%s model: no weights", what)
	}
	for _, name := range sortedWeights(m.Weights) {
		f := v.c.Field(name)
		switch {
		case f == nil:
			v.problem(mo.entry("weights", name), "CM-1", fmt.Sprintf("declare field %q under fields: or remove its weight", name),
				"%s model weights: field %q is not declared", what, name)
		case f.Type != TypeNumber && f.Type != TypeBool:
			v.problem(mo.entry("weights", name), "LP-1", "weigh only number or bool fields",
				"%s model weights: field %q is type %s", what, name, f.Type)
		}
	}
	switch {
	case !mo.has("threshold"):
		v.problem(mo.at("threshold"), "LP-1", "add threshold: the score at which the outcome is positive", "%s model: missing threshold", what)
	case m.Kind == ModelLogistic && (m.Threshold <= 0 || m.Threshold >= 1):
		v.problem(mo.at("threshold"), "LP-1", "a logistic model scores a probability: use a threshold between 0 and 1, e.g. 0.5",
			"%s model: threshold %v is outside (0, 1)", what, m.Threshold)
	}
}

// labelFields checks each field a label reads: not protected (FP-2),
// allowed for every purpose of the label (CM-1), and passes on sensitivity
// (SM-1) with a recorded ground for score features (SM-5).
func (v *validator) labelFields(l *Label, o, mo *obj, what string) {
	type use struct {
		name string
		node *yaml.Node
		role string
	}
	var uses []use
	for j, n := range l.Inputs {
		uses = append(uses, use{n, o.item("inputs", j), "input"})
	}
	for j, n := range l.Features {
		uses = append(uses, use{n, o.item("features", j), "feature"})
	}
	if l.Model != nil {
		for _, n := range sortedWeights(l.Model.Weights) {
			uses = append(uses, use{n, mo.entry("weights", n), "model weight"})
		}
	}
	for _, u := range uses {
		f := v.c.Field(u.name)
		if f == nil {
			continue
		}
		if f.Protected {
			v.problem(u.node, "FP-2", fmt.Sprintf("remove %q; protected attributes are kept for bias checks only", u.name),
				"%s: protected field %q may not be a label %s", what, u.name, u.role)
			continue
		}
		for _, p := range l.Purposes {
			if v.c.Purpose(p) != nil && !contains(f.Purposes, p) {
				v.problem(u.node, "CM-1", fmt.Sprintf("add %q to field %q's purposes, or drop the field from the label", p, u.name),
					"%s reads a field not allowed for its purposes: field %q is not declared for purpose %q", what, u.name, p)
			}
		}
		if f.Sensitive {
			l.Sensitive = true
			if u.role == "model weight" && f.Ground == "" {
				v.problem(u.node, "SM-5", fmt.Sprintf("add ground: to field %q, the lawful ground for using it in a model", u.name),
					"%s: sensitive field %q is a model feature without a recorded ground", what, u.name)
			}
		}
	}
}

// ruleReads checks what a rule reads against the declarations: event types
// declared, fields declared, carried by the event type and listed in inputs.
func (v *validator) ruleReads(l *Label, o *obj, what string) {
	at := o.at("rule")
	done := map[ruleRead]bool{}
	for _, r := range ruleReads(l.Rule) {
		if done[r] {
			continue
		}
		done[r] = true
		switch r.kind {
		case "variable":
			if v.c.Field(r.name) != nil && !contains(l.Inputs, r.name) {
				v.problem(at, "CM-1", fmt.Sprintf("add %q to inputs", r.name), "%s: rule reads field %q, which is not in its inputs", what, r.name)
			}
		case "event":
			if v.c.EventType(r.name) == nil {
				v.problem(at, "CM-1", fmt.Sprintf("declare event type %q under event_types: or correct the name", r.name),
					"%s: rule reads event type %q, which is not declared", what, r.name)
			}
		case "field":
			switch {
			case v.c.Field(r.name) == nil:
				v.problem(at, "CM-1", fmt.Sprintf("declare field %q under fields: or correct the name", r.name),
					"%s: rule reads field %q, which is not declared", what, r.name)
			case !contains(l.Inputs, r.name):
				v.problem(at, "CM-1", fmt.Sprintf("add %q to inputs", r.name), "%s: rule reads field %q, which is not in its inputs", what, r.name)
			}
			if e := v.c.EventType(r.event); e != nil && v.c.Field(r.name) != nil && !contains(e.Fields, r.name) {
				v.problem(at, "CM-1", fmt.Sprintf("add %q to the fields of event type %q", r.name, r.event),
					"%s: rule reads field %q of %q events, which do not carry it", what, r.name, r.event)
			}
		case "window":
			if _, err := ParseDuration(r.name); err != nil {
				v.problem(at, "LP-1", `write the window like "30d"`, "%s: rule window: %v", what, err)
			}
		}
	}
}

// labelChecks runs the label engine's checks on labels that passed the
// catalog's own rules.
func (v *validator) labelChecks(checks []LabelCheck, clean map[int]bool) {
	for i := range v.c.Labels {
		if !clean[i] {
			continue
		}
		l, o := &v.c.Labels[i], v.pos.labels[i]
		at := o.n
		if o.has("rule") {
			at = o.at("rule")
		} else if o.has("model") {
			at = o.at("model")
		}
		for _, check := range checks {
			if err := runCheck(check, v.c, l); err != nil {
				v.problem(at, "LP-1", "correct the rule so that the label engine accepts it", "%s: %v", named("label", l.ID), err)
			}
		}
	}
}

// runCheck turns a panicking check into a problem: bad input must never
// crash the loader, wherever the bug is.
func runCheck(check LabelCheck, c *Catalog, l *Label) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("label check failed: %v", r)
		}
	}()
	return check(c, l)
}
