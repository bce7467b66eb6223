package audit

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"math/bits"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// tree recomputes a log's Merkle tree from its records, streaming: it
// keeps only the roots of the complete subtrees of the records added so
// far (at most 63 hashes), as tlog's stored-hash layout does. The start-up
// check, the extension of the verified head and `portrait verify --full`
// all feed records through one, so that no stored hash is ever trusted for
// a record whose data was read.
type tree struct {
	n     int64
	stack []tlog.Hash // complete subtree roots, left to right
	h     hash.Hash
	buf   [tlog.HashSize]byte
}

func newTree(n int64, frontier []tlog.Hash) *tree {
	return &tree{n: n, stack: append([]tlog.Hash(nil), frontier...), h: sha256.New()}
}

// leaf returns tlog.RecordHash(data) without allocating a hasher per record.
func (t *tree) leaf(data []byte) tlog.Hash {
	t.h.Reset()
	t.h.Write([]byte{0})
	t.h.Write(data)
	var out tlog.Hash
	t.h.Sum(out[:0])
	return out
}

// add appends record data as record t.n and appends to out the stored
// hashes its append produces (tlog.StoredHashes): the leaf hash, then one
// hash per complete subtree it finishes.
func (t *tree) add(data []byte, out []byte) []byte {
	h := t.leaf(data)
	out = append(out, h[:]...)
	for i := t.n; i&1 == 1; i >>= 1 {
		last := len(t.stack) - 1
		h = tlog.NodeHash(t.stack[last], h)
		t.stack = t.stack[:last]
		out = append(out, h[:]...)
	}
	t.stack = append(t.stack, h)
	t.n++
	return out
}

// root returns the root hash of the tree of the records added so far.
func (t *tree) root() tlog.Hash { return foldRoot(t.stack) }

// foldRoot combines the roots of the complete subtrees of a tree, left to
// right, into its root hash (as tlog.TreeHash does).
func foldRoot(subtrees []tlog.Hash) tlog.Hash {
	if len(subtrees) == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	h := subtrees[len(subtrees)-1]
	for i := len(subtrees) - 2; i >= 0; i-- {
		h = tlog.NodeHash(subtrees[i], h)
	}
	return h
}

// knownRoot computes the root of the tree of size n from the leaf hashes
// of the records at indexes (sorted, distinct, below n) and, for every
// subtree that holds none of them, the stored hash read through hr, in
// one call. If the result equals a signed root, every given leaf is the
// one the signed tree holds at its index (the stored hashes used are then
// proof hashes, as in an inclusion proof, and need no trust).
func knownRoot(n int64, indexes []int64, leaves []tlog.Hash, hr tlog.HashReader) (tlog.Hash, error) {
	if len(indexes) != len(leaves) {
		return tlog.Hash{}, fmt.Errorf("knownRoot: %d indexes, %d leaves", len(indexes), len(leaves))
	}
	for i, x := range indexes {
		if x < 0 || x >= n || (i > 0 && x <= indexes[i-1]) {
			return tlog.Hash{}, fmt.Errorf("knownRoot: record %d is not in order or not in the tree of size %d", x, n)
		}
	}
	// has reports whether any known record lies in [lo, hi).
	has := func(lo, hi int64) bool {
		i := sort.Search(len(indexes), func(i int) bool { return indexes[i] >= lo })
		return i < len(indexes) && indexes[i] < hi
	}
	top := subtrees(n)
	// First pass: the stored hashes of the subtrees with no known record.
	var need []int64
	var collect func(level int, k int64)
	collect = func(level int, k int64) {
		lo, hi := k<<uint(level), (k+1)<<uint(level)
		switch {
		case !has(lo, hi):
			need = append(need, tlog.StoredHashIndex(level, k))
		case level > 0:
			collect(level-1, 2*k)
			collect(level-1, 2*k+1)
		}
	}
	for _, s := range top {
		collect(s.level, s.k)
	}
	got := map[int64]tlog.Hash{}
	if len(need) > 0 {
		hs, err := hr.ReadHashes(need)
		if err != nil {
			return tlog.Hash{}, err
		}
		if len(hs) != len(need) {
			return tlog.Hash{}, fmt.Errorf("read %d stored hashes, got %d", len(need), len(hs))
		}
		for i, x := range need {
			got[x] = hs[i]
		}
	}
	var node func(level int, k int64) tlog.Hash
	node = func(level int, k int64) tlog.Hash {
		lo, hi := k<<uint(level), (k+1)<<uint(level)
		switch {
		case !has(lo, hi):
			return got[tlog.StoredHashIndex(level, k)]
		case level == 0:
			i := sort.Search(len(indexes), func(i int) bool { return indexes[i] >= lo })
			return leaves[i]
		}
		return tlog.NodeHash(node(level-1, 2*k), node(level-1, 2*k+1))
	}
	roots := make([]tlog.Hash, len(top))
	for i, s := range top {
		roots[i] = node(s.level, s.k)
	}
	return foldRoot(roots), nil
}

type subtree struct {
	level int
	k     int64
}

// subtrees returns the complete subtrees that make up the tree of size n,
// left to right (their stored indexes are subtreeIndexes(n)).
func subtrees(n int64) []subtree {
	var out []subtree
	var lo int64
	for lo < n {
		level := bits.Len64(uint64(n-lo)) - 1
		out = append(out, subtree{level, lo >> uint(level)})
		lo += 1 << uint(level)
	}
	return out
}
