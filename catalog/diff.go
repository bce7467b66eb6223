package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Scope is what a subject consented to when they agreed to a purpose: its
// data use, the categories of the fields collected for it, its recipients
// and whether its consent is separate. Changing any of it is a new purpose
// in law (PIPL Art. 14(2)) and needs a new notice version (CN-3).
type Scope struct {
	NoticeVersion string   `json:"notice_version"`
	Basis         string   `json:"basis"`
	DataUse       string   `json:"data_use"`
	Separate      bool     `json:"separate_consent,omitempty"`
	Recipients    []string `json:"recipients,omitempty"`
	// Categories are "field=category" for every field declared for the
	// purpose, sorted.
	Categories []string `json:"categories"`
}

// Scopes returns the scope of every purpose, by id.
func (c *Catalog) Scopes() map[string]Scope {
	out := make(map[string]Scope, len(c.Purposes))
	for _, p := range c.Purposes {
		s := Scope{NoticeVersion: p.NoticeVersion, Basis: string(p.Basis), DataUse: p.DataUse, Separate: p.Separate,
			Recipients: slices.Sorted(slices.Values(p.Recipients))}
		for _, f := range c.Fields {
			if contains(f.Purposes, p.ID) {
				s.Categories = append(s.Categories, f.Name+"="+f.Category)
			}
		}
		sort.Strings(s.Categories)
		out[p.ID] = s
	}
	return out
}

// What a change requires.
const (
	// NeedsNothing: the new catalog may load as is.
	NeedsNothing = ""
	// NeedsNotice: the purpose's scope changed under the same notice
	// version; raise notice_version so that old consents stop counting (CN-3).
	NeedsNotice = "notice_version"
	// NeedsApproval: a label or use-case is new or changed and is not live
	// until a named person other than its author approves it.
	NeedsApproval = "approval"
)

// Change is one difference between two catalogs.
type Change struct {
	Kind  string `json:"kind"` // purpose, label, use_case
	ID    string `json:"id"`
	What  string `json:"what"`
	Needs string `json:"needs,omitempty"`
	// Edits are a purpose's changes one by one, for Words; What says
	// them in English for the CLI and the log.
	Edits []Edit `json:"edits,omitempty"`
}

// Edit is one aspect of a purpose's scope that changed, with the keys
// it was and is (one for a single value), so Words can name each.
type Edit struct {
	Aspect string   `json:"aspect"` // data_use, basis, separate_consent, recipients, fields, notice_version
	Was    []string `json:"was"`
	Is     []string `json:"is"`
}

func (ch Change) String() string {
	s := fmt.Sprintf("%s %q: %s", strings.ReplaceAll(ch.Kind, "_", "-"), ch.ID, ch.What)
	switch ch.Needs {
	case NeedsNotice:
		s += "; needs a new notice_version (consents under the old one then stop counting) [CN-3]"
	case NeedsApproval:
		s += "; needs approval by a named person other than its author"
	}
	return s
}

// Diff lists what changed from old to new and what each change requires.
func Diff(old, new *Catalog) []Change {
	return append(DiffScopes(old.Scopes(), new), DiffDefinitions(old.Definitions(), new.Definitions())...)
}

// Definitions maps every label and use-case, as "label:ID" and
// "use_case:ID", to a digest of its declaration: what a person approves
// (SG-7), and what the engine compares with the definitions last approved.
func (c *Catalog) Definitions() map[string]string {
	out := make(map[string]string, len(c.Labels)+len(c.UseCases))
	for _, l := range c.Labels {
		out["label:"+l.ID] = defDigest(l)
	}
	for _, u := range c.UseCases {
		out["use_case:"+u.ID] = defDigest(u)
	}
	return out
}

func defDigest(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// DiffDefinitions lists the labels and use-cases added, changed or removed
// from old to new (maps from Definitions); added and changed ones need
// approval.
func DiffDefinitions(old, new map[string]string) []Change {
	split := func(m map[string]string, kind string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if id, ok := strings.CutPrefix(k, kind+":"); ok {
				out[id] = v
			}
		}
		return out
	}
	return append(diffDecls("label", split(old, "label"), split(new, "label")), diffDecls("use_case", split(old, "use_case"), split(new, "use_case"))...)
}

// DiffScopes compares the purposes' scopes a catalog last ran with against
// new: any change of data use, field categories, recipients, separate
// consent or basis under an unchanged notice version needs a new notice
// version (CN-3).
func DiffScopes(old map[string]Scope, new *Catalog) []Change {
	var out []Change
	now := new.Scopes()
	for _, id := range slices.Sorted(maps(old)) {
		if _, ok := now[id]; !ok {
			out = append(out, Change{Kind: "purpose", ID: id, What: "removed"})
		}
	}
	for _, p := range new.Purposes {
		was, ok := old[p.ID]
		if !ok {
			out = append(out, Change{Kind: "purpose", ID: p.ID, What: "added"})
			continue
		}
		is := now[p.ID]
		var what []string
		var edits []Edit
		edit := func(aspect, label string, was, is []string, list bool) {
			if slices.Equal(was, is) {
				return
			}
			w, i := strings.Join(was, ", "), strings.Join(is, ", ")
			if list {
				w, i = "["+w+"]", "["+i+"]"
			}
			what = append(what, fmt.Sprintf("%s %s → %s", label, w, i))
			edits = append(edits, Edit{Aspect: aspect, Was: slices.Clone(was), Is: slices.Clone(is)})
		}
		one := func(v string) []string { return []string{v} }
		edit("data_use", "data use", one(was.DataUse), one(is.DataUse), false)
		edit("basis", "basis", one(was.Basis), one(is.Basis), false)
		edit("separate_consent", "separate consent", one(strconv.FormatBool(was.Separate)), one(strconv.FormatBool(is.Separate)), false)
		edit("recipients", "recipients", was.Recipients, is.Recipients, true)
		edit("fields", "fields", was.Categories, is.Categories, true)
		if len(what) == 0 {
			if was.NoticeVersion != is.NoticeVersion {
				out = append(out, Change{Kind: "purpose", ID: p.ID, What: fmt.Sprintf("notice version %s → %s", was.NoticeVersion, is.NoticeVersion),
					Edits: []Edit{{Aspect: "notice_version", Was: []string{was.NoticeVersion}, Is: []string{is.NoticeVersion}}}})
			}
			continue
		}
		ch := Change{Kind: "purpose", ID: p.ID, What: strings.Join(what, "; "), Edits: edits}
		if was.NoticeVersion == is.NoticeVersion {
			ch.Needs = NeedsNotice
		} else {
			ch.What += fmt.Sprintf(" (notice version %s → %s: consents under %s no longer count)", was.NoticeVersion, is.NoticeVersion, was.NoticeVersion)
			ch.Edits = append(ch.Edits, Edit{Aspect: "notice_version", Was: []string{was.NoticeVersion}, Is: []string{is.NoticeVersion}})
		}
		out = append(out, ch)
	}
	return out
}

func maps[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func diffDecls(kind string, old, new map[string]string) []Change {
	var out []Change
	for _, id := range slices.Sorted(maps(old)) {
		if _, ok := new[id]; !ok {
			out = append(out, Change{Kind: kind, ID: id, What: "removed"})
		}
	}
	for _, id := range slices.Sorted(maps(new)) {
		switch was, ok := old[id]; {
		case !ok:
			out = append(out, Change{Kind: kind, ID: id, What: "added", Needs: NeedsApproval})
		case was != new[id]:
			out = append(out, Change{Kind: kind, ID: id, What: "changed", Needs: NeedsApproval})
		}
	}
	return out
}

// Words says ch for a person in lang (zh-CN, the default, or en): the
// declaration and every key by its display name in c (nil: the keys),
// and what the change requires. The String form is the CLI's.
func (ch Change) Words(lang string, c *Catalog) string {
	w := speaker{lang, c}
	name, pick, en := w.name, w.pick, w.en()
	kinds := map[string][2]string{"purpose": {"处理目的", "purpose"}, "label": {"标签", "label"}, "use_case": {"应用场景", "use-case"}}
	k, ok := kinds[ch.Kind]
	if !ok {
		k = [2]string{ch.Kind, ch.Kind}
	}
	var b strings.Builder
	if en {
		fmt.Fprintf(&b, "%s “%s”: ", k[1], name(ch.ID))
	} else {
		fmt.Fprintf(&b, "%s「%s」：", k[0], name(ch.ID))
	}
	b.WriteString(ch.WhatWords(lang, c))
	switch ch.Needs {
	case NeedsNotice:
		b.WriteString(pick("；须发布新的告知版本，旧版本下的同意随即失效 [CN-3]", "; needs a new notice version (consents under the old one then stop counting) [CN-3]"))
	case NeedsApproval:
		b.WriteString(pick("；须由作者以外的具名人员批准", "; needs approval by a named person other than its author"))
	}
	return b.String()
}

// WhatWords says what changed, as Words does, without naming the
// declaration or what the change requires: for a page already about it.
func (ch Change) WhatWords(lang string, c *Catalog) string {
	w := speaker{lang, c}
	name, pick := w.name, w.pick
	var b strings.Builder
	switch {
	case len(ch.Edits) > 0:
		aspects := map[string][2]string{"data_use": {"数据用途", "data use"}, "basis": {"处理依据", "legal basis"},
			"separate_consent": {"单独同意", "separate consent"}, "recipients": {"接收方", "recipients"},
			"fields": {"收集的数据类别", "data categories collected"}, "notice_version": {"告知版本", "notice version"}}
		value := func(aspect string, v []string) string {
			if len(v) == 0 {
				return pick("无", "none")
			}
			out := make([]string, len(v))
			for i, x := range v {
				switch {
				case aspect == "separate_consent" && x == "true":
					out[i] = pick("需要", "required")
				case aspect == "separate_consent":
					out[i] = pick("不需要", "not required")
				case aspect == "basis":
					out[i] = BasisName(x, lang)
				case aspect == "notice_version":
					out[i] = pick("第 "+x+" 版", "version "+x)
				default:
					out[i] = name(x)
				}
			}
			return strings.Join(out, pick("、", ", "))
		}
		parts := make([]string, len(ch.Edits))
		for i, e := range ch.Edits {
			a := aspects[e.Aspect]
			parts[i] = pick(a[0], a[1]) + " " + value(e.Aspect, e.Was) + " → " + value(e.Aspect, e.Is)
		}
		b.WriteString(strings.Join(parts, pick("；", "; ")))
	case ch.What == "added":
		b.WriteString(pick("新增", "added"))
	case ch.What == "changed":
		b.WriteString(pick("定义已修改", "definition changed"))
	case ch.What == "removed":
		b.WriteString(pick("已删除", "removed"))
	default:
		b.WriteString(ch.What) // a record written before Edits existed
	}
	return b.String()
}

// speaker words a change in one language: keys by their display names in
// the catalog (nil: the keys themselves), and the Chinese or English of a
// phrase.
type speaker struct {
	lang string
	c    *Catalog
}

func (w speaker) en() bool { return w.lang == "en" }

func (w speaker) name(key string) string {
	if w.c == nil {
		return key
	}
	return w.c.DisplayName(key, w.lang)
}

func (w speaker) pick(zh, en string) string {
	if w.en() {
		return en
	}
	return zh
}
