package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"sync/atomic"
)

// Cipher seals and opens one subject's payloads with AES-256-GCM and a
// random 96-bit nonce per message. It is built once per subject and is safe
// for concurrent use. A data key must seal fewer than 2^32 messages; a
// subject's events stay far below that.
//
// Erasure destroys a Cipher (Keyring.Forget): its copy of the data key is
// zeroed and it seals and opens nothing any more, so an unwrapped key does
// not outlive the subject in this process (invariant 4).
type Cipher struct {
	key  [32]byte
	aead atomic.Pointer[cipher.AEAD] // nil once destroyed
}

// ErrDestroyed is returned by Open after the subject was erased.
var ErrDestroyed = errors.New("the subject's data key was destroyed (erased)")

func newCipher(key []byte) (*Cipher, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("data key: %d bytes, want 32", len(key))
	}
	c := &Cipher{}
	copy(c.key[:], key)
	block, err := aes.NewCipher(c.key[:])
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	c.aead.Store(&aead)
	return c, nil
}

// Overhead is how many bytes Seal adds (nonce and tag).
func (c *Cipher) Overhead() int { return 28 }

// Seal encrypts plaintext, binding it to ad (for example the field name and
// pseudonym, so that a ciphertext cannot be moved elsewhere). A destroyed
// Cipher returns nil, which no Open accepts: a value computed while its
// subject was being erased is never stored readable.
func (c *Cipher) Seal(plaintext, ad []byte) []byte {
	return c.SealAppend(make([]byte, 0, len(plaintext)+c.Overhead()), plaintext, ad)
}

// SealAppend is Seal appending the sealed value to dst and returning the
// extended slice, so that a writer sealing many small values can put
// them in one buffer. A destroyed Cipher returns nil, not dst.
func (c *Cipher) SealAppend(dst, plaintext, ad []byte) []byte {
	a := c.aead.Load()
	if a == nil {
		return nil
	}
	return (*a).Seal(dst, nil, plaintext, ad)
}

// Open decrypts a ciphertext made by Seal with the same ad. A wrong key,
// wrong ad or any altered byte is an error.
func (c *Cipher) Open(ciphertext, ad []byte) ([]byte, error) {
	return c.OpenAppend(nil, ciphertext, ad)
}

// OpenAppend is Open appending the plaintext to dst (dst[:0] reuses its
// memory): a reader that is done with each plaintext before the next —
// a batch derivation decoding a page's events — opens them all into one
// buffer instead of a new one each.
func (c *Cipher) OpenAppend(dst, ciphertext, ad []byte) ([]byte, error) {
	a := c.aead.Load()
	if a == nil {
		return nil, fmt.Errorf("open sealed value: %w", ErrDestroyed)
	}
	if len(ciphertext) < (*a).Overhead() {
		return nil, fmt.Errorf("open sealed value: %d bytes is shorter than the %d-byte nonce and tag", len(ciphertext), (*a).Overhead())
	}
	p, err := (*a).Open(dst, nil, ciphertext, ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: authentication failed (wrong subject key, wrong context, or altered data)")
	}
	return p, nil
}

// destroy zeroes the key and drops the AEAD. The expanded AES key schedule
// inside crypto/aes has no API to clear it; once dropped here and from the
// cache it is unreachable and its memory is reused by the collector.
func (c *Cipher) destroy() {
	c.aead.Store(nil)
	clear(c.key[:])
}

// Destroyed reports whether erasure destroyed the cipher.
func (c *Cipher) Destroyed() bool { return c.aead.Load() == nil && c.key == [32]byte{} }

// String hides the key.
func (c *Cipher) String() string { return "keys.Cipher{REDACTED}" }

// GoString hides the key.
func (c *Cipher) GoString() string { return c.String() }

// Format prints the placeholder for every verb (CM-5).
func (c *Cipher) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }
