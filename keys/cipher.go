package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// Cipher seals and opens one subject's payloads with AES-256-GCM and a
// random 96-bit nonce per message. It is built once per subject and is safe
// for concurrent use. A data key must seal fewer than 2^32 messages; a
// subject's events stay far below that.
type Cipher struct {
	aead cipher.AEAD
}

func newCipher(key []byte) (*Cipher, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Overhead is how many bytes Seal adds (nonce and tag).
func (c *Cipher) Overhead() int { return c.aead.Overhead() }

// Seal encrypts plaintext, binding it to ad (for example the field name and
// pseudonym, so that a ciphertext cannot be moved elsewhere).
func (c *Cipher) Seal(plaintext, ad []byte) []byte {
	return c.aead.Seal(make([]byte, 0, len(plaintext)+c.aead.Overhead()), nil, plaintext, ad)
}

// Open decrypts a ciphertext made by Seal with the same ad. A wrong key,
// wrong ad or any altered byte is an error.
func (c *Cipher) Open(ciphertext, ad []byte) ([]byte, error) {
	if len(ciphertext) < c.aead.Overhead() {
		return nil, fmt.Errorf("open sealed value: %d bytes is shorter than the %d-byte nonce and tag", len(ciphertext), c.aead.Overhead())
	}
	p, err := c.aead.Open(nil, nil, ciphertext, ad)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: authentication failed (wrong subject key, wrong context, or altered data)")
	}
	return p, nil
}

// String hides the key.
func (c *Cipher) String() string { return "keys.Cipher{REDACTED}" }

// GoString hides the key.
func (c *Cipher) GoString() string { return c.String() }

// Format prints the placeholder for every verb (CM-5).
func (c *Cipher) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }
