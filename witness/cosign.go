package witness

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"
)

// algCosignatureV1 is the note signature type of Ed25519 cosignatures
// (tlog-cosignature, "Format").
const algCosignatureV1 = 0x04

// Signer makes timestamped Ed25519 cosignatures; it is a note.Signer, so
// note.Sign adds its signature line to a checkpoint.
type Signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	// Now gives the cosignature timestamp; time.Now when nil.
	Now func() time.Time
}

var _ note.Signer = (*Signer)(nil)

// NewSigner returns a cosigner named name (a schema-less URL such as
// "regulator.example/witness") with key.
func NewSigner(name string, key ed25519.PrivateKey) (*Signer, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("witness %q: key has %d bytes, want an Ed25519 private key", name, len(key))
	}
	return &Signer{name: name, key: key, hash: keyHash(name, key.Public().(ed25519.PublicKey))}, nil
}

// Name implements note.Signer.Name.
func (s *Signer) Name() string { return s.name }

// KeyHash implements note.Signer.KeyHash.
func (s *Signer) KeyHash() uint32 { return s.hash }

// Sign implements note.Signer.Sign: msg is the checkpoint body, and the
// signature is timestamp (8 bytes, big-endian) || Ed25519 signature over
// the cosignature/v1 message.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now().Unix()
	if t <= 0 {
		return nil, errors.New("cosign: the clock is before 1970")
	}
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, 8+ed25519.SignatureSize), uint64(t))
	return append(sig, ed25519.Sign(s.key, message(uint64(t), msg))...), nil
}

// VerifierKey returns the note verifier key of the cosigner,
// "name+hash+base64(0x04||pubkey)", served at GET /v1/witness/key.
func (s *Signer) VerifierKey() string {
	pub := s.key.Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%08x+%s", s.name, s.hash, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
}

// Verifier checks cosignatures of one cosigner; it is a note.Verifier.
type Verifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

var _ note.Verifier = (*Verifier)(nil)

// NewVerifier parses a cosigner's verifier key as VerifierKey writes it.
func NewVerifier(vkey string) (*Verifier, error) {
	vkey = strings.TrimSpace(vkey)
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("witness key %q: want name+hash+base64key as served at /v1/witness/key", vkey)
	}
	name, hash16, key64 := parts[0], parts[1], parts[2]
	if err := checkName(name); err != nil {
		return nil, err
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil || len(hash16) != 8 {
		return nil, fmt.Errorf("witness key %q: key hash %q is not 8 hex digits", vkey, hash16)
	}
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, fmt.Errorf("witness key %q: want a type 0x04 (Ed25519 cosignature/v1) key of %d bytes", vkey, ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(key[1:])
	if uint32(hash) != keyHash(name, pub) {
		return nil, fmt.Errorf("witness key %q: key hash does not match the key", vkey)
	}
	return &Verifier{name: name, hash: uint32(hash), pub: pub}, nil
}

// Name implements note.Verifier.Name.
func (v *Verifier) Name() string { return v.name }

// KeyHash implements note.Verifier.KeyHash.
func (v *Verifier) KeyHash() uint32 { return v.hash }

// Verify implements note.Verifier.Verify.
func (v *Verifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t == 0 || t > 1<<63-1 {
		return false
	}
	return ed25519.Verify(v.pub, message(t, msg), sig[8:])
}

// Time returns the timestamp of a cosignature (the base64 of a note
// signature line, key hash included) by this cosigner.
func Time(sig note.Signature) (time.Time, error) {
	b, err := base64.StdEncoding.DecodeString(sig.Base64)
	if err != nil || len(b) != 4+8+ed25519.SignatureSize {
		return time.Time{}, errors.New("malformed cosignature")
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[4:])), 0), nil
}

// message is the signed message of tlog-cosignature, "Ed25519 signed
// message": a header line, a time line, then the whole checkpoint body.
func message(t uint64, body []byte) []byte {
	return append([]byte("cosignature/v1\ntime "+strconv.FormatUint(t, 10)+"\n"), body...)
}

func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func checkName(name string) error {
	if name == "" || strings.Contains(name, "+") || strings.ContainsFunc(name, unicode.IsSpace) {
		return fmt.Errorf("witness name %q: must be non-empty without spaces or '+' (e.g. \"regulator.example/witness\")", name)
	}
	return nil
}

// SignStatement signs a statement other than a cosignature (a signed
// order, say) with the cosigner key. The message is prefix || msg, where
// prefix is a newline-terminated header line of its own, never
// "cosignature/v1": tlog-cosignature lets a cosigner key sign other
// formats under a different header, and the header keeps a statement
// from ever reading as a cosignature or the reverse.
func (s *Signer) SignStatement(prefix string, msg []byte) ([]byte, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	return ed25519.Sign(s.key, append([]byte(prefix), msg...)), nil
}

// VerifyStatement checks a signature made by SignStatement.
func (v *Verifier) VerifyStatement(prefix string, msg, sig []byte) bool {
	return checkPrefix(prefix) == nil && ed25519.Verify(v.pub, append([]byte(prefix), msg...), sig)
}

func checkPrefix(prefix string) error {
	if !strings.HasSuffix(prefix, "\n") || strings.Count(prefix, "\n") != 1 || strings.HasPrefix(prefix, "cosignature/") || strings.HasPrefix(prefix, "subtree/") {
		return fmt.Errorf("statement prefix %q: want one header line of its own, ending in a newline", prefix)
	}
	return nil
}
