package audit

import (
	"math/bits"

	portrait "github.com/portrait-dev/portrait"
)

// A Frontier is the roots of the complete subtrees of a log of Size
// records: the stored hashes at FrontierIndexes(Size), left to right, and
// all that Append reads from before the records it adds. Once the first
// Size records are committed these hashes never change, so a store whose
// log only its own process appends to (SQLite: one process owns the file)
// can keep the frontier of its committed log in memory, keyed by size,
// and answer an append's LogHashes without a query. A Frontier is never
// changed after it is made; Next returns a new one.
type Frontier struct {
	Size    int64
	indexes []int64    // FrontierIndexes(Size)
	hashes  [][32]byte // the stored hashes at indexes
}

// NewFrontier returns the frontier of a log of size records whose
// hashes at FrontierIndexes(size) are hashes, or nil if there are not as
// many hashes as indexes.
func NewFrontier(size int64, hashes [][32]byte) *Frontier {
	idx := subtreeIndexes(size)
	if len(hashes) != len(idx) {
		return nil
	}
	return &Frontier{Size: size, indexes: idx, hashes: append([][32]byte(nil), hashes...)}
}

// Hashes returns the stored hashes at indexes, each of which must be one
// of the frontier's, and reports whether they all were.
func (f *Frontier) Hashes(indexes []int64) ([][32]byte, bool) {
	out := make([][32]byte, len(indexes))
	for i, x := range indexes {
		k := -1
		for j, y := range f.indexes {
			if x == y {
				k = j
				break
			}
		}
		if k < 0 {
			return nil, false
		}
		out[i] = f.hashes[k]
	}
	return out, true
}

// Next returns the frontier after entries are appended at f.Size, or nil
// if they do not continue it: an index out of place, or Hashes that are
// not the count of stored hashes their record produces (its leaf hash and
// one per complete subtree it finishes). Record n finishes the subtrees
// of the trailing one bits of n, the last of the frontier: they are
// replaced by the root of the subtree it completes, its last hash.
func (f *Frontier) Next(entries []portrait.LogEntry) *Frontier {
	hs := append(make([][32]byte, 0, len(f.hashes)+1), f.hashes...)
	n := f.Size
	for _, e := range entries {
		merged := bits.TrailingZeros64(^uint64(n))
		if e.Index != n || len(e.Hashes) != (merged+1)*HashSize || merged > len(hs) {
			return nil
		}
		var root [32]byte
		copy(root[:], e.Hashes[merged*HashSize:])
		hs = append(hs[:len(hs)-merged], root)
		n++
	}
	return &Frontier{Size: n, indexes: subtreeIndexes(n), hashes: hs}
}
