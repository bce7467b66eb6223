package apply

import (
	"context"
	"sync"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/keys"
)

// ciphers keeps the opened keys of subjects a request has read, for one
// governance generation: reading the subject's row and unwrapping its
// key was a tenth of a recommendation. An erasure (crypto-shredding)
// bumps the generation, and the first request after it on any node reads
// the generation with the subject's state and drops every key kept
// (invariant 4, 5).
type ciphers struct {
	mu  sync.Mutex
	gen int64
	m   map[portrait.Pseudonym]*keys.Cipher
}

// maxCiphers bounds the keys kept; when full they are simply dropped.
const maxCiphers = 100_000

// cipher returns the opened key of pseudonym, read at generation gen (the
// generation its state was read at), or nil if the subject is not stored.
func (s *Service) cipher(ctx context.Context, gen int64, pseudonym portrait.Pseudonym) (*keys.Cipher, error) {
	cs := &s.ciphers
	cs.mu.Lock()
	if cs.gen != gen {
		cs.gen, cs.m = gen, nil
	}
	c := cs.m[pseudonym]
	cs.mu.Unlock()
	if c != nil {
		return c, nil
	}
	subs, err := s.store.Subjects(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return nil, failClosed("read subject", err)
	}
	sub, ok := subs[pseudonym]
	if !ok {
		return nil, nil
	}
	if c, err = s.keys.Open(sub); err != nil {
		return nil, err
	}
	cs.mu.Lock()
	if cs.gen == gen { // read at gen, and the cache is still at gen
		if cs.m == nil || len(cs.m) >= maxCiphers {
			cs.m = map[portrait.Pseudonym]*keys.Cipher{}
		}
		cs.m[pseudonym] = c
	}
	cs.mu.Unlock()
	return c, nil
}
