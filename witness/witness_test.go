package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
)

const body = "company.example/log\n42\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"

func signedCheckpoint(t *testing.T) ([]byte, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "company.example/log")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	msg, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg, v
}

// TestInterop: cosignatures made here verify with torchwood, an
// independent implementation of C2SP tlog-cosignature, and torchwood's
// verify here; the verifier key has the same encoding.
func TestInterop(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ours, err := NewSigner("regulator.example/witness", priv)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := torchwood.NewCosignatureSigner("regulator.example/witness", priv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ours.VerifierKey(), theirs.Verifier().String(); got != want {
		t.Fatalf("verifier key %s, torchwood %s", got, want)
	}
	v, err := NewVerifier(ours.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	cp, logV := signedCheckpoint(t)
	for _, tc := range []struct {
		name   string
		signer note.Signer
		verify note.Verifier
	}{
		{"ours signs, torchwood verifies", ours, theirs.Verifier()},
		{"torchwood signs, ours verifies", theirs, v},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := note.Open(cp, note.VerifierList(logV))
			if err != nil {
				t.Fatal(err)
			}
			cosigned, err := note.Sign(n, tc.signer)
			if err != nil {
				t.Fatal(err)
			}
			got, err := note.Open(cosigned, note.VerifierList(logV, tc.verify))
			if err != nil || len(got.Sigs) != 2 {
				t.Fatalf("open: %v, %d sigs", err, len(got.Sigs))
			}
			ts, err := torchwood.CosignatureTimestamp(got.Sigs[1])
			if err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
				t.Errorf("timestamp %d: %v", ts, err)
			}
		})
	}
}

func TestVerifyRefusesForgery(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := NewSigner("regulator.example/witness", priv)
	v, _ := NewVerifier(s.VerifierKey())
	forger, _ := NewSigner("regulator.example/witness", other)
	cp, logV := signedCheckpoint(t)
	n, _ := note.Open(cp, note.VerifierList(logV))

	good, _ := note.Sign(n, s)
	if _, err := Verify(good, v); err != nil {
		t.Fatalf("genuine cosignature: %v", err)
	}
	if _, err := Verify(cp, v); !errors.Is(err, ErrNotCosigned) {
		t.Errorf("checkpoint without cosignature: %v", err)
	}
	forged, _ := note.Sign(n, forger)
	if _, err := Verify(forged, v); !errors.Is(err, ErrNotCosigned) {
		t.Errorf("cosignature by another key: %v", err)
	}
	// A cosignature over another checkpoint body does not transfer.
	other2, _ := note.Sign(&note.Note{Text: strings.Replace(body, "42", "43", 1)}, s)
	sig := other2[bytes.LastIndex(other2, []byte("\n— "))+1:]
	if _, err := Cosign(cp, sig, v); err == nil {
		t.Error("Cosign accepted a cosignature of another tree")
	}
	if _, err := Cosign(cp, good[bytes.LastIndex(good, []byte("\n— "))+1:], v); err != nil {
		t.Errorf("Cosign: %v", err)
	}
}

func TestNewVerifierRejects(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := NewSigner("w.example", priv)
	good := s.VerifierKey()
	skey, logKey, _ := note.GenerateKey(rand.Reader, "w.example")
	_ = skey
	for _, k := range []string{"", "w.example", "w.example+00000000+" + strings.Split(good, "+")[2], logKey, good + "x", "bad name+" + strings.SplitN(good, "+", 2)[1]} {
		if _, err := NewVerifier(k); err == nil {
			t.Errorf("NewVerifier(%q) accepted", k)
		}
	}
	if _, err := NewVerifier(good + "\n"); err != nil {
		t.Errorf("trailing newline: %v", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	cp, _ := signedCheckpoint(t)
	r := Request{OldSize: 7, Proof: [][32]byte{{1}, {2}}, Checkpoint: cp}
	got, err := ParseRequest(r.Marshal())
	if err != nil || got.OldSize != 7 || len(got.Proof) != 2 || got.Proof[1] != [32]byte{2} || !bytes.Equal(got.Checkpoint, cp) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{
		"", "old\n\n", "old 07\n\n", "old -1\n\n", "new 1\n\n", "old 1\nnot-base64\n\n", "old 1\nAAAA\n\n", "old 1\n",
		"old 1\n" + strings.Repeat("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 64) + "\n",
	} {
		if _, err := ParseRequest([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRequest(%q): %v", bad, err)
		}
	}
}

// TestStatement: a statement signed with the cosigner key verifies only
// under its own header, and can never pass as a cosignature.
func TestStatement(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := NewSigner("w.example", priv)
	v, _ := NewVerifier(s.VerifierKey())
	sig, err := s.SignStatement("portrait-order/v1\n", []byte(`{"id":"o1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !v.VerifyStatement("portrait-order/v1\n", []byte(`{"id":"o1"}`), sig) {
		t.Fatal("statement does not verify")
	}
	if v.VerifyStatement("portrait-order/v1\n", []byte(`{"id":"o2"}`), sig) || v.VerifyStatement("other/v1\n", []byte(`{"id":"o1"}`), sig) {
		t.Error("statement verified for another message or header")
	}
	for _, p := range []string{"cosignature/v1\n", "no newline", "two\nlines\n"} {
		if _, err := s.SignStatement(p, nil); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}
