package ingest

import "sync"

// slicePool keeps slices of T between requests (the pending, decided,
// stored-event and item slices of a request were its largest
// allocations). A slice goes back cleared to its capacity, so that the
// pool keeps no event's values, grants or fields alive, and only when
// nothing refers to it any more.
type slicePool[T any] struct{ p sync.Pool } // of *[]T

// get returns a slice of n zero values, kept or new.
func (sp *slicePool[T]) get(n int) []T {
	if p, _ := sp.p.Get().(*[]T); p != nil && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]T, n)
}

// put clears s and keeps it; the caller must not use s after.
func (sp *slicePool[T]) put(s []T) {
	s = s[:cap(s)]
	clear(s)
	sp.p.Put(&s)
}
