package catalog

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/portrait-dev/portrait/rules"
)

// LabelCheck is an extra check of one label, supplied by the label engine
// (which compiles its CEL rule). It runs on the indexed catalog after the
// catalog's own rules pass for that label; an error is reported at the
// label's rule: (or model:) node under LP-1.
type LabelCheck func(c *Catalog, l *Label) error

// Load reads and validates the catalog file at path. On invalid input the
// error is an *Errors listing every problem.
func Load(path string, checks ...LabelCheck) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load catalog %s: %w", path, err)
	}
	return Parse(path, data, checks...)
}

// Parse validates the catalog in data; name is the file name used in
// problems. It returns the indexed catalog with derived flags set (field
// type defaults, sensitivity), or nil and an *Errors listing every problem
// sorted by position.
func Parse(name string, data []byte, checks ...LabelCheck) (*Catalog, error) {
	return ParseWith(rules.Default(), name, data, checks...)
}

// ParseWith is Parse checked against a verified rule pack instead of the
// default pack.
func ParseWith(pack *rules.Pack, name string, data []byte, checks ...LabelCheck) (*Catalog, error) {
	if pack == nil {
		pack = rules.Default()
	}
	d := &decoder{file: name}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 1
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		d.probs = append(d.probs, Problem{File: name, Line: line, Column: 1,
			Message: "not valid YAML: " + err.Error(), Fix: "correct the YAML syntax (indentation, quotes, colons)"})
		return nil, d.errors()
	}
	root := resolve(&doc)
	if isNull(root) {
		d.probs = append(d.probs, Problem{File: name, Line: 1, Column: 1, Message: "the catalog is empty",
			Fix: "declare at least handler:, purposes: and fields: (see examples/demo/catalog.yaml)"})
		return nil, d.errors()
	}
	c, pos := d.catalog(root)
	c.pack = pack
	c.Index()
	v := &validator{decoder: d, c: c, pos: pos}
	v.validate(checks)
	if len(d.probs) > 0 {
		return nil, d.errors()
	}
	c.warnings = v.displayNames()
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func (d *decoder) errors() error {
	e := &Errors{Problems: d.probs}
	e.sort()
	return e
}

// AsErrors returns the *Errors in err's chain, or nil.
func AsErrors(err error) *Errors {
	var e *Errors
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// positions keeps the decoded mapping of every declaration, parallel to the
// catalog's slices, so that validation can point at the offending node.
type positions struct {
	top      *obj
	handler  *obj
	purposes []*obj
	fields   []*obj
	events   []*obj
	labels   []*obj
	models   []*obj // per label; nil when the label has no model
	useCases []*obj
}

var (
	topKeys     = []string{"version", "jurisdiction", "handler", "blocklist", "purposes", "fields", "event_types", "labels", "use_cases"}
	handlerKeys = []string{"name", "contact", "officer"}
	purposeKeys = []string{"id", "title", "basis", "notice", "notice_version", "data_use", "separate_consent", "required",
		"recipients", "identified_output", "assessment", "tcf", "usnat"}
	fieldKeys = []string{"name", "title", "type", "category", "sensitive", "purposes", "retention", "profile", "age",
		"protected", "ground", "actionable", "min", "max"}
	eventKeys = []string{"id", "title", "fields"}
	labelKeys = []string{"id", "name", "description", "kind", "rule", "inputs", "purposes", "version", "owner",
		"features", "k", "seed", "model", "window", "ttl", "sensitive", "event", "horizon"}
	modelKeys   = []string{"kind", "weights", "intercept", "threshold"}
	useCaseKeys = []string{"id", "title", "description", "kind", "purposes", "labels", "fields", "tier", "tags", "model",
		"owner", "live", "notice"}
)

func (d *decoder) catalog(root *yaml.Node) (*Catalog, *positions) {
	c := &Catalog{}
	p := &positions{}
	top := d.mapping(root, "catalog", topKeys)
	p.top = top
	c.Version = d.str(top, "version", "catalog")
	c.Blocklist = d.list(top, "blocklist", "catalog")
	if n := resolve(top.vals["jurisdiction"]); n != nil && n.Kind == yaml.ScalarNode && !isNull(n) {
		c.Jurisdictions = []string{strings.TrimSpace(n.Value)}
		top.items["jurisdiction"] = []*yaml.Node{n}
	} else {
		c.Jurisdictions = d.list(top, "jurisdiction", "catalog")
	}

	p.handler = d.mapping(top.vals["handler"], "handler", handlerKeys)
	if !top.has("handler") {
		p.handler.n = root
	}
	c.Handler = Handler{
		Name:    d.text(p.handler, "name", "handler"),
		Contact: d.str(p.handler, "contact", "handler"),
		Officer: d.str(p.handler, "officer", "handler"),
	}

	for _, n := range d.seq(top.vals["purposes"], "purposes") {
		o := d.mapping(n, "purpose", purposeKeys)
		id := d.str(o, "id", "purpose")
		what := named("purpose", id)
		p.purposes = append(p.purposes, o)
		c.Purposes = append(c.Purposes, Purpose{
			ID:            id,
			Title:         d.text(o, "title", what),
			Basis:         Basis(d.str(o, "basis", what)),
			Notice:        d.text(o, "notice", what),
			NoticeVersion: d.str(o, "notice_version", what),
			DataUse:       d.str(o, "data_use", what),
			Separate:      d.boolean(o, "separate_consent", what),
			Required:      d.boolean(o, "required", what),
			Recipients:    d.list(o, "recipients", what),
			Identified:    d.boolean(o, "identified_output", what),
			Assessment:    d.str(o, "assessment", what),
		})
		c.Purposes[len(c.Purposes)-1].TCF, c.Purposes[len(c.Purposes)-1].USNat = d.consentStrings(o, what)
	}
	for _, n := range d.seq(top.vals["fields"], "fields") {
		o := d.mapping(n, "field", fieldKeys)
		id := d.str(o, "name", "field")
		what := named("field", id)
		p.fields = append(p.fields, o)
		c.Fields = append(c.Fields, Field{
			Name:       id,
			Title:      d.text(o, "title", what),
			Type:       d.str(o, "type", what),
			Category:   d.str(o, "category", what),
			Sensitive:  d.boolean(o, "sensitive", what),
			Purposes:   d.list(o, "purposes", what),
			Retention:  d.duration(o, "retention", what, "CM-3"),
			Profile:    d.boolean(o, "profile", what),
			Age:        d.boolean(o, "age", what),
			Protected:  d.boolean(o, "protected", what),
			Ground:     d.str(o, "ground", what),
			Actionable: d.boolean(o, "actionable", what),
			Min:        d.bound(o, "min", what),
			Max:        d.bound(o, "max", what),
		})
	}
	for _, n := range d.seq(top.vals["event_types"], "event_types") {
		o := d.mapping(n, "event type", eventKeys)
		id := d.str(o, "id", "event type")
		what := named("event type", id)
		p.events = append(p.events, o)
		c.EventTypes = append(c.EventTypes, EventType{ID: id, Title: d.text(o, "title", what), Fields: d.list(o, "fields", what)})
	}
	for _, n := range d.seq(top.vals["labels"], "labels") {
		o := d.mapping(n, "label", labelKeys)
		id := d.str(o, "id", "label")
		what := named("label", id)
		l := Label{
			ID:          id,
			Name:        d.text(o, "name", what),
			Description: d.text(o, "description", what),
			Kind:        d.str(o, "kind", what),
			Rule:        d.str(o, "rule", what),
			Inputs:      d.list(o, "inputs", what),
			Purposes:    d.list(o, "purposes", what),
			Version:     int(d.integer(o, "version", what)),
			Owner:       d.str(o, "owner", what),
			Features:    d.list(o, "features", what),
			K:           int(d.integer(o, "k", what)),
			Seed:        d.integer(o, "seed", what),
			Window:      d.duration(o, "window", what, "LP-1"),
			TTL:         d.duration(o, "ttl", what, "LP-1"),
			Sensitive:   d.boolean(o, "sensitive", what),
			Event:       d.str(o, "event", what),
			Horizon:     d.duration(o, "horizon", what, "LP-1"),
		}
		var mo *obj
		if o.has("model") {
			mo = d.mapping(o.vals["model"], what+" model", modelKeys)
			l.Model = d.model(mo, what+" model")
		}
		p.labels = append(p.labels, o)
		p.models = append(p.models, mo)
		c.Labels = append(c.Labels, l)
	}
	for _, n := range d.seq(top.vals["use_cases"], "use_cases") {
		o := d.mapping(n, "use-case", useCaseKeys)
		id := d.str(o, "id", "use-case")
		what := named("use-case", id)
		p.useCases = append(p.useCases, o)
		c.UseCases = append(c.UseCases, UseCase{
			ID:          id,
			Title:       d.text(o, "title", what),
			Description: d.text(o, "description", what),
			Kind:        d.str(o, "kind", what),
			Purposes:    d.list(o, "purposes", what),
			Labels:      d.list(o, "labels", what),
			Fields:      d.list(o, "fields", what),
			Tier:        d.str(o, "tier", what),
			Tags:        d.list(o, "tags", what),
			Model:       d.str(o, "model", what),
			Owner:       d.str(o, "owner", what),
			Live:        d.boolean(o, "live", what),
			Notice:      d.text(o, "notice", what),
		})
	}
	return c, p
}

func (d *decoder) model(o *obj, what string) *Model {
	m := &Model{Kind: d.str(o, "kind", what)}
	if o.has("intercept") {
		m.Intercept = d.number(o.vals["intercept"], what+" intercept")
	}
	if o.has("threshold") {
		m.Threshold = d.number(o.vals["threshold"], what+" threshold")
	}
	w := resolve(o.vals["weights"])
	if isNull(w) {
		return m
	}
	if w.Kind != yaml.MappingNode {
		d.problem(w, "", "write weights as field: number, e.g. weights: {income: 0.8}", "%s weights: want a mapping of field to weight, got %s", what, describe(w))
		return m
	}
	m.Weights = map[string]float64{}
	o.sub["weights"] = map[string]*yaml.Node{}
	for i := 0; i+1 < len(w.Content); i += 2 {
		k := resolve(w.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.problem(w.Content[i], "", "use a field name as the key", "%s weights: want a field name, got %s", what, describe(k))
			continue
		}
		if _, dup := m.Weights[k.Value]; dup {
			d.problem(k, "", "remove one of them", "%s weights: field %q repeated", what, k.Value)
			continue
		}
		m.Weights[k.Value] = d.number(w.Content[i+1], what+" weight of "+k.Value)
		o.sub["weights"][k.Value] = k
	}
	return m
}

// named is how problems name a declaration: `field "income"`.
func named(kind, id string) string {
	if id == "" {
		return kind
	}
	return kind + " " + strconv.Quote(id)
}
