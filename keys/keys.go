package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	portrait "github.com/portrait-dev/portrait"
)

// Prefix starts the text form of a master key.
const Prefix = "portrait-master-key-v1:"

// EnvVar is the environment variable that may hold the master key.
const EnvVar = "PORTRAIT_MASTER_KEY"

// MasterSize is the length of the master secret in bytes.
const MasterSize = 32

// HKDF info strings. Each derived key has its own, so that no two uses
// ever share key material; changing one invalidates everything it made.
const (
	infoWrap      = "portrait/v1/wrap"      // AES-256-GCM key-wrapping key
	infoPseudonym = "portrait/v1/pseudonym" // HMAC-SHA256 pseudonym key
	infoIdem      = "portrait/v1/idempotency"
	infoToken     = "portrait/v1/token"
	infoLog       = "portrait/v1/audit-log-signing"
	infoReceipt   = "portrait/v1/receipt-signing"
	infoWitness   = "portrait/v1/witness-cosigning"
	infoNodes     = "portrait/v1/between-nodes"
)

// Keyring holds the keys derived from one master secret and a bounded cache
// of unwrapped subject ciphers. It is safe for concurrent use.
type Keyring struct {
	wrap    cipher.AEAD
	pseud   *macPool
	idem    *macPool
	token   *macPool
	log     ed25519.PrivateKey
	receipt ed25519.PrivateKey
	witness ed25519.PrivateKey
	nodes   *Cipher // seals what one node leaves another (NodeCipher)
	id      string  // public fingerprint, safe to show
	cache   *cache

	runsMu sync.Mutex
	runs   map[*Run]bool // open Runs, which Forget reaches too
}

// New derives a Keyring from a 32-byte master secret.
func New(master []byte) (*Keyring, error) {
	if len(master) != MasterSize {
		return nil, fmt.Errorf("master key is %d bytes; it must be exactly %d random bytes (make one with Generate)", len(master), MasterSize)
	}
	var derr error
	derive := func(info string, n int) []byte {
		k, err := hkdf.Key(sha256.New, master, nil, info, n)
		if err != nil {
			derr = fmt.Errorf("derive %s: %w", info, err)
			return make([]byte, n)
		}
		return k
	}
	block, err := aes.NewCipher(derive(infoWrap, 32))
	if err != nil {
		return nil, fmt.Errorf("key-wrapping cipher: %w", err)
	}
	wrap, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("key-wrapping cipher: %w", err)
	}
	k := &Keyring{
		wrap:    wrap,
		pseud:   newMacPool(derive(infoPseudonym, 32)),
		idem:    newMacPool(derive(infoIdem, 32)),
		token:   newMacPool(derive(infoToken, 32)),
		log:     ed25519.NewKeyFromSeed(derive(infoLog, ed25519.SeedSize)),
		receipt: ed25519.NewKeyFromSeed(derive(infoReceipt, ed25519.SeedSize)),
		witness: ed25519.NewKeyFromSeed(derive(infoWitness, ed25519.SeedSize)),
		cache:   newCache(DefaultCacheSize),
	}
	if derr != nil {
		return nil, derr
	}
	if k.nodes, err = newCipher(derive(infoNodes, 32)); err != nil {
		return nil, err
	}
	fp := sha256.Sum256(k.log.Public().(ed25519.PublicKey))
	k.id = hex.EncodeToString(fp[:4])
	return k, nil
}

// Encode returns the text form of master: Prefix + base64.
func Encode(master []byte) string {
	return Prefix + base64.StdEncoding.EncodeToString(master)
}

// Parse reads the text form of a master key, as found in a key file or in
// PORTRAIT_MASTER_KEY. Surrounding white space is ignored.
func Parse(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("master key is empty; want " + Prefix + "<base64 of 32 random bytes>, as written by keys.Generate")
	}
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return nil, fmt.Errorf("master key does not start with %q; it must be %s<base64 of 32 bytes> on one line", Prefix, Prefix)
	}
	master, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("master key after %q is not standard base64 (%v); copy the whole line, padding '=' included", Prefix, err)
	}
	if len(master) != MasterSize {
		return nil, fmt.Errorf("master key decodes to %d bytes; it must be %d (was the line cut or is it another kind of key?)", len(master), MasterSize)
	}
	return New(master)
}

// Load reads a master key file. It refuses a file that group or others may
// read, because such a key protects nothing; fix that with chmod 600.
func Load(path string) (*Keyring, error) {
	b, err := ReadPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load master key: %s does not exist (create it with keys.Generate or set %s instead): %w", path, EnvVar, fs.ErrNotExist)
	} else if err != nil {
		return nil, fmt.Errorf("load master key: %w", err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("load master key %s: %w", path, err)
	}
	return k, nil
}

// Generate makes a new random master key, writes it to path with mode 0600
// and returns its Keyring. It never overwrites an existing file: losing a
// master key makes every subject's data unreadable.
func Generate(path string) (*Keyring, error) {
	master := make([]byte, MasterSize)
	rand.Read(master)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("generate master key: %s already exists; refusing to overwrite it (every subject's data depends on it)", path)
		}
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	_, werr := f.WriteString(Encode(master) + "\n")
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("generate master key %s: %w", path, werr)
	}
	return New(master)
}

// FromEnv reads PORTRAIT_MASTER_KEY. ok is false when it is unset or empty.
func FromEnv() (k *Keyring, ok bool, err error) {
	s := os.Getenv(EnvVar)
	if strings.TrimSpace(s) == "" {
		return nil, false, nil
	}
	k, err = Parse(s)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", EnvVar, err)
	}
	return k, true, nil
}

// ID is a short public fingerprint of the keyring (of its audit-log public
// key), for telling keyrings apart in logs. It reveals nothing secret.
func (k *Keyring) ID() string { return k.id }

// Pseudonym returns the keyed pseudonym of a subject id: the first 128 bits
// of HMAC-SHA256 under the pseudonym key, in hex. It is deterministic for a
// master key and unlinkable without it (invariant 4).
func (k *Keyring) Pseudonym(subjectID string) portrait.Pseudonym {
	var sum [sha256.Size]byte
	k.pseud.sum(sum[:0], subjectID, "")
	return portrait.Pseudonym(hex.EncodeToString(sum[:16]))
}

// IdemHash returns a keyed hash of a subject's idempotency key, so that raw
// client keys are never stored.
func (k *Keyring) IdemHash(pseudonym portrait.Pseudonym, key string) []byte {
	return k.idem.sum(make([]byte, 0, sha256.Size), string(pseudonym), key)
}

// NodeCipher seals what one serve node leaves in the store for another
// of the same installation (a monitor run's per-bucket partials, package
// cluster): every node derives it from the master key, nothing else has
// it. It is no subject's key, so erasing a subject does not shred what it
// sealed; what it seals must be short-lived.
func (k *Keyring) NodeCipher() *Cipher { return k.nodes }

// LogKey returns the Ed25519 key that signs audit-log checkpoints.
func (k *Keyring) LogKey() ed25519.PrivateKey { return k.log }

// WitnessKey returns the Ed25519 key a regulator node cosigns company
// checkpoints with (C2SP tlog-cosignature). It is distinct from LogKey,
// as the cosignature spec requires of a key used for a second purpose.
func (k *Keyring) WitnessKey() ed25519.PrivateKey { return k.witness }

// ReceiptKey returns the Ed25519 key that signs consent and erasure receipts.
func (k *Keyring) ReceiptKey() ed25519.PrivateKey { return k.receipt }

// NewSubject makes a subject record for subjectID: a fresh random data key,
// wrapped with the key-wrapping key (the pseudonym as additional data, so a
// wrapped key cannot be moved to another subject), and the id sealed with
// the data key. The returned Cipher seals with that data key.
//
// If the store already holds the subject (EnsureSubjects keeps the first),
// the returned Cipher is not that subject's; callers that may race should
// reread the stored subject and Open it.
func (k *Keyring) NewSubject(subjectID string) (portrait.SubjectKey, *Cipher, error) {
	p := k.Pseudonym(subjectID)
	dk := make([]byte, 32)
	rand.Read(dk)
	c, err := newCipher(dk)
	if err != nil {
		return portrait.SubjectKey{}, nil, err
	}
	wrapped := k.wrap.Seal(nil, nil, dk, wrapAD(p))
	clear(dk)
	s := portrait.SubjectKey{
		Pseudonym:  p,
		WrappedKey: wrapped,
		SealedID:   c.Seal([]byte(subjectID), idAD(p)),
	}
	k.cache.put(p, wrapped, c)
	return s, c, nil
}

// Open returns the Cipher of a stored subject, unwrapping its data key. A
// wrong master key or a tampered, truncated or moved wrapped key is an
// error. Unwrapped ciphers are cached by pseudonym and wrapped key.
func (k *Keyring) Open(s portrait.SubjectKey) (*Cipher, error) {
	if c := k.cache.get(s.Pseudonym, s.WrappedKey); c != nil {
		return c, nil
	}
	c, err := k.unwrap(s)
	if err != nil {
		return nil, err
	}
	k.cache.put(s.Pseudonym, s.WrappedKey, c)
	return c, nil
}

// unwrap makes the Cipher of a stored subject from its wrapped key.
func (k *Keyring) unwrap(s portrait.SubjectKey) (*Cipher, error) {
	dk, err := k.wrap.Open(nil, nil, s.WrappedKey, wrapAD(s.Pseudonym))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key of subject %s: the master key is not the one it was wrapped with, or the key was altered", s.Pseudonym)
	}
	c, err := newCipher(dk)
	clear(dk)
	return c, err
}

// SubjectID opens the sealed subject id of a stored subject.
func (k *Keyring) SubjectID(s portrait.SubjectKey) (string, error) {
	c, err := k.Open(s)
	if err != nil {
		return "", err
	}
	id, err := c.Open(s.SealedID, idAD(s.Pseudonym))
	if err != nil {
		return "", fmt.Errorf("open sealed id of subject %s: %w", s.Pseudonym, err)
	}
	return string(id), nil
}

// Forget drops the cached cipher of pseudonym and destroys it (its key is
// zeroed; it seals and opens nothing more, also for callers still holding
// it), in the cache and in every open Run, which then opens that subject's
// key no more. Erasure calls it after deleting the wrapped key, so that no
// unwrapped key stays in memory.
func (k *Keyring) Forget(pseudonym portrait.Pseudonym) {
	k.cache.del(pseudonym)
	k.runsMu.Lock()
	defer k.runsMu.Unlock()
	for r := range k.runs {
		r.forget(pseudonym)
	}
}

// Holds reports whether an unwrapped key of pseudonym is in memory (the
// cache or an open Run). After Forget nothing may bring an erased
// subject's key back: erasure's tests ask this of every path that opens
// keys.
func (k *Keyring) Holds(pseudonym portrait.Pseudonym) bool {
	s := k.cache.shard(pseudonym)
	s.mu.RLock()
	_, ok := s.m[pseudonym]
	s.mu.RUnlock()
	if ok {
		return true
	}
	k.runsMu.Lock()
	defer k.runsMu.Unlock()
	for r := range k.runs {
		if r.Get(pseudonym) != nil {
			return true
		}
	}
	return false
}

func wrapAD(p portrait.Pseudonym) []byte { return []byte("portrait/wrap/" + p) }
func idAD(p portrait.Pseudonym) []byte   { return []byte("portrait/id/" + p) }

const redacted = "keys.Keyring{REDACTED}"

// String returns a placeholder with the public fingerprint only.
func (k *Keyring) String() string { return "keys.Keyring{id:" + k.id + "}" }

// GoString implements fmt.GoStringer without revealing key bytes.
func (k *Keyring) GoString() string { return k.String() }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %x, %s)
// prints the placeholder (CM-5).
func (k *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue implements slog.LogValuer.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON refuses to reveal keys in JSON.
func (k *Keyring) MarshalJSON() ([]byte, error) { return []byte(`"` + k.String() + `"`), nil }

// macPool reuses HMAC states: hmac.New costs two hash allocations and two
// key blocks, more than the MAC of a short id itself.
type macPool struct{ p sync.Pool }

type macState struct {
	h   hash.Hash
	buf []byte
}

func newMacPool(key []byte) *macPool {
	m := &macPool{}
	m.p.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return m
}

// sum appends the MAC of the length-prefixed parts to dst; the prefix keeps
// ("ab","c") and ("a","bc") apart.
func (m *macPool) sum(dst []byte, a, b string) []byte {
	st := m.p.Get().(*macState)
	st.h.Reset()
	buf := st.buf[:0]
	for _, s := range [2]string{a, b} {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	st.h.Write(buf)
	dst = st.h.Sum(dst)
	if cap(buf) <= 4096 {
		st.buf = buf
	}
	m.p.Put(st)
	return dst
}
