package keys

import (
	"sync"

	portrait "github.com/portrait-dev/portrait"
)

// MaxOpened bounds the keys an Opened keeps; when full they are simply
// dropped, since opening one again costs a subject row read and an unwrap.
const MaxOpened = 100_000

// Opened keeps subjects' opened keys for one governance generation, so
// that a caller which has just read the generation (with the subjects'
// states) reads neither the subject's row nor unwraps its key again.
// Erasure (crypto-shredding) bumps the generation and destroys the
// erasing node's cipher (Forget): the first caller after it on any node
// asks with the new generation, and every key kept is dropped (invariants
// 4 and 5). Package apply keeps one for recommendations and decisions,
// package derive one for incremental derivation.
type Opened = Kept[*Cipher]

// Kept keeps a value per subject read at one governance generation: an
// opened key (Opened), or a stored subject row (ingest). Every change to
// what a subject's key is, its erasure above all, moves the generation,
// so a value kept at the generation a caller has just read is as fresh
// as a read of the store. A caller holding an older generation than the
// one kept gets nothing and keeps nothing, so a slow caller never brings
// back values of a generation that has passed.
//
// Its zero value is ready to use and keeps at most MaxOpened values; past
// Max (if set) or that, it starts again empty. It is safe for concurrent
// use.
type Kept[V any] struct {
	Max int // values kept at most; 0 means MaxOpened

	mu  sync.Mutex
	gen int64
	m   map[portrait.Pseudonym]V
}

// at moves k to generation gen if gen is newer, dropping every value,
// and reports whether k is at gen. k.mu is held.
func (k *Kept[V]) at(gen int64) bool {
	if gen > k.gen {
		k.gen, k.m = gen, nil
	}
	return gen == k.gen
}

// Get returns pseudonym's value kept at generation gen, if there is one.
func (k *Kept[V]) Get(gen int64, pseudonym portrait.Pseudonym) (V, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.at(gen) {
		var zero V
		return zero, false
	}
	v, ok := k.m[pseudonym]
	return v, ok
}

// Put keeps pseudonym's value v, read after generation gen was read.
func (k *Kept[V]) Put(gen int64, pseudonym portrait.Pseudonym, v V) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.at(gen) {
		return
	}
	max := k.Max
	if max <= 0 {
		max = MaxOpened
	}
	if k.m == nil || len(k.m) >= max {
		k.m = make(map[portrait.Pseudonym]V)
	}
	k.m[pseudonym] = v
}

// Len returns how many values are kept.
func (k *Kept[V]) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
