package portrait

import (
	"cmp"
	"slices"
)

// EventPage is the events of a page of subjects as a batch derivation
// reads them (Store.ScanEvents on guard.Store): in buffers that are kept
// and reused page after page, so that reading a page allocates nothing
// per event once the buffers have grown to a page's size. An engine fills
// it with Reset, Add and Done; the reader takes each subject's events
// with Of. It carries what derivation needs of an event and nothing more:
// no pseudonym per event (the subject's index stands for it), no
// idempotency hash, no expiry.
type EventPage struct {
	subjects []Pseudonym
	index    map[Pseudonym]int32 // subjects, by pseudonym
	rows     []PageEvent         // as the engine read them
	events   []PageEvent         // rows grouped by subject, each in (time, id) order
	start    []int32             // subject i's events are events[start[i]:start[i+1]]
	next     []int32             // Done's cursor per subject
	sealed   []byte              // every row's sealed bytes, back to back
	types    map[string]string   // the event types seen, each kept once
}

// PageEvent is one event of an EventPage. Sealed is a slice of the page's
// buffer: it is valid until the page is Reset.
type PageEvent struct {
	Subject int32 // the subject's index in the page
	ID      int64
	Time    int64 // Unix nanoseconds, UTC
	Type    string
	Sealed  []byte
}

// Reset empties the page for the subjects to be read, in this order, and
// keeps its buffers.
func (p *EventPage) Reset(subjects []Pseudonym) {
	p.subjects = append(p.subjects[:0], subjects...)
	if p.index == nil {
		p.index = make(map[Pseudonym]int32, len(subjects))
	}
	clear(p.index)
	for i, s := range subjects {
		p.index[s] = int32(i)
	}
	p.rows, p.events, p.start, p.sealed = p.rows[:0], p.events[:0], p.start[:0], p.sealed[:0]
}

// Subjects returns the subjects the page was Reset for.
func (p *EventPage) Subjects() []Pseudonym { return p.subjects }

// Index returns the index of a subject of the page, false for another.
func (p *EventPage) Index(ps Pseudonym) (int32, bool) {
	i, ok := p.index[ps]
	return i, ok
}

// IndexBytes is Index for a pseudonym an engine reads as bytes it reuses.
func (p *EventPage) IndexBytes(b []byte) (int32, bool) {
	i, ok := p.index[Pseudonym(b)] // no allocation for the lookup
	return i, ok
}

// Add appends one event of subject i (an index in the page's subjects),
// copying sealed: the engine may reuse its memory.
func (p *EventPage) Add(i int32, id, nanos int64, typ string, sealed []byte) {
	if t, ok := p.types[typ]; ok {
		typ = t // the page keeps one copy of each type, not one per event
	} else {
		if p.types == nil {
			p.types = map[string]string{}
		}
		p.types[typ] = typ
	}
	at := len(p.sealed)
	p.sealed = append(p.sealed, sealed...)
	p.rows = append(p.rows, PageEvent{Subject: i, ID: id, Time: nanos, Type: typ, Sealed: p.sealed[at:len(p.sealed):len(p.sealed)]})
}

// Type returns the event type b spells, without allocating once the page
// has seen it: for an engine that reads the type as bytes it reuses.
func (p *EventPage) Type(b []byte) string {
	if t, ok := p.types[string(b)]; ok { // no allocation for the lookup
		return t
	}
	return string(b)
}

// Done groups the events added by subject, each subject's in time and
// then id order (as Store.EventsFor returns them), whatever order they
// were added in. Sealed bytes added before the buffer last grew stay in
// the old buffer, which they keep alive until the page is Reset.
func (p *EventPage) Done() {
	n := len(p.subjects)
	p.start = slices.Grow(p.start[:0], n+1)[:n+1]
	clear(p.start)
	for _, e := range p.rows {
		p.start[e.Subject+1]++
	}
	for i := 1; i <= n; i++ {
		p.start[i] += p.start[i-1]
	}
	p.events = slices.Grow(p.events[:0], len(p.rows))[:len(p.rows)]
	p.next = append(p.next[:0], p.start[:n]...)
	for _, e := range p.rows {
		p.events[p.next[e.Subject]] = e
		p.next[e.Subject]++
	}
	byTime := func(a, b PageEvent) int { return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.ID, b.ID)) }
	for i := range n {
		evs := p.events[p.start[i]:p.start[i+1]]
		if !slices.IsSortedFunc(evs, byTime) {
			slices.SortFunc(evs, byTime)
		}
	}
}

// Of returns subject i's events, in time and then id order; nil if it
// has none. The slice is the page's: valid until the page is Reset.
func (p *EventPage) Of(i int) []PageEvent {
	if i < 0 || i+1 >= len(p.start) || p.start[i] == p.start[i+1] {
		return nil
	}
	return p.events[p.start[i]:p.start[i+1]:p.start[i+1]]
}

// Len is the number of events in the page.
func (p *EventPage) Len() int { return len(p.rows) }
