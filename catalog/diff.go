package catalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
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
	out := DiffScopes(old.Scopes(), new)
	out = append(out, diffDecls("label", decls(old.Labels, func(l Label) string { return l.ID }), decls(new.Labels, func(l Label) string { return l.ID }))...)
	out = append(out, diffDecls("use_case", decls(old.UseCases, func(u UseCase) string { return u.ID }), decls(new.UseCases, func(u UseCase) string { return u.ID }))...)
	return out
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
		if was.DataUse != is.DataUse {
			what = append(what, fmt.Sprintf("data use %s → %s", was.DataUse, is.DataUse))
		}
		if was.Basis != is.Basis {
			what = append(what, fmt.Sprintf("basis %s → %s", was.Basis, is.Basis))
		}
		if was.Separate != is.Separate {
			what = append(what, fmt.Sprintf("separate consent %v → %v", was.Separate, is.Separate))
		}
		if !slices.Equal(was.Recipients, is.Recipients) {
			what = append(what, fmt.Sprintf("recipients [%s] → [%s]", strings.Join(was.Recipients, ", "), strings.Join(is.Recipients, ", ")))
		}
		if !slices.Equal(was.Categories, is.Categories) {
			what = append(what, fmt.Sprintf("fields [%s] → [%s]", strings.Join(was.Categories, ", "), strings.Join(is.Categories, ", ")))
		}
		if len(what) == 0 {
			if was.NoticeVersion != is.NoticeVersion {
				out = append(out, Change{Kind: "purpose", ID: p.ID, What: fmt.Sprintf("notice version %s → %s", was.NoticeVersion, is.NoticeVersion)})
			}
			continue
		}
		ch := Change{Kind: "purpose", ID: p.ID, What: strings.Join(what, "; ")}
		if was.NoticeVersion == is.NoticeVersion {
			ch.Needs = NeedsNotice
		} else {
			ch.What += fmt.Sprintf(" (notice version %s → %s: consents under %s no longer count)", was.NoticeVersion, is.NoticeVersion, was.NoticeVersion)
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

func decls[T any](list []T, id func(T) string) map[string]string {
	out := make(map[string]string, len(list))
	for _, d := range list {
		b, _ := json.Marshal(d)
		out[id(d)] = string(b)
	}
	return out
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
