package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a catalog, at a place in its file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
	// Fix says how to correct the declaration.
	Fix string `json:"fix,omitempty"`
	// Requirement is the requirement id the rule comes from, e.g. "CM-3".
	Requirement string `json:"requirement,omitempty"`
	// Rule is the id of the rule-pack rule that found the problem, if any.
	Rule string `json:"rule,omitempty"`
}

// String renders the problem as "file:line:col: message; fix: how [REQ-ID]".
func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
	if p.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(p.Fix)
	}
	if p.Requirement != "" {
		b.WriteString(" [")
		b.WriteString(p.Requirement)
		b.WriteString("]")
	}
	return b.String()
}

// Errors is every problem found in a catalog, sorted by position. Load and
// Parse report all of them at once so that one edit pass can fix them.
type Errors struct {
	Problems []Problem
}

// Error renders one line per problem.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Requirements lists the distinct requirement ids of the problems, in order of
// first appearance.
func (e *Errors) Requirements() []string {
	var ids []string
	seen := map[string]bool{}
	for _, p := range e.Problems {
		if p.Requirement != "" && !seen[p.Requirement] {
			seen[p.Requirement] = true
			ids = append(ids, p.Requirement)
		}
	}
	return ids
}

func (e *Errors) sort() {
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i], e.Problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}
