package catalog

import (
	"fmt"
	"sort"
)

// Display names. People read a field, purpose, event type, label or use-case by its
// title (a label by its name), in zh-CN first and en second; its key is
// for machines. A catalog without them still loads — the key is shown
// instead — but Warnings lists each missing one, and "portrait catalog
// check --strict" refuses the catalog for them (CN-7: a notice people
// can read).
//
//	fields:
//	  - name: city
//	    title: {zh-CN: 所在城市, en: City}

// Warnings lists what the catalog lacks but may load without: a missing
// display name in zh-CN or en, each at its place in the file.
func (c *Catalog) Warnings() []Problem { return c.warnings }

// displayNames returns a warning for every field, purpose, event type and
// use-case without a title in zh-CN or en. Labels need their name anyway (LP-1),
// and an empty one is already an error.
func (v *validator) displayNames() []Problem {
	var out []Problem
	check := func(o *obj, kind, id string, t Text) {
		for _, lang := range []string{"zh-CN", "en"} {
			if t[lang] != "" {
				continue
			}
			n := o.at("title")
			if o.sub["title"] != nil && o.sub["title"][lang] != nil {
				n = o.sub["title"][lang]
			}
			p := Problem{File: v.file, Line: 1, Column: 1, Requirement: "CN-7",
				Message: fmt.Sprintf("%s %q: no display name in %s; pages show the key %q instead", kind, id, lang, id),
				Fix:     "add title: {zh-CN: …, en: …}, a few words people read"}
			if n != nil && n.Line > 0 {
				p.Line, p.Column = n.Line, n.Column
			}
			out = append(out, p)
		}
	}
	for i := range v.c.Purposes {
		check(v.pos.purposes[i], "purpose", v.c.Purposes[i].ID, v.c.Purposes[i].Title)
	}
	for i := range v.c.Fields {
		check(v.pos.fields[i], "field", v.c.Fields[i].Name, v.c.Fields[i].Title)
	}
	for i := range v.c.EventTypes {
		check(v.pos.events[i], "event type", v.c.EventTypes[i].ID, v.c.EventTypes[i].Title)
	}
	for i := range v.c.UseCases {
		check(v.pos.useCases[i], "use-case", v.c.UseCases[i].ID, v.c.UseCases[i].Title)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Column < out[j].Column
	})
	return out
}

// display returns t in lang, or key when the catalog gives no name.
func display(t Text, key, lang string) string {
	if s := t.In(lang); s != "" {
		return s
	}
	return key
}

// FieldName is field name's display name in lang, or name itself.
func (c *Catalog) FieldName(name, lang string) string {
	if f := c.Field(name); f != nil {
		return display(f.Title, name, lang)
	}
	return name
}

// PurposeName is purpose id's display name in lang, or id itself.
func (c *Catalog) PurposeName(id, lang string) string {
	if p := c.Purpose(id); p != nil {
		return display(p.Title, id, lang)
	}
	return id
}

// LabelName is label id's name in lang, or id itself.
func (c *Catalog) LabelName(id, lang string) string {
	if l := c.Label(id); l != nil {
		return display(l.Name, id, lang)
	}
	return id
}

// UseCaseName is use-case id's display name in lang, or id itself.
func (c *Catalog) UseCaseName(id, lang string) string {
	if u := c.UseCase(id); u != nil {
		return display(u.Title, id, lang)
	}
	return id
}

// EventTypeName is event type id's display name in lang, or id itself.
func (c *Catalog) EventTypeName(id, lang string) string {
	if e := c.EventType(id); e != nil {
		return display(e.Title, id, lang)
	}
	return id
}

// DisplayName is what a page shows for key: the display name of the
// use-case, label, purpose, field or event type it names (in that order), else the
// name of the fideslang data category or data use, else key itself.
func (c *Catalog) DisplayName(key, lang string) string {
	switch {
	case c.UseCase(key) != nil:
		return c.UseCaseName(key, lang)
	case c.Label(key) != nil:
		return c.LabelName(key, lang)
	case c.Purpose(key) != nil:
		return c.PurposeName(key, lang)
	case c.Field(key) != nil:
		return c.FieldName(key, lang)
	case c.EventType(key) != nil:
		return c.EventTypeName(key, lang)
	case KnownCategory(key):
		return CategoryName(key, lang)
	case KnownDataUse(key):
		return DataUseName(key, lang)
	}
	return key
}

// ModelKindName says a model kind in words: "逻辑回归", "logistic regression".
func ModelKindName(kind, lang string) string {
	w, ok := map[string]Text{
		ModelLogistic:  {"zh-CN": "逻辑回归", "en": "logistic regression"},
		ModelScorecard: {"zh-CN": "评分卡", "en": "scorecard"},
	}[kind]
	if !ok {
		return kind
	}
	return w.In(lang)
}

// BasisName says a legal basis in words: "法定义务", "legal obligation".
func BasisName(b, lang string) string {
	w, ok := map[Basis]Text{
		BasisConsent:             {"zh-CN": "同意", "en": "consent"},
		BasisContract:            {"zh-CN": "合同", "en": "contract"},
		BasisLegalObligation:     {"zh-CN": "法定义务", "en": "legal obligation"},
		BasisVitalInterests:      {"zh-CN": "重大利益", "en": "vital interests"},
		BasisPublicTask:          {"zh-CN": "公共职责", "en": "public task"},
		BasisLegitimateInterests: {"zh-CN": "合法利益", "en": "legitimate interests"},
		BasisEmployment:          {"zh-CN": "人力资源管理", "en": "employment"},
	}[Basis(b)]
	if !ok {
		return b
	}
	return w.In(lang)
}
