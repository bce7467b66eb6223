package keys

import (
	"bytes"
	"fmt"
	"sync"

	portrait "github.com/portrait-dev/portrait"
)

// A Run keeps the ciphers one job opens while it needs them: a batch
// derivation opens a Run per page and closes it once the page is
// written. Open unwraps a key the Keyring's cache does not hold without
// putting it there: a batch run over more subjects than the cache holds
// (10⁶ against DefaultCacheSize) would only evict what other callers use,
// and the eviction was most of an Open's cost in such a run.
//
// The Keyring knows every open Run, and Forget destroys the subject's
// cipher in each of them as it does in the cache: an erased subject's
// key does not outlive its erasure in memory while a page holding it is
// under way (invariant 4). A Run does not open a key of a subject
// forgotten while it is open, even from a wrapped key read before the
// erasure. Close drops the Run and destroys the ciphers it unwrapped
// itself, so a page's keys are zeroed as soon as it is written.
//
// A Run is safe for concurrent use.
type Run struct {
	k      *Keyring
	max    int
	mu     sync.Mutex
	m      map[portrait.Pseudonym]runEntry
	forgot map[portrait.Pseudonym]bool // forgotten while the run is open
	closed bool
}

type runEntry struct {
	wrapped []byte
	c       *Cipher
	own     bool // unwrapped by the run, not shared with the cache
}

// Run opens a Run keeping at most max ciphers. Past that it hands keys
// out without keeping them, out of Forget's reach, as a key the cache
// has evicted is: max should cover what the job opens (a batch page
// sizes its Run to the page). The caller must Close it.
func (k *Keyring) Run(max int) *Run {
	r := &Run{k: k, max: max, m: make(map[portrait.Pseudonym]runEntry, max), forgot: make(map[portrait.Pseudonym]bool)}
	k.runsMu.Lock()
	if k.runs == nil {
		k.runs = make(map[*Run]bool)
	}
	k.runs[r] = true
	k.runsMu.Unlock()
	return r
}

// Open returns the Cipher of a stored subject, as Keyring.Open does: from
// the Run if it opened s before, else from the Keyring's cache, else by
// unwrapping s's key. A key unwrapped here is kept by the Run only, not
// put in the Keyring's cache, where a run over more subjects than the
// cache holds would only evict what other callers use. The Run keeps
// s.WrappedKey, which the caller must not modify.
func (r *Run) Open(s portrait.SubjectKey) (*Cipher, error) {
	p := s.Pseudonym
	r.mu.Lock()
	e, ok := r.m[p]
	forgot := r.forgot[p]
	r.mu.Unlock()
	if ok && bytes.Equal(e.wrapped, s.WrappedKey) {
		return e.c, nil
	}
	if forgot {
		return nil, fmt.Errorf("open data key of subject %s: %w", p, ErrDestroyed)
	}
	own := false
	c := r.k.cache.get(p, s.WrappedKey)
	if c == nil {
		var err error
		if c, err = r.k.unwrap(s); err != nil {
			return nil, err
		}
		own = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.forgot[p] {
		// Forgotten while the key was unwrapped: it is not kept, nor
		// handed out.
		if own {
			c.destroy()
		}
		return nil, fmt.Errorf("open data key of subject %s: %w", p, ErrDestroyed)
	}
	if !r.closed && (ok || len(r.m) < r.max) {
		if ok && e.own {
			e.c.destroy() // a key this subject no longer has
		}
		r.m[p] = runEntry{wrapped: s.WrappedKey, c: c, own: own}
	}
	return c, nil
}

// Get returns the cipher the Run opened for pseudonym, or nil. It does
// not compare the wrapped key: for a caller that knows the subject's
// row has not changed since the Run opened it (its governance generation
// has not moved: erasure moves it).
func (r *Run) Get(pseudonym portrait.Pseudonym) *Cipher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[pseudonym].c
}

// Len returns how many ciphers the Run keeps.
func (r *Run) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// Close drops the Run from its Keyring and destroys the ciphers it
// unwrapped itself; those it took from the cache stay the cache's. A nil
// Run's Close does nothing.
func (r *Run) Close() {
	if r == nil {
		return
	}
	r.k.runsMu.Lock()
	delete(r.k.runs, r)
	r.k.runsMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.m {
		if e.own {
			e.c.destroy()
		}
	}
	r.m, r.closed = nil, true
}

// forget destroys pseudonym's cipher in r and refuses to open it again.
func (r *Run) forget(pseudonym portrait.Pseudonym) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.m[pseudonym]; ok {
		e.c.destroy()
		delete(r.m, pseudonym)
	}
	if !r.closed {
		r.forgot[pseudonym] = true
	}
}
