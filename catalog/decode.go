package catalog

import (
	"fmt"
	"math"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks a yaml.Node tree into the declaration types by hand, so that
// every value keeps its line and column and a wrong shape is a Problem, never
// a panic or a silent zero value.
type decoder struct {
	file  string
	probs []Problem
	// shape holds the nodes already reported as the wrong shape; rule
	// problems at the same node would only repeat that news.
	shape map[*yaml.Node]bool
}

// problem records a problem at node n. Problems without a requirement are
// shape problems (unknown key, wrong type).
func (d *decoder) problem(n *yaml.Node, req, fix, format string, args ...any) {
	if req == "" {
		if d.shape == nil {
			d.shape = map[*yaml.Node]bool{}
		}
		d.shape[n] = true
	} else if d.shape[n] {
		return
	}
	p := Problem{File: d.file, Line: 1, Column: 1, Message: fmt.Sprintf(format, args...), Fix: fix, Requirement: req}
	if n != nil && n.Line > 0 {
		p.Line, p.Column = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

// obj is a decoded mapping: its node and, per key, the key and value nodes,
// plus the item nodes of list values and the entry nodes of nested maps.
type obj struct {
	n     *yaml.Node
	keys  map[string]*yaml.Node
	vals  map[string]*yaml.Node
	items map[string][]*yaml.Node
	sub   map[string]map[string]*yaml.Node
}

// at returns the value node of key, or the mapping itself when key is absent,
// which is where a "missing key" problem belongs.
func (o *obj) at(key string) *yaml.Node {
	if o == nil {
		return nil
	}
	if v := o.vals[key]; v != nil {
		return v
	}
	return o.n
}

// has reports whether key was written, even with an empty value.
func (o *obj) has(key string) bool { return o != nil && o.vals[key] != nil }

// blank reports whether key is absent or written with no value.
func (o *obj) blank(key string) bool {
	n := resolve(o.vals[key])
	return isNull(n) || (n.Kind == yaml.ScalarNode && strings.TrimSpace(n.Value) == "")
}

// item returns the node of the i-th item of list key, or the key's value.
func (o *obj) item(key string, i int) *yaml.Node {
	if o != nil && i < len(o.items[key]) {
		return o.items[key][i]
	}
	return o.at(key)
}

// entry returns the node of entry name in the nested map key.
func (o *obj) entry(key, name string) *yaml.Node {
	if o != nil {
		if n := o.sub[key][name]; n != nil {
			return n
		}
	}
	return o.at(key)
}

const maxAliasDepth = 16

// resolve follows aliases; a chain too long to be honest is treated as absent.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasDepth {
			return nil
		}
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return resolve(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what was found, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.ShortTag() == "!!str":
		return fmt.Sprintf("the text %q", n.Value)
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// mapping decodes n as a mapping whose keys must be among known. what names
// the value in messages ("field", "purpose"). A null value is an empty
// mapping, so that "missing key" problems follow.
func (d *decoder) mapping(n *yaml.Node, what string, known []string) *obj {
	orig := n
	n = resolve(n)
	o := &obj{n: n, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{},
		items: map[string][]*yaml.Node{}, sub: map[string]map[string]*yaml.Node{}}
	if isNull(n) {
		o.n = orig
		return o
	}
	if n.Kind != yaml.MappingNode {
		d.problem(n, "", "write "+what+" as key: value lines", "%s: want a mapping, got %s", what, describe(n))
		return o
	}
	d.pairs(o, n, what, known, 0)
	return o
}

// pairs adds the key/value pairs of mapping n to o, following YAML merge
// keys ("<<: *base"); keys written in n win over merged ones.
func (d *decoder) pairs(o *obj, n *yaml.Node, what string, known []string, depth int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			d.problem(n.Content[i], "", "use a plain name as the key", "%s: want a plain key, got %s", what, describe(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if !contains(known, k.Value) {
			fix := "remove it; known keys: " + strings.Join(known, ", ")
			if s := nearest(k.Value, known); s != "" {
				fix = fmt.Sprintf("did you mean %q?", s)
			}
			d.problem(k, "", fix, "%s: unknown key %q", what, k.Value)
			continue
		}
		if prev := o.keys[k.Value]; prev != nil && depth == 0 {
			d.problem(k, "", "remove one of them", "%s: key %q repeated (first at line %d)", what, k.Value, prev.Line)
			continue
		}
		if o.keys[k.Value] == nil {
			o.keys[k.Value], o.vals[k.Value] = k, v
		}
	}
	if depth >= maxAliasDepth {
		return
	}
	for _, m := range merges {
		m = resolve(m)
		switch {
		case m != nil && m.Kind == yaml.MappingNode:
			d.pairs(o, m, what, known, depth+1)
		case m != nil && m.Kind == yaml.SequenceNode:
			for _, e := range m.Content {
				if e = resolve(e); e != nil && e.Kind == yaml.MappingNode {
					d.pairs(o, e, what, known, depth+1)
				}
			}
		}
	}
}

// str decodes a scalar as text; numbers and booleans are taken as written.
func (d *decoder) str(o *obj, key, what string) string {
	n := resolve(o.vals[key])
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.problem(n, "", "write a single value, e.g. "+key+": value", "%s %s: want text, got %s", what, key, describe(n))
		return ""
	}
	return strings.TrimSpace(n.Value)
}

func (d *decoder) boolean(o *obj, key, what string) bool {
	n := resolve(o.vals[key])
	if isNull(n) {
		return false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		return strings.EqualFold(n.Value, "true")
	}
	d.problem(n, "", "write "+key+": true or "+key+": false", "%s %s: want true or false, got %s", what, key, describe(n))
	return false
}

func (d *decoder) integer(o *obj, key, what string) int64 {
	n := resolve(o.vals[key])
	if isNull(n) {
		return 0
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		d.problem(n, "", "write a whole number, e.g. "+key+": 1", "%s %s: want a whole number, got %s", what, key, describe(n))
		return 0
	}
	return v
}

func (d *decoder) number(n *yaml.Node, what string) float64 {
	n = resolve(n)
	var v float64
	if n == nil || n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") ||
		n.Decode(&v) != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		d.problem(n, "", "write a finite number, e.g. 0.5", "%s: want a number, got %s", what, describe(n))
		return 0
	}
	return v
}

// bound decodes an optional finite number; nil when the key is absent.
func (d *decoder) bound(o *obj, key, what string) *float64 {
	if isNull(resolve(o.vals[key])) {
		return nil
	}
	v := d.number(o.vals[key], what+" "+key)
	return &v
}

// list decodes a list of scalars and keeps each item's node.
func (d *decoder) list(o *obj, key, what string) []string {
	n := resolve(o.vals[key])
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n, "", fmt.Sprintf("write a list, e.g. %s: [a, b]", key), "%s %s: want a list, got %s", what, key, describe(n))
		return nil
	}
	var out []string
	for _, e := range n.Content {
		e := resolve(e)
		if isNull(e) || e.Kind != yaml.ScalarNode {
			d.problem(e, "", "write each item as a plain name", "%s %s: want a name in the list, got %s", what, key, describe(e))
			continue
		}
		out = append(out, strings.TrimSpace(e.Value))
		o.items[key] = append(o.items[key], e)
	}
	return out
}

// text decodes a {language: text} mapping.
func (d *decoder) text(o *obj, key, what string) Text {
	n := resolve(o.vals[key])
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.problem(n, "", fmt.Sprintf("write texts per language, e.g. %s: {zh-CN: …, en: …}", key), "%s %s: want a mapping of language to text, got %s", what, key, describe(n))
		return nil
	}
	t := Text{}
	o.sub[key] = map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || v == nil || v.Kind != yaml.ScalarNode {
			d.problem(n.Content[i], "", "write language: text, e.g. en: Recommendations", "%s %s: want language: text pairs", what, key)
			continue
		}
		t[k.Value] = strings.TrimSpace(v.Value)
		o.sub[key][k.Value] = v
	}
	return t
}

func (d *decoder) duration(o *obj, key, what, req string) Duration {
	s := d.str(o, key, what)
	if s == "" {
		return 0
	}
	v, err := ParseDuration(s)
	if err != nil {
		d.problem(o.at(key), req, "write a length such as 30d, 12h or 1y", "%s %s: %v", what, key, err)
	}
	return v
}

// seq returns the items of a list of mappings; a null value is empty.
func (d *decoder) seq(n *yaml.Node, what string) []*yaml.Node {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n, "", "write "+what+" as a list of entries, each starting with \"- \"", "%s: want a list, got %s", what, describe(n))
		return nil
	}
	return n.Content
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// nearest returns the candidate closest to s by edit distance, if close
// enough to be a plausible typo.
func nearest(s string, candidates []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if dd := editDistance(strings.ToLower(s), strings.ToLower(c)); dd < bestD {
			best, bestD = c, dd
		}
	}
	limit := max(2, len([]rune(s))/3)
	if bestD <= limit {
		return best
	}
	// A long shared prefix catches a different ending ("recommender").
	best, bestP := "", 4
	for _, c := range candidates {
		if p := commonPrefix(strings.ToLower(s), strings.ToLower(c)); p > bestP {
			best, bestP = c, p
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
