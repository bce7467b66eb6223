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
// 4 and 5). A caller holding an older generation than the one kept gets
// nothing and keeps nothing, so a slow caller never brings back keys of
// a generation that has passed.
//
// Its zero value is ready to use; it is safe for concurrent use. Package
// apply keeps one for recommendations and decisions, package derive one
// for incremental derivation.
type Opened struct {
	mu  sync.Mutex
	gen int64
	m   map[portrait.Pseudonym]*Cipher
}

// at moves o to generation gen if gen is newer, dropping every key, and
// reports whether o is at gen. o.mu is held.
func (o *Opened) at(gen int64) bool {
	if gen > o.gen {
		o.gen, o.m = gen, nil
	}
	return gen == o.gen
}

// Get returns pseudonym's opened key kept at generation gen, or nil.
func (o *Opened) Get(gen int64, pseudonym portrait.Pseudonym) *Cipher {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.at(gen) {
		return nil
	}
	return o.m[pseudonym]
}

// Put keeps pseudonym's opened key c, opened from a subject row read
// after generation gen was read.
func (o *Opened) Put(gen int64, pseudonym portrait.Pseudonym, c *Cipher) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.at(gen) {
		return
	}
	if o.m == nil || len(o.m) >= MaxOpened {
		o.m = make(map[portrait.Pseudonym]*Cipher)
	}
	o.m[pseudonym] = c
}

// Len returns how many keys are kept.
func (o *Opened) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m)
}
