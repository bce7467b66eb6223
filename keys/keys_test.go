package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func master(b byte) []byte { return bytes.Repeat([]byte{b}, MasterSize) }

func mustNew(t testing.TB, b byte) *Keyring {
	t.Helper()
	k, err := New(master(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParse(t *testing.T) {
	good := Encode(master(7))
	tests := []struct {
		name, in, wantErr string
	}{
		{"good", good, ""},
		{"trailing newline", good + "\n", ""},
		{"empty", "", "empty"},
		{"wrong prefix", "portrait-master-key-v2:" + base64.StdEncoding.EncodeToString(master(7)), "does not start with"},
		{"bad base64", Prefix + "%%%not base64", "not standard base64"},
		{"short", Prefix + base64.StdEncoding.EncodeToString(master(7)[:16]), "decodes to 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k.Pseudonym("u1") != mustNew(t, 7).Pseudonym("u1") {
					t.Fatal("parsed keyring differs from the one made from the same master")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
	if _, err := New(master(1)[:31]); err == nil {
		t.Fatal("New accepted a 31-byte master")
	}
}

func TestGenerateLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, err := Generate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), Prefix) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("key file is not one line starting with %s: %q", Prefix, b)
	}
	k2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Pseudonym("x") != k2.Pseudonym("x") {
		t.Fatal("loaded key differs from generated key")
	}
	if _, err := Generate(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Generate over an existing file: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a world-readable key file: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load of a missing file: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(EnvVar, "")
	if _, ok, err := FromEnv(); ok || err != nil {
		t.Fatalf("unset: ok=%v err=%v", ok, err)
	}
	t.Setenv(EnvVar, Encode(master(3)))
	k, ok, err := FromEnv()
	if !ok || err != nil || k.Pseudonym("a") != mustNew(t, 3).Pseudonym("a") {
		t.Fatalf("set: ok=%v err=%v", ok, err)
	}
	t.Setenv(EnvVar, "nonsense")
	if _, ok, err := FromEnv(); !ok || err == nil || !strings.Contains(err.Error(), EnvVar) {
		t.Fatalf("bad: ok=%v err=%v", ok, err)
	}
}

// Invariant 4: pseudonyms are deterministic per master and unlinkable
// across masters.
func TestPseudonym(t *testing.T) {
	a, b := mustNew(t, 1), mustNew(t, 2)
	p := a.Pseudonym("user-42")
	if p != a.Pseudonym("user-42") {
		t.Fatal("pseudonym not deterministic")
	}
	if len(p) != 32 {
		t.Fatalf("pseudonym %q: want 32 hex chars", p)
	}
	if _, err := hex.DecodeString(string(p)); err != nil {
		t.Fatal(err)
	}
	if p == b.Pseudonym("user-42") {
		t.Fatal("different masters gave the same pseudonym")
	}
	if p == a.Pseudonym("user-43") || strings.Contains(string(p), "user") {
		t.Fatal("pseudonym is not a keyed hash of the id")
	}
	if bytes.Equal(a.IdemHash(p, "k1"), a.IdemHash(p, "k2")) || !bytes.Equal(a.IdemHash(p, "k1"), a.IdemHash(p, "k1")) {
		t.Fatal("IdemHash not deterministic or not distinct")
	}
	if bytes.Equal(a.IdemHash("ab", "c"), a.IdemHash("a", "bc")) {
		t.Fatal("IdemHash parts are not separated")
	}
}

// Key separation: every derived key differs, and each differs across masters.
func TestDerivedKeysDistinct(t *testing.T) {
	a, b := mustNew(t, 1), mustNew(t, 2)
	seen := map[string]string{}
	for name, key := range map[string][]byte{
		"a.log": a.LogKey().Seed(), "a.receipt": a.ReceiptKey().Seed(),
		"b.log": b.LogKey().Seed(), "b.receipt": b.ReceiptKey().Seed(),
	} {
		if other, ok := seen[string(key)]; ok {
			t.Fatalf("%s and %s share key material", name, other)
		}
		seen[string(key)] = name
	}
	if a.ID() == b.ID() {
		t.Fatal("fingerprints collide")
	}
}

func TestEnvelope(t *testing.T) {
	k := mustNew(t, 1)
	s, c, err := k.NewSubject("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if s.Pseudonym != k.Pseudonym("alice@example.com") {
		t.Fatal("subject pseudonym mismatch")
	}
	if bytes.Contains(s.SealedID, []byte("alice")) {
		t.Fatal("sealed id holds the plaintext id")
	}
	ct := c.Seal([]byte(`{"city":"Hangzhou"}`), []byte("event"))
	// A fresh keyring from the same master (another node, after restart)
	// unwraps the same key.
	k2 := mustNew(t, 1)
	c2, err := k2.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := c2.Open(ct, []byte("event"))
	if err != nil || string(pt) != `{"city":"Hangzhou"}` {
		t.Fatalf("round trip: %q %v", pt, err)
	}
	if id, err := k2.SubjectID(s); err != nil || id != "alice@example.com" {
		t.Fatalf("SubjectID = %q, %v", id, err)
	}
	if _, err := c2.Open(ct, []byte("other")); err == nil {
		t.Fatal("opened with the wrong additional data")
	}

	// Wrong master cannot unwrap.
	if _, err := mustNew(t, 9).Open(s); err == nil {
		t.Fatal("a different master unwrapped the data key")
	}

	tamper := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	for i := range []int{0, len(s.WrappedKey) / 2, len(s.WrappedKey) - 1} {
		bad := s
		bad.WrappedKey = tamper(s.WrappedKey, i)
		if _, err := mustNew(t, 1).Open(bad); err == nil {
			t.Fatalf("tampered wrapped key (byte %d) unwrapped", i)
		}
	}
	// A wrapped key moved to another subject does not unwrap there.
	moved := s
	moved.Pseudonym = k.Pseudonym("mallory")
	if _, err := mustNew(t, 1).Open(moved); err == nil {
		t.Fatal("wrapped key unwrapped under another pseudonym")
	}
	for _, i := range []int{0, 12, len(ct) - 1} {
		if _, err := c2.Open(tamper(ct, i), []byte("event")); err == nil {
			t.Fatalf("tampered ciphertext (byte %d) opened", i)
		}
	}
	if _, err := c2.Open(ct[:10], nil); err == nil {
		t.Fatal("truncated ciphertext opened")
	}
}

// Invariant 4: a subject created again after erasure gets a new key, and
// no cache serves the old one.
func TestCacheForgetAndRecreate(t *testing.T) {
	k := mustNew(t, 1)
	s1, c1, _ := k.NewSubject("bob")
	if got, _ := k.Open(s1); got != c1 {
		t.Fatal("cache did not return the cipher made by NewSubject")
	}
	if !k.Holds(s1.Pseudonym) {
		t.Fatal("Holds: false for a key just opened")
	}
	k.Forget(s1.Pseudonym)
	if k.cache.get(s1.Pseudonym, s1.WrappedKey) != nil || k.Holds(s1.Pseudonym) {
		t.Fatal("Forget left the cipher cached")
	}
	s2, _, _ := k.NewSubject("bob")
	c2, err := k.Open(s2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Open(c1.Seal([]byte("x"), nil), nil); err == nil {
		t.Fatal("the new subject key opened data sealed with the erased key")
	}
	// An Open with the old wrapped key must not get the new cipher.
	if c, _ := k.Open(s1); c == c2 {
		t.Fatal("cache served the new cipher for the old wrapped key")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(64)
	ci, _ := newCipher(make([]byte, 32))
	for i := range 1000 {
		c.put(portrait.Pseudonym(fmt.Sprint(i)), nil, ci)
	}
	if n := c.len(); n > 64 {
		t.Fatalf("cache holds %d entries, bound is 64", n)
	}
}

func TestCipherConcurrent(t *testing.T) {
	k := mustNew(t, 1)
	_, c, _ := k.NewSubject("carol")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				msg := []byte(fmt.Sprint(g, i))
				pt, err := c.Open(c.Seal(msg, nil), nil)
				if err != nil || !bytes.Equal(pt, msg) {
					t.Errorf("concurrent round trip: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestToken(t *testing.T) {
	k := mustNew(t, 1)
	now := time.Now()
	p := k.Pseudonym("dave")
	tok := k.IssueToken(p, time.Hour)
	if got, err := k.CheckToken(tok, now); err != nil || got != p {
		t.Fatalf("CheckToken = %q, %v", got, err)
	}
	if tok == k.IssueToken(p, time.Hour) {
		t.Fatal("two tokens are identical: no random id")
	}
	if _, err := k.CheckToken(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
	// Forged: same payload signed by another master.
	forged := mustNew(t, 2).IssueToken(p, time.Hour)
	// Tampered: the payload changed to another pseudonym, MAC kept.
	parts := strings.Split(tok, ".")
	otherPayload := strings.Split(k.IssueToken(k.Pseudonym("eve"), time.Hour), ".")[1]
	for name, bad := range map[string]string{
		"forged":       forged,
		"tampered":     parts[0] + "." + otherPayload + "." + parts[2],
		"bad mac":      parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-2] + "AA",
		"no mac":       parts[0] + "." + parts[1],
		"wrong prefix": "pt1." + parts[1] + "." + parts[2],
		"empty":        "",
		"garbage":      "pt1.!!!.???",
	} {
		if _, err := k.CheckToken(bad, now); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("%s token: err = %v, want ErrTokenInvalid", name, err)
		}
	}
}

// CM-5: no way of printing or logging a Keyring or Cipher reveals key bytes.
func TestNoKeyLeak(t *testing.T) {
	k := mustNew(t, 5)
	_, c, _ := k.NewSubject("frank")
	secrets := [][]byte{k.LogKey().Seed(), k.ReceiptKey().Seed(), master(5)}
	var buf bytes.Buffer
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		fmt.Fprintf(&buf, format+"\n", k)
		fmt.Fprintf(&buf, format+"\n", c)
		fmt.Fprintf(&buf, format+"\n", struct{ K *Keyring }{k})
		fmt.Fprintf(&buf, format+"\n", []any{k, c})
	}
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "keys", k, "cipher", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "keys", k, "cipher", c)
	j, _ := json.Marshal(map[string]any{"k": k, "c": c})
	buf.Write(j)
	out := buf.String()
	if !strings.Contains(out, "keys.Keyring{id:"+k.ID()+"}") {
		t.Fatalf("placeholder missing from output:\n%s", out)
	}
	for _, s := range secrets {
		for _, enc := range []string{string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s), fmt.Sprint(s[:8])[1:12]} {
			if strings.Contains(out, enc) {
				t.Fatalf("output reveals key bytes (%q):\n%s", enc, out)
			}
		}
	}
	var _ ed25519.PrivateKey = k.LogKey()
}

func BenchmarkSeal200(b *testing.B) {
	k := mustNew(b, 1)
	_, c, _ := k.NewSubject("bench")
	msg := bytes.Repeat([]byte("x"), 200)
	ad := []byte("event")
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		c.Seal(msg, ad)
	}
}

func BenchmarkOpen200(b *testing.B) {
	k := mustNew(b, 1)
	_, c, _ := k.NewSubject("bench")
	ct := c.Seal(bytes.Repeat([]byte("x"), 200), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPseudonym(b *testing.B) {
	k := mustNew(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		k.Pseudonym("user-1234567")
	}
}

func BenchmarkOpenSubjectCached(b *testing.B) {
	k := mustNew(b, 1)
	s, _, _ := k.NewSubject("bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenSubjectMiss opens the keys of more subjects than the
// cache holds, in turn, as a batch derivation over 10⁶ subjects does:
// every Open unwraps and every put evicts.
func BenchmarkOpenSubjectMiss(b *testing.B) {
	k := mustNew(b, 1)
	subs := make([]portrait.SubjectKey, 2*DefaultCacheSize)
	for i := range subs {
		subs[i], _, _ = k.NewSubject(fmt.Sprint("bench-", i))
	}
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		if _, err := k.Open(subs[i%len(subs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's CPU time so far: under a loaded machine the
// CPU per operation compares where the wall time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A token says when it was issued, so that an erasure can end every token
// issued before it; its id is what a sign-out records, and differs from
// the name of all the subject's sessions.
func TestTokenIssued(t *testing.T) {
	k := mustNew(t, 1)
	p := k.Pseudonym("dave")
	before := time.Now().Truncate(time.Second)
	tok := k.IssueToken(p, time.Hour)
	got, err := k.ParseToken(tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.Pseudonym != p || got.Issued.Before(before) || got.Issued.After(time.Now()) || got.Expires.Sub(got.Issued) != time.Hour {
		t.Errorf("ParseToken = %+v", got)
	}
	if !bytes.Equal(got.ID, SessionID(tok)) || bytes.Equal(got.ID, SubjectSessions(p)) || bytes.Equal(SessionID(string(p)), SubjectSessions(p)) {
		t.Error("session ids are not distinct")
	}
	if !IsToken(tok) || IsToken("pk_admin_123") {
		t.Error("IsToken")
	}
}

// Invariant 4: forgetting an erased subject zeroes its unwrapped key and
// the cipher, even one a caller still holds, seals and opens nothing more.
func TestForgetZeroesKey(t *testing.T) {
	k := mustNew(t, 1)
	s, c, _ := k.NewSubject("carol")
	sealed := c.Seal([]byte("secret"), EventAD(s.Pseudonym))
	if c.key == [32]byte{} || c.Destroyed() {
		t.Fatal("a fresh cipher has a zero key")
	}
	k.Forget(s.Pseudonym)
	if !c.Destroyed() || c.key != [32]byte{} {
		t.Fatal("Forget left the unwrapped key in memory")
	}
	if k.cache.get(s.Pseudonym, s.WrappedKey) != nil {
		t.Fatal("Forget left the cipher cached")
	}
	if _, err := c.Open(sealed, EventAD(s.Pseudonym)); !errors.Is(err, ErrDestroyed) {
		t.Fatalf("destroyed cipher opened a value: %v", err)
	}
	if out := c.Seal([]byte("late"), nil); out != nil {
		t.Fatal("destroyed cipher sealed a value")
	}
	// Forgetting a subject that is not cached is harmless.
	k.Forget("nobody")
}
