package postgres

import (
	"cmp"
	"slices"
	"sort"
	"sync"
)

// idFloor bounds by id the rows EventsAfter must look at for the
// out-of-order commits its horizon catches, so that a read costs what
// changed since a mark rather than every row of the subjects.
//
// A read's horizon h is the oldest transaction still running when it
// ran; the events it could not see but holds ids below (PostgreSQL's
// sequence hands ids out before commit) were written by transactions h
// or later. Which ids can those hold? Two facts bound them:
//
//   - Every transaction that writes events has a transaction id before it
//     takes an event id (txn.InsertEvents makes sure of it: an INSERT
//     takes the row's id before the row's heap write assigns one).
//   - A sample (next, floor), taken by an earlier read, says: when that
//     read's snapshot was taken the next transaction id to be assigned
//     was at most next, and the events with ids up to floor were
//     committed and visible to it. A transaction whose id is next or
//     later was assigned it after that snapshot, took its event ids after
//     that, and the identity sequence (CACHE 1) hands ids out in
//     increasing order: they are above floor.
//
// So for a horizon h, the newest sample with next <= h gives a floor that
// every event the horizon must bring back lies above, and the read
// becomes an index range scan of (pseudonym, id > floor) instead of
// every row of the subjects. Without such a sample (a new process, a
// transaction older than every sample kept) the read is the unbounded
// one, as before.
//
// Samples are kept in memory per process: a mark lives in the memory of
// the process that read it, so they travel together. The list keeps the
// newest samples densely and thins the older ones (a mark may be hours
// old; an older sample only lowers the floor, never makes it wrong).
type idFloor struct {
	mu      sync.Mutex
	samples []sample // next and floor both increasing
}

type sample struct{ next, floor int64 }

// maxSamples bounds the list; on overflow every second sample of its
// older half goes.
const maxSamples = 256

// add records a read's sample: next is the next transaction id read after
// its snapshot was taken (ReadNextTransactionId through age()), floor the
// newest event id it saw.
func (f *idFloor) add(next, floor int64) {
	if next <= 0 || floor <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Reads finish in any order: insert by next, then keep the floors a
	// running maximum (a sample's floor holds for every later next).
	i, found := slices.BinarySearchFunc(f.samples, next, func(s sample, next int64) int { return cmp.Compare(s.next, next) })
	if found {
		f.samples[i].floor = max(f.samples[i].floor, floor)
	} else {
		f.samples = slices.Insert(f.samples, i, sample{next, floor})
	}
	if i > 0 {
		f.samples[i].floor = max(f.samples[i].floor, f.samples[i-1].floor)
	}
	for j := i + 1; j < len(f.samples) && f.samples[j].floor < f.samples[i].floor; j++ {
		f.samples[j].floor = f.samples[i].floor
	}
	if len(f.samples) > maxSamples {
		old, kept := f.samples[:maxSamples/2], f.samples[:0]
		for i := 0; i < len(old); i += 2 {
			kept = append(kept, old[i])
		}
		f.samples = append(kept, f.samples[maxSamples/2:]...)
	}
}

// below returns the floor for horizon h: every event written by a
// transaction h or later has an id above it. ok is false when no sample
// is old enough.
func (f *idFloor) below(h int64) (floor int64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := sort.Search(len(f.samples), func(i int) bool { return f.samples[i].next > h })
	if i == 0 {
		return 0, false
	}
	return f.samples[i-1].floor, true
}
