package derive

import (
	"time"

	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// evalIndexed evaluates a rule label for an incremental derivation from
// an index of the subject's events (label.Index), carried in the memo
// from the last derivation with the events read now folded in: the rule's
// aggregates read their type's columns inside their windows, so a new
// event costs its insertion, not a pass over the subject's history. The
// index holds only the fields the grant covers, as a narrowed view does.
// label.ErrNoIndex means the rule cannot be served so (a history longer
// than its MaxEvents): the caller evaluates over the events.
func (s *subject) evalIndexed(en *entry, g policy.Grant, now time.Time) (Stored, error) {
	var x *label.Index
	if held := s.held(en, g); held != nil && held.ix != nil {
		x = held.ix.With(s.rewritten, s.arrived, s.added, g.Covers)
	} else {
		x = en.rule.NewIndex(s.events, s.ids, g.Covers)
	}
	v, err := en.rule.EvalIndex(now, s.profileFor(g), x, len(s.events))
	if err != nil {
		return Stored{}, err
	}
	s.keepView(en, &narrowed{fields: g.Fields(), ix: x})
	return Stored{Value: v}, nil
}

// carry keeps, for a label whose inputs did not change, the index the
// memo holds: no event of its types arrived (else it would be dirty), so
// the index is still the subject's. A narrowed list of events is not
// carried: it lacks the events of other types read now.
func (s *subject) carry(en *entry, g policy.Grant) {
	if held := s.held(en, g); held != nil && held.ix != nil {
		s.keepView(en, held)
	}
}

func (s *subject) keepView(en *entry, n *narrowed) {
	if s.views == nil {
		s.views = map[*entry]*narrowed{}
	}
	s.views[en] = n
}
