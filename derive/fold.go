package derive

import (
	"slices"
	"sort"
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
		s.materialize()
		x = en.rule.NewIndex(s.events, s.ids, g.Covers)
	}
	v, err := en.rule.EvalIndex(now, s.profileFor(g), x, len(s.events)+len(s.tail))
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

// maxTail is how many events a memo holds unmerged (memo.tail) before a
// derivation merges them into its time-ordered events: a copy of the
// history every maxTail events, not at every event.
const maxTail = 64

// appendsOnly reports whether every event read for a subject with a memo
// is newer than all the memo holds, so none replaces an event held (as
// one read again, or rewritten by the retention sweep, would): then the
// events are only added, and may wait in the tail.
func (s *subject) appendsOnly() bool {
	for _, ev := range s.rawEvents {
		if ev.ID <= s.memo.mark.ID {
			return false
		}
	}
	return true
}

// openTail is open for events that only add to the memo's: they join
// its tail, not its time-ordered events, which are shared with the memo
// and so would be copied, with the whole history, at every event. The
// labels an index serves read only the new events (label.Index.With);
// the others merge the tail first (materialize).
func (s *subject) openTail() error {
	if len(s.rawEvents) > 0 {
		s.tail, s.tailIDs = withRoom(s.tail, len(s.rawEvents)), withRoom(s.tailIDs, len(s.rawEvents))
	}
	for _, ev := range s.rawEvents {
		le, err := s.openEvent(ev)
		if err != nil {
			return err
		}
		s.added, s.arrived = append(s.added, ev.ID), append(s.arrived, le)
		s.tail, s.tailIDs = append(s.tail, le), append(s.tailIDs, ev.ID)
	}
	if len(s.tail) >= maxTail {
		s.materialize()
	}
	return s.openRest()
}

// materialize merges the tail into the subject's time-ordered events, in
// new slices (the memo's are shared), as open would have merged each
// event when it was read: in the order they arrived, each at its place
// by time, then id. It reports whether it made new slices.
func (s *subject) materialize() bool {
	if len(s.tail) == 0 {
		return false
	}
	events, ids := withRoom(s.events, len(s.tail)), withRoom(s.ids, len(s.tail))
	for k, le := range s.tail {
		id := s.tailIDs[k]
		i := sort.Search(len(events), func(i int) bool {
			return events[i].Time.After(le.Time) || events[i].Time.Equal(le.Time) && ids[i] > id
		})
		events, ids = slices.Insert(events, i, le), slices.Insert(ids, i, id)
	}
	s.events, s.ids, s.tail, s.tailIDs = events, ids, nil, nil
	return true
}
