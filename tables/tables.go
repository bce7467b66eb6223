package tables

import (
	"cmp"
	"strings"

	portrait "github.com/portrait-dev/portrait"
)

// BySubject splits rows ordered by subject into one slice per subject.
// The slices share xs's array but are capped, so appending to one cannot
// overwrite the next subject's rows.
func BySubject[T any](xs []T, subject func(*T) portrait.Pseudonym) map[portrait.Pseudonym][]T {
	out := map[portrait.Pseudonym][]T{}
	for i := 0; i < len(xs); {
		p, j := subject(&xs[i]), i+1
		for j < len(xs) && subject(&xs[j]) == p {
			j++
		}
		out[p] = xs[i:j:j]
		i = j
	}
	return out
}

// Strings returns pseudonyms as the strings Dialect.List and array
// parameters take.
func Strings(ps []portrait.Pseudonym) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// LabelOrder orders label values by the labels table's key, (subject,
// label): both engines write a page's values in this order, so that each
// leaf of the table is visited once.
func LabelOrder(a, b *portrait.LabelValue) int {
	return cmp.Or(strings.Compare(string(a.Pseudonym), string(b.Pseudonym)), strings.Compare(a.Label, b.Label))
}
