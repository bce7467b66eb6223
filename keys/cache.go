package keys

import (
	"bytes"
	portrait "github.com/portrait-dev/portrait"
	"hash/maphash"
	"sync"
)

// DefaultCacheSize bounds the unwrapped ciphers a Keyring keeps in memory.
const DefaultCacheSize = 100_000

const shards = 32

// cache maps pseudonyms to unwrapped ciphers. Entries remember the wrapped
// key they came from, so that a subject erased and created again (possibly
// by another node) is never served its old key. When a shard is full an
// arbitrary entry is dropped: unwrapping again costs about a microsecond,
// so a cleverer policy would not pay for itself.
type cache struct {
	seed   maphash.Seed
	max    int // per shard
	shards [shards]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[portrait.Pseudonym]entry
}

type entry struct {
	wrapped []byte
	c       *Cipher
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), max: max(1, size/shards)}
	for i := range c.shards {
		c.shards[i].m = make(map[portrait.Pseudonym]entry)
	}
	return c
}

func (c *cache) shard(p portrait.Pseudonym) *shard {
	return &c.shards[maphash.String(c.seed, string(p))%shards]
}

func (c *cache) get(p portrait.Pseudonym, wrapped []byte) *Cipher {
	s := c.shard(p)
	s.mu.RLock()
	e, ok := s.m[p]
	s.mu.RUnlock()
	if !ok || !bytes.Equal(e.wrapped, wrapped) {
		return nil
	}
	return e.c
}

func (c *cache) put(p portrait.Pseudonym, wrapped []byte, ci *Cipher) {
	s := c.shard(p)
	s.mu.Lock()
	if _, ok := s.m[p]; !ok && len(s.m) >= c.max {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[p] = entry{wrapped: bytes.Clone(wrapped), c: ci}
	s.mu.Unlock()
}

// del drops p's entry and destroys its cipher: only erasure calls it, and
// an erased subject's unwrapped key must not stay in memory (invariant 4).
func (c *cache) del(p portrait.Pseudonym) {
	s := c.shard(p)
	s.mu.Lock()
	e, ok := s.m[p]
	delete(s.m, p)
	s.mu.Unlock()
	if ok {
		e.c.destroy()
	}
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}
