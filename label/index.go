package label

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Index is a subject's events as one rule's aggregates read them: for
// each event type the rule names, the events' times in order and, column
// by column, the values of the fields its aggregates read. An aggregate
// finds its window by binary search and reads only its own column inside
// it, so evaluating a rule again after a new event costs the event's
// insertion and the window's values, not a pass over the whole history
// with a map lookup per event (Rule.Eval). Results are Eval's, to the
// bit: the columns keep the events' order (time, then id), so sums add
// in the same order.
//
// An Index is never changed once made: With returns a new one, sharing
// nothing the caller may change, so that one made for a derivation may be
// kept (derive's memo) while the next derivation makes its successor.
type Index struct {
	r     *Rule
	types []typeCol // parallel to r.named
}

// typeCol is the events of one type, in order of (time, id).
type typeCol struct {
	at   []int64 // Unix nanoseconds
	ids  []int64
	cols []fieldCol // parallel to fieldsOf(type)
}

// fieldCol is one field's values for the events of a type: val is the
// value or absent (kept for count and distinct), num the value as a
// number where isNum (kept for the numeric aggregates). A column of
// numbers holds no pointers, so copying it is a plain memory copy.
type fieldCol struct {
	colSpec
	val   []any
	num   []float64
	isNum []bool
}

// colSpec is a column a rule's aggregates read: the field of an event
// type, as values, as numbers, or both.
type colSpec struct {
	typ, name  string
	vals, nums bool
}

// addCol records that aggregate fn reads field of typ.
func (r *Rule) addCol(typ, field, fn string) {
	i := slices.IndexFunc(r.cols, func(c colSpec) bool { return c.typ == typ && c.name == field })
	if i < 0 {
		i = len(r.cols)
		r.cols = append(r.cols, colSpec{typ: typ, name: field})
	}
	switch fn {
	case "count", "distinct":
		r.cols[i].vals = true
	default:
		r.cols[i].nums = true
	}
}

// absent stands for a field an event does not carry (or its grant does
// not cover): unlike nil it equals no value a rule can compare with.
type absent struct{}

// ErrNoIndex is returned by Rule.EvalIndex when the index cannot stand in
// for the events: the caller evaluates with Eval.
var ErrNoIndex = errors.New("label: rule cannot be evaluated from an index")

// Indexed reports whether the rule can be evaluated from an Index: a rule
// (not a score model) whose aggregates all name their event type and
// field as constants and that does not read the events list itself.
func (r *Rule) Indexed() bool {
	return r.prg != nil && !r.all && !r.dynamic && len(r.named) > 0
}

// nanos is t in Unix nanoseconds, if it is in their range.
func nanos(t time.Time) (int64, bool) {
	if y := t.Year(); y < 1700 || y > 2200 {
		return 0, false
	}
	return t.UnixNano(), true
}

// NewIndex indexes events (in order of time, then id; ids parallel) for
// the rule. covers says whether a field may be read (the grant's fields):
// a field it does not cover is absent, as in a narrowed event. It returns
// nil if the rule is not Indexed or an event's time is out of range.
func (r *Rule) NewIndex(events []Event, ids []int64, covers func(string) bool) *Index {
	if !r.Indexed() {
		return nil
	}
	x := &Index{r: r, types: make([]typeCol, len(r.named))}
	for k, t := range r.named {
		tc := &x.types[k]
		for _, c := range r.cols {
			if c.typ == t {
				tc.cols = append(tc.cols, fieldCol{colSpec: c})
			}
		}
	}
	for i := range events {
		e := &events[i]
		k := slices.Index(r.named, e.Type)
		if k < 0 {
			continue
		}
		at, ok := nanos(e.Time)
		if !ok {
			return nil
		}
		x.types[k].insert(len(x.types[k].at), at, ids[i], e, covers)
	}
	return x
}

// insert puts the event at position i of the type's columns.
func (tc *typeCol) insert(i int, at, id int64, e *Event, covers func(string) bool) {
	tc.at = slices.Insert(tc.at, i, at)
	tc.ids = slices.Insert(tc.ids, i, id)
	for c := range tc.cols {
		fc := &tc.cols[c]
		var v any = absent{}
		if raw, ok := e.Fields[fc.name]; ok && covers(fc.name) {
			v = raw
		}
		if fc.vals {
			fc.val = slices.Insert(fc.val, i, v)
		}
		if fc.nums {
			x, isNum := toFloat(v)
			fc.num = slices.Insert(fc.num, i, x)
			fc.isNum = slices.Insert(fc.isNum, i, isNum)
		}
	}
}

func (tc *typeCol) delete(i int) {
	tc.at = slices.Delete(tc.at, i, i+1)
	tc.ids = slices.Delete(tc.ids, i, i+1)
	for c := range tc.cols {
		fc := &tc.cols[c]
		if fc.vals {
			fc.val = slices.Delete(fc.val, i, i+1)
		}
		if fc.nums {
			fc.num = slices.Delete(fc.num, i, i+1)
			fc.isNum = slices.Delete(fc.isNum, i, i+1)
		}
	}
}

// clone copies the columns with room for n more events.
func (tc typeCol) clone(n int) typeCol {
	out := typeCol{at: withRoom(tc.at, n), ids: withRoom(tc.ids, n), cols: make([]fieldCol, len(tc.cols))}
	for c, fc := range tc.cols {
		out.cols[c] = fieldCol{colSpec: fc.colSpec}
		if fc.vals {
			out.cols[c].val = withRoom(fc.val, n)
		}
		if fc.nums {
			out.cols[c].num, out.cols[c].isNum = withRoom(fc.num, n), withRoom(fc.isNum, n)
		}
	}
	return out
}

func withRoom[S ~[]E, E any](s S, n int) S {
	out := make(S, len(s), len(s)+n)
	copy(out, s)
	return out
}

// With returns the index with the events of ids drop removed and events
// (ids parallel) added, in a new Index: x is not changed. A dropped id not
// held is ignored. It returns nil where NewIndex would.
func (x *Index) With(drop []int64, events []Event, ids []int64, covers func(string) bool) *Index {
	if x == nil {
		return nil
	}
	y := &Index{r: x.r, types: make([]typeCol, len(x.types))}
	// Only the types that change are copied; the others are shared, and
	// neither index changes them.
	touched := make([]int, len(x.types))
	for i := range events {
		if k := slices.Index(x.r.named, events[i].Type); k >= 0 {
			touched[k]++
		}
	}
	for k, tc := range x.types {
		if touched[k] > 0 || len(drop) > 0 && containsAny(tc.ids, drop) {
			y.types[k] = tc.clone(touched[k])
			touched[k] = -1 // copied: y's own
		} else {
			y.types[k] = tc
		}
	}
	for _, id := range drop {
		for k := range y.types {
			if touched[k] != -1 {
				continue
			}
			if i := slices.Index(y.types[k].ids, id); i >= 0 {
				y.types[k].delete(i)
			}
		}
	}
	for i := range events {
		e := &events[i]
		k := slices.Index(x.r.named, e.Type)
		if k < 0 {
			continue
		}
		at, ok := nanos(e.Time)
		if !ok {
			return nil
		}
		tc := &y.types[k]
		j, _ := slices.BinarySearch(tc.at, at)
		for j < len(tc.at) && tc.at[j] == at && tc.ids[j] < ids[i] {
			j++ // same time: in order of id
		}
		tc.insert(j, at, ids[i], e, covers)
	}
	return y
}

func containsAny(ids, drop []int64) bool {
	for _, id := range drop {
		if slices.Contains(ids, id) {
			return true
		}
	}
	return false
}

// span returns the positions [lo, hi) of the type's events at or after
// from and at or before now.
func (tc *typeCol) span(from, now int64) (int, int) {
	lo, _ := slices.BinarySearch(tc.at, from)
	hi, found := slices.BinarySearch(tc.at, now)
	for found && hi < len(tc.at) && tc.at[hi] == now {
		hi++
	}
	return lo, hi
}

// EvalIndex is Eval over an Index of the subject's events: the same value,
// facts and provenance. total is the number of the subject's events
// (every type): beyond the rule's MaxEvents, Eval reads only the most
// recent, which an index does not know, and EvalIndex returns ErrNoIndex,
// as it does for a nil index or a rule that is not Indexed.
func (r *Rule) EvalIndex(now time.Time, profile map[string]any, x *Index, total int) (Value, error) {
	if x == nil || x.r != r || !r.Indexed() || r.cfg.MaxEvents > 0 && total > r.cfg.MaxEvents {
		return Value{}, ErrNoIndex
	}
	nowNs, ok := nanos(now)
	if !ok {
		return Value{}, ErrNoIndex
	}
	st := newState(r, now, profile, nil)
	st.ix, st.nowNs = x, nowNs
	defer st.free()
	return r.eval(st, now, profile)
}

// callIndexed is call for a state evaluating from an index; f has the
// function, type and window set, from the window's start.
func (s *evalState) callIndexed(fn string, f Fact, from time.Time) ref.Val {
	k := slices.Index(s.r.named, f.Type)
	if k < 0 {
		// Not a type of the index (cannot happen for an Indexed rule):
		// refuse rather than answer from nothing.
		s.err = fmt.Errorf("%s(): event type %q is not indexed", fn, f.Type)
		return types.NewErr("%s", s.err)
	}
	tc := &s.ix.types[k]
	if fn == "recency" {
		f.Value = 1e9
		if _, hi := tc.span(math.MinInt64, s.nowNs); hi > 0 {
			f.Value = s.now.Sub(time.Unix(0, tc.at[hi-1])).Hours() / 24
		}
		s.record(f)
		return types.Double(f.Value)
	}
	fromNs, ok := nanos(from)
	switch {
	case !ok && from.After(s.now):
		fromNs = math.MaxInt64 // a window ending before it starts: empty
	case !ok:
		fromNs = math.MinInt64 // further back than any indexed event
	}
	lo, hi := tc.span(fromNs, s.nowNs)
	var fc *fieldCol
	if f.Field != "" {
		for c := range tc.cols {
			if tc.cols[c].name == f.Field {
				fc = &tc.cols[c]
				break
			}
		}
		if fc == nil {
			s.err = fmt.Errorf("%s(): field %q of %q is not indexed", fn, f.Field, f.Type)
			return types.NewErr("%s", s.err)
		}
	}
	switch fn {
	case "count", "frequency":
		n := hi - lo
		if f.Equals != nil {
			n = 0
			want := f.Equals
			wantString, isString := want.(string)
			for _, got := range fc.val[lo:hi] {
				if isString {
					if g, ok := got.(string); ok && g == wantString {
						n++
					}
				} else if equal(got, want) {
					n++
				}
			}
		}
		f.Value = float64(n)
		s.record(f)
		return types.Int(n)
	case "distinct":
		seen := s.seen
		clear(seen)
		for _, v := range fc.val[lo:hi] {
			if _, ok := v.(absent); ok {
				continue
			}
			if seen == nil {
				seen = map[any]struct{}{}
				s.seen = seen
			}
			if t, ok := v.(time.Time); ok {
				v = t.UnixNano()
			}
			seen[v] = struct{}{}
		}
		if len(seen) > 1024 {
			s.seen = nil
		}
		f.Value = float64(len(seen))
		s.record(f)
		return types.Int(len(seen))
	}
	var n int
	var sum float64
	mn, mx := math.Inf(1), math.Inf(-1)
	num, isNum := fc.num[lo:hi], fc.isNum[lo:hi]
	extremes := fn == "min" || fn == "max" // math.Min and Max cost more than the sum
	for i, x := range num {
		if !isNum[i] {
			continue
		}
		n++
		sum = Add(sum, x)
		if extremes {
			mn, mx = math.Min(mn, x), math.Max(mx, x)
		}
	}
	f.Value = numeric(fn, n, sum, mn, mx, func() (mean float64) {
		for i, x := range num {
			if isNum[i] {
				mean += x / float64(n)
			}
		}
		return mean
	})
	s.record(f)
	return types.Double(f.Value)
}

// provenanceIndexed is provenance from the index: the count and span of
// the named types' events at or before now.
func (s *evalState) provenanceIndexed(v *Value) {
	v.Inputs = slices.Clone(s.r.inputs)
	for k := range s.ix.types {
		tc := &s.ix.types[k]
		_, hi := tc.span(math.MinInt64, s.nowNs)
		if hi == 0 {
			continue
		}
		v.EventCount += hi
		first, last := time.Unix(0, tc.at[0]).UTC(), time.Unix(0, tc.at[hi-1]).UTC()
		if v.From.IsZero() || first.Before(v.From) {
			v.From = first
		}
		if last.After(v.To) {
			v.To = last
		}
	}
}
