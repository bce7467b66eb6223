package apply

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/keys"
)

// ciphers keeps the opened keys of subjects a request has read, for one
// governance generation (keys.Opened, which derivation uses too): reading
// the subject's row and unwrapping its key was a tenth of a
// recommendation. An erasure (crypto-shredding) bumps the generation, and
// the first request after it on any node reads the generation with the
// subject's state and drops every key kept (invariant 4, 5).
type ciphers = keys.Opened

// cipher returns the opened key of pseudonym, read at generation gen (the
// generation its state was read at), or nil if the subject is not stored.
func (s *Service) cipher(ctx context.Context, gen int64, pseudonym portrait.Pseudonym) (*keys.Cipher, error) {
	if c, ok := s.ciphers.Get(gen, pseudonym); ok {
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
	c, err := s.keys.Open(sub)
	if err != nil {
		return nil, err
	}
	s.ciphers.Put(gen, pseudonym, c)
	return c, nil
}
