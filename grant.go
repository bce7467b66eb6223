package portrait

import (
	"fmt"

	"github.com/portrait-dev/portrait/policy"
)

// ReadActions are the actions a grant may carry to read a subject's
// personal values from a store (invariant 2): every engine accepts the
// same ones.
var ReadActions = []policy.Action{policy.Read, policy.Derive, policy.Use, policy.Access, policy.Sweep, policy.Correct}

// Refuse is the error every engine returns when a grant does not allow
// what op tries: EFORBIDDEN, wrapping err (which wraps policy.ErrNoGrant).
func Refuse(op string, err error) error {
	return &Error{Code: EFORBIDDEN, Message: op + ": no policy grant allows this", Err: err}
}

// CheckGrant refuses (Refuse) unless g allows one of actions for its
// subject and covers every field.
func CheckGrant(op string, g policy.Grant, fields []string, actions ...policy.Action) error {
	if err := g.Check(g.Subject(), actions...); err != nil {
		return Refuse(op, err)
	}
	for _, f := range fields {
		if !g.Covers(f) {
			return Refuse(op, fmt.Errorf("%w: the grant does not cover field %q", policy.ErrNoGrant, f))
		}
	}
	return nil
}

// PageGrants checks every grant of a page read and returns the distinct
// subjects, in first-seen order, with each subject's grants. One failed
// check refuses the whole page before anything is read.
func PageGrants(op string, grants []policy.Grant) ([]string, map[string][]policy.Grant, error) {
	held := make(map[string][]policy.Grant, len(grants))
	subjects := make([]string, 0, len(grants))
	for i, g := range grants {
		if err := g.Check(g.Subject(), ReadActions...); err != nil {
			return nil, nil, Refuse(op, fmt.Errorf("grant %d of %d: %w", i+1, len(grants), err))
		}
		if _, ok := held[g.Subject()]; !ok {
			subjects = append(subjects, g.Subject())
		}
		held[g.Subject()] = append(held[g.Subject()], g)
	}
	return subjects, held, nil
}

// BySubject splits rows ordered by subject into one slice per subject.
// The slices share xs's array but are capped, so appending to one cannot
// overwrite the next subject's rows.
func BySubject[T any](xs []T, subject func(*T) string) map[string][]T {
	out := map[string][]T{}
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
