package catalog

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portrait-dev/portrait/rules"
)

// Jurisdiction codes, shared with package rights.
const (
	JurisdictionCN = "CN"
	JurisdictionEU = "EU"
)

// LoadWith is Load checked against pack instead of the default pack.
func LoadWith(pack *rules.Pack, path string, checks ...LabelCheck) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load catalog %s: %w", path, err)
	}
	return ParseWith(pack, path, data, checks...)
}

// Pack returns the rule pack the catalog was checked against.
func (c *Catalog) Pack() *rules.Pack {
	if c.pack == nil {
		return rules.Default()
	}
	return c.pack
}

// Refused returns the lexicon hits of text that refuse a declaration, with
// the pack's rule ids: what an audience expression's string literals are
// checked with (LP-2).
func (c *Catalog) Refused(text string) []rules.Hit {
	var out []rules.Hit
	for _, h := range c.Pack().Match(text) {
		if h.Entry.Action == rules.Refuse {
			out = append(out, h)
		}
	}
	for _, e := range c.Blocklist {
		if strings.TrimSpace(e) != "" && rules.Contains(text, e) {
			out = append(out, rules.Hit{Entry: &rules.Entry{ID: "CATALOG-BLOCKLIST", Category: blockExtra,
				Action: rules.Refuse, Requirement: "LP-1", Means: "a term on the catalog's blocklist"}, Term: e})
		}
	}
	return out
}

// StringLiterals returns the string literals of a CEL expression, as
// written: what a rule or audience matches on.
func StringLiterals(expr string) []string {
	var out []string
	for _, t := range tokenize(expr) {
		if t.kind == 's' && t.text != "" {
			out = append(out, t.text)
		}
	}
	return out
}

const blockExtra = "catalog blocklist"

// ruled records a problem that a pack rule found, naming the rule.
func (v *validator) ruled(n *yaml.Node, req, rule, fix, format string, args ...any) {
	before := len(v.probs)
	v.problem(n, req, fix, format, args...)
	if len(v.probs) > before {
		p := &v.probs[len(v.probs)-1]
		p.Rule = rule
		p.Message += " (rule " + rule + ")"
	}
}

// text is one piece of a declaration that the lexicon is matched against.
type text struct {
	s    string
	node *yaml.Node
}

type hit struct {
	rules.Hit
	node *yaml.Node
}

// texts returns the id, the texts of keys in every language and, for a
// rule, its string literals.
func texts(id string, o *obj, keys []string, ts []Text, rule string) []text {
	out := []text{{id, o.at("id")}}
	for i, key := range keys {
		t := ts[i]
		langs := make([]string, 0, len(t))
		for lang := range t {
			langs = append(langs, lang)
		}
		sort.Strings(langs)
		for _, lang := range langs {
			out = append(out, text{t[lang], o.entry(key, lang)})
		}
	}
	for _, lit := range StringLiterals(rule) {
		out = append(out, text{lit, o.at("rule")})
	}
	return out
}

// match returns every lexicon hit in ts, each entry once, at the first text
// that hits it; refusing hits are reported (each spelling once).
func (v *validator) match(what string, ts []text) []hit {
	var hits []hit
	seen := map[string]bool{}
	reported := map[string]bool{}
	for _, t := range ts {
		for _, h := range v.c.Pack().Match(t.s) {
			if h.Entry.Action == rules.Refuse && !reported[h.Term] {
				reported[h.Term] = true
				v.refuse(what, t.node, h)
			}
			if !seen[h.Entry.ID] {
				seen[h.Entry.ID] = true
				hits = append(hits, hit{h, t.node})
			}
		}
		for _, e := range v.c.Blocklist {
			if strings.TrimSpace(e) != "" && !reported[e] && rules.Contains(t.s, e) {
				reported[e] = true
				v.problem(t.node, "LP-1", "rename it; the term is on the catalog's blocklist:", "%s uses the blocked term %q", what, strings.ToLower(e))
			}
		}
	}
	return hits
}

func (v *validator) refuse(what string, at *yaml.Node, h rules.Hit) {
	e := h.Entry
	fix := e.Fix
	if fix == "" {
		fix = "rename or remove it"
	}
	switch e.Category {
	case "protected":
		v.ruled(at, e.Requirement, e.ID, fix,
			"%s names a protected characteristic (%q): %s; labels and use-cases may not discriminate", what, h.Term, e.Means)
	case "criminal_risk":
		v.ruled(at, e.Requirement, e.ID, fix, "%s is a criminal-risk label (%q), prohibited by AI Act Art. 5(1)(d)", what, h.Term)
	default:
		v.ruled(at, e.Requirement, e.ID, fix, "%s uses the blocked term %q (%s)", what, h.Term, e.Category)
	}
}

func has(hits []hit, id string) *hit {
	for i := range hits {
		if hits[i].Entry.ID == id {
			return &hits[i]
		}
	}
	return nil
}

// packChecks applies the rule pack: jurisdictions, field names and
// retention caps, label and use-case wording and inferences, tier floors,
// decisions, minors and assessments.
func (v *validator) packChecks() {
	v.jurisdictions()
	for i := range v.c.Purposes {
		v.purposePack(&v.c.Purposes[i], v.pos.purposes[i])
	}
	for i := range v.c.Fields {
		v.fieldPack(&v.c.Fields[i], v.pos.fields[i])
	}
	for i := range v.c.Labels {
		v.labelPack(&v.c.Labels[i], v.pos.labels[i])
	}
	for i := range v.c.UseCases {
		v.useCasePack(&v.c.UseCases[i], v.pos.useCases[i])
	}
}

// jurisdictions checks the declared jurisdictions and, under each, the
// legal bases of every purpose (PIPL Art. 13 has no legitimate interests).
func (v *validator) jurisdictions() {
	if len(v.c.Jurisdictions) == 0 {
		v.c.Jurisdictions = []string{JurisdictionCN}
	}
	pack := v.c.Pack()
	for i, code := range v.c.Jurisdictions {
		j := pack.Jurisdiction(code)
		if j == nil {
			var known []string
			for _, j := range pack.Juris {
				known = append(known, j.Code)
			}
			v.problem(v.pos.top.item("jurisdiction", i), "CN-1", suggest(code, known), "catalog: unknown jurisdiction %q", code)
			continue
		}
		for k := range v.c.Purposes {
			p := &v.c.Purposes[k]
			if p.Basis != "" && contains(basisNames(), string(p.Basis)) && !contains(j.Bases, string(p.Basis)) {
				v.ruled(v.pos.purposes[k].at("basis"), j.Requirement, j.ID, "use one of "+strings.Join(j.Bases, ", "),
					"purpose %q: basis %s is not a legal basis under %s (jurisdiction %s)", p.ID, p.Basis, j.Law, j.Code)
			}
		}
	}
}

func (v *validator) purposePack(p *Purpose, o *obj) {
	for _, a := range v.c.Pack().Assess {
		if a.When == "identified_output" && p.Identified && p.Assessment == "" {
			v.ruled(o.at("identified_output"), a.Requirement, a.ID,
				"add assessment: the id of the signed impact assessment on record, or remove identified_output",
				"purpose %q outputs identified audiences without an impact assessment", p.ID)
		}
	}
}

// marketing reports whether purpose id is for marketing under the minors rules.
func (v *validator) marketing(id string) bool {
	p := v.c.Purpose(id)
	if p == nil {
		return false
	}
	for _, use := range v.c.Pack().Minors.MarketingUses {
		if Under(p.DataUse, use) {
			return true
		}
	}
	return false
}

func (v *validator) fieldPack(f *Field, o *obj) {
	what := named("field", f.Name)
	pack := v.c.Pack()
	for _, h := range pack.Match(f.Name) {
		if dc := h.Entry.DataCategory; dc != "" && f.Category != "" && !Under(f.Category, dc) {
			v.ruled(o.at("category"), "SM-1", h.Entry.ID,
				fmt.Sprintf("declare it under category %s (sensitive: separate consent) or rename it", dc),
				"%s is named as %s (%q) but declared under %q", what, h.Entry.Means, h.Term, f.Category)
		}
	}
	if c, ok := pack.RetentionCap(f.Category); ok && f.Retention > 0 &&
		time.Duration(f.Retention) > time.Duration(c.MaxDays)*24*time.Hour {
		v.ruled(o.at("retention"), c.Requirement, c.ID, fmt.Sprintf("keep it at most %dd", c.MaxDays),
			"%s: retention %s is longer than the cap of %dd for category %s", what, f.Retention, c.MaxDays, c.Category)
	}
	if f.Age {
		for j, id := range f.Purposes {
			if v.marketing(id) {
				m := pack.Minors
				v.ruled(o.item("purposes", j), m.Requirement, m.AgeRule, fmt.Sprintf("drop purpose %q from the age field", id),
					"%s: the age field may not be used for marketing purpose %q", what, id)
			}
		}
	}
}

// reads returns the fields a label reads, including those its rule names.
func (v *validator) reads(l *Label) []string {
	out := l.Fields()
	if l.Kind == KindRule {
		for _, r := range ruleReads(l.Rule) {
			if (r.kind == "field" || r.kind == "variable") && v.c.Field(r.name) != nil && !slices.Contains(out, r.name) {
				out = append(out, r.name)
			}
		}
	}
	return out
}

func (v *validator) readsAge(fields []string) string {
	for _, name := range fields {
		if f := v.c.Field(name); f != nil && f.Age {
			return name
		}
	}
	return ""
}

func (v *validator) labelPack(l *Label, o *obj) {
	what := named("label", l.ID)
	id := strings.NewReplacer("_", " ", "-", " ", ".", " ").Replace(l.ID)
	hits := v.match(what, texts(id, o, []string{"name", "description"}, []Text{l.Name, l.Description}, l.Rule))
	reads := v.reads(l)
	// The names of the fields a label reads count for inferences too: a
	// rule over a field called pharmacy_visits infers health as surely as
	// one that matches "药房".
	for _, name := range reads {
		for _, h := range v.c.Pack().Match(name) {
			if has(hits, h.Entry.ID) == nil {
				hits = append(hits, hit{h, o.at("inputs")})
			}
		}
	}
	for _, in := range v.c.Pack().Inferences {
		var terms []string
		var at *yaml.Node
		ok := true
		for _, group := range in.AllOf {
			var found *hit
			for _, id := range group {
				if found = has(hits, id); found != nil {
					break
				}
			}
			if found == nil {
				ok = false
				break
			}
			terms = append(terms, fmt.Sprintf("%q", found.Term))
			if at == nil {
				at = found.node
			}
		}
		if !ok {
			continue
		}
		if in.Reads != "" {
			field := ""
			for _, name := range reads {
				if f := v.c.Field(name); f != nil && Under(f.Category, in.Reads) {
					field = name
					break
				}
			}
			if field == "" {
				continue
			}
			terms = append(terms, fmt.Sprintf("field %q (%s)", field, v.c.Field(field).Category))
		}
		v.ruled(at, in.Requirement, in.ID, in.Fix, "%s infers %s from %s", what, in.Infers, strings.Join(terms, " with "))
	}
	var purposes []string
	for _, p := range l.Purposes {
		if v.marketing(p) {
			purposes = append(purposes, p)
		}
	}
	v.minors(what, o, hits, purposes, reads)
}

// minors refuses targeting minors for marketing, by words or purpose, and
// reading the age field for marketing (SM-3).
func (v *validator) minors(what string, o *obj, hits []hit, marketing []string, reads []string) {
	m := v.c.Pack().Minors
	if m.Age == 0 {
		return
	}
	if minor := has(hits, m.Terms); minor != nil {
		why := ""
		if len(marketing) > 0 {
			why = fmt.Sprintf("marketing purpose %q", marketing[0])
		} else if mk := has(hits, m.Marketing); mk != nil {
			why = fmt.Sprintf("%q", mk.Term)
		}
		if why != "" {
			v.ruled(minor.node, m.Requirement, m.TargetRule, "remove it: minors may not be targeted for marketing",
				"%s targets minors under %d (%q) for marketing (%s)", what, m.Age, minor.Term, why)
		}
	}
	if age := v.readsAge(reads); age != "" && len(marketing) > 0 {
		v.ruled(o.at("purposes"), m.Requirement, m.AgeRule, fmt.Sprintf("do not read %q for marketing", age),
			"%s reads the age field %q for marketing purpose %q", what, age, marketing[0])
	}
}

func (v *validator) useCasePack(u *UseCase, o *obj) {
	what := named("use-case", u.ID)
	pack := v.c.Pack()
	id := strings.NewReplacer("_", " ", "-", " ", ".", " ").Replace(u.ID)
	ts := texts(id, o, []string{"description", "notice"}, []Text{u.Description, u.Notice}, "")
	hits := v.match(what, ts)
	// The purposes' notices say what the use-case is for, too.
	var noticeHits []rules.Hit
	for _, pid := range u.Purposes {
		if p := v.c.Purpose(pid); p != nil {
			for _, lang := range []string{"zh-CN", "en"} {
				noticeHits = append(noticeHits, pack.Match(p.Notice[lang])...)
			}
		}
	}

	v.floors(u, o, what, hits)

	if u.Kind != UseDecision && u.Kind != "" {
	decisions:
		for _, d := range pack.Decisions {
			for _, id := range d.Lexicon {
				term := ""
				if h := has(hits, id); h != nil {
					term = h.Term
				} else if h := rules.Has(noticeHits, id); h {
					for _, nh := range noticeHits {
						if nh.Entry.ID == id {
							term = nh.Term
						}
					}
				}
				if term != "" {
					v.ruled(o.at("kind"), d.Requirement, d.ID, "set kind: decision, with a score model, explanation and human review, or remove the use",
						"%s decides eligibility, price or terms (%q) but is kind %s: such decisions need an explanation and an appeal", what, term, u.Kind)
					break decisions
				}
			}
		}
	}

	var marketing []string
	for _, p := range u.Purposes {
		if v.marketing(p) {
			marketing = append(marketing, p)
		}
	}
	reads := slices.Clone(u.Fields)
	for _, id := range append(slices.Clone(u.Labels), u.Model) {
		if l := v.c.Label(id); l != nil {
			reads = append(reads, v.reads(l)...)
		}
	}
	v.minors(what, o, hits, marketing, reads)

	if distinct(u.Purposes) > 1 {
		for _, a := range pack.Assess {
			if a.When != "combined_purposes" {
				continue
			}
			for j, id := range u.Purposes {
				if p := v.c.Purpose(id); p != nil && p.Assessment == "" {
					v.ruled(o.item("purposes", j), a.Requirement, a.ID,
						fmt.Sprintf("add assessment: to purpose %q, the signed impact assessment of combining them, or use one purpose", id),
						"%s combines data collected for different purposes, but purpose %q has no assessment on record", what, id)
				}
			}
		}
	}
}

func distinct(list []string) int {
	seen := map[string]bool{}
	for _, s := range list {
		seen[s] = true
	}
	return len(seen)
}

// floors raises nothing: it refuses a tier below what the pack gives for the
// use-case's data uses, kind, tags and wording, and a wording that names a
// practice without its tag.
func (v *validator) floors(u *UseCase, o *obj, what string, hits []hit) {
	have := rules.TierRank(u.Tier)
	if have < 0 || u.Tier == TierProhibited {
		return
	}
	fl := v.c.Pack().Floors
	type need struct {
		f   rules.Floor
		why string
	}
	var needs []need
	for _, f := range fl.Tags {
		if contains(u.Tags, f.Tag) {
			needs = append(needs, need{f, "it is tagged " + f.Tag})
		}
	}
	for _, f := range fl.Terms {
		h := has(hits, f.Lexicon)
		if h == nil {
			continue
		}
		needs = append(needs, need{f, fmt.Sprintf("it is described as %s (%q)", h.Entry.Category, h.Term)})
		if f.Tag != "" && !contains(u.Tags, f.Tag) {
			at := o.at("tags")
			v.ruled(at, f.Requirement, f.ID, fmt.Sprintf("add %s to tags: so that its rules apply", f.Tag),
				"%s is described as %s (%q) but not tagged %s", what, h.Entry.Category, h.Term, f.Tag)
		}
	}
	for _, f := range fl.DataUse {
		for _, pid := range u.Purposes {
			if p := v.c.Purpose(pid); p != nil && Under(p.DataUse, f.DataUse) {
				needs = append(needs, need{f, fmt.Sprintf("purpose %q has data use %s", pid, p.DataUse)})
				break
			}
		}
	}
	for _, f := range fl.Kind {
		if u.Kind == f.Kind {
			needs = append(needs, need{f, "it is kind " + u.Kind})
		}
	}
	var worst *need
	for i := range needs {
		if rules.TierRank(needs[i].f.Tier) > have && (worst == nil || rules.TierRank(needs[i].f.Tier) > rules.TierRank(worst.f.Tier)) {
			worst = &needs[i]
		}
	}
	if worst != nil {
		v.ruled(o.at("tier"), worst.f.Requirement, worst.f.ID, "set tier: "+worst.f.Tier,
			"%s needs tier %s or above because %s, but its tier is %q", what, worst.f.Tier, worst.why, u.Tier)
	}
}

// prohibited returns the pack's prohibited practice for a tag, or nil.
func (v *validator) prohibited(tag string) *rules.Practice {
	for i, p := range v.c.Pack().Prohibited {
		if p.Tag == tag {
			return &v.c.Pack().Prohibited[i]
		}
	}
	return nil
}

// knownTag reports whether the catalog or the pack knows the tag.
func (v *validator) knownTag(tag string) bool {
	if contains(Tags, tag) || v.prohibited(tag) != nil {
		return true
	}
	fl := v.c.Pack().Floors
	for _, f := range append(slices.Clone(fl.Tags), fl.Terms...) {
		if f.Tag == tag {
			return true
		}
	}
	return false
}
