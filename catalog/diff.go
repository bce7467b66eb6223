package catalog

import (
	"crypto/sha256"
	"encoding/hex"
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
