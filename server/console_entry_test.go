package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/witness"
)

// TestConsoleEntryCosigned: an entry's page says whether the published
// checkpoint that includes it carries another signature (the regulator's
// cosignature, checked by the page with the regulator's key), whether it
// has none, or whether the entry is newer than any published checkpoint
// (FA-6). A cosignature the regulator's key does not verify is refused.
func TestConsoleEntryCosigned(t *testing.T) {
	h, base, _, _ := consoleHarness(t)
	ctx := context.Background()
	c, _, _ := staffClient(t, base, h.staff(policy.Auditor), "/console/log")
	if page := fetchPage(t, c, base+"/console/log/1?lang=zh-CN"); !strings.Contains(page, `id="fresh"`) || !strings.Contains(page, `id="verified"`) {
		t.Errorf("before any checkpoint is published the page does not say it signed the log itself:\n%s", page)
	}
	publish := func(msg []byte) {
		t.Helper()
		if err := h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, msg) }); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := h.log.Sign(ctx, h.store)
	if err != nil {
		t.Fatal(err)
	}
	publish(msg)
	if page := fetchPage(t, c, base+"/console/log/1?lang=zh-CN"); !strings.Contains(page, `id="not-cosigned"`) {
		t.Errorf("a checkpoint signed only by the log is not said to be so:\n%s", page)
	}
	// Another signature on the same checkpoint, on an engine that has not
	// joined a regulator: named, and said to be unchecked.
	other := noteSign(t, msg, h.log.VerifierKey(), "someone.example/witness")
	publish(other)
	if page := fetchPage(t, c, base+"/console/log/1?lang=zh-CN"); !strings.Contains(page, `id="cosigners"`) || !strings.Contains(page, "someone.example/witness") || strings.Contains(page, `id="cosigned"`) {
		t.Errorf("an unchecked signature is not shown as unchecked:\n%s", page)
	}

	// The engine joins a regulator. Its witness cosigns the checkpoint
	// (C2SP tlog-cosignature); the page checks that cosignature with the
	// regulator's key each time it shows it.
	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	reg, err := witness.NewSigner("regulator.example/witness", wkey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := witness.NewVerifier(reg.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	h.server.Regulated(v)
	publish(addSig(t, msg, h.log.VerifierKey(), reg))
	page := fetchPage(t, c, base+"/console/log/1?lang=zh-CN")
	if !strings.Contains(page, `id="cosigned"`) || !strings.Contains(page, "regulator.example/witness") || !strings.Contains(page, `id="verified"`) {
		t.Errorf("the regulator's cosignature is not shown as checked:\n%s", page)
	}

	// The company's store holds a checkpoint "cosigned" under the
	// regulator's name with a key that is not the regulator's: the page
	// says the cosignature does not verify, not that it is there.
	_, forged, _ := ed25519.GenerateKey(rand.Reader)
	fake, err := witness.NewSigner("regulator.example/witness", forged)
	if err != nil {
		t.Fatal(err)
	}
	publish(addSig(t, msg, h.log.VerifierKey(), fake))
	page = fetchPage(t, c, base+"/console/log/1?lang=zh-CN")
	if !strings.Contains(page, `id="cosign-bad"`) || strings.Contains(page, `id="cosigned"`) {
		t.Errorf("a forged cosignature is not refused:\n%s", page)
	}
	// A checkpoint with no cosignature at all, on a joined engine, is
	// refused the same way.
	publish(msg)
	if page := fetchPage(t, c, base+"/console/log/1?lang=zh-CN"); !strings.Contains(page, `id="cosign-bad"`) {
		t.Errorf("a joined engine's checkpoint without the regulator's cosignature is not flagged:\n%s", page)
	}
}

// noteSign adds an Ed25519 note signature by name to the log's signed
// checkpoint msg.
func noteSign(t *testing.T, msg []byte, logKey, name string) []byte {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return addSig(t, msg, logKey, signer)
}

// addSig adds s's signature (a note signer, or a witness's cosignature)
// to the log's signed checkpoint msg.
func addSig(t *testing.T, msg []byte, logKey string, s note.Signer) []byte {
	t.Helper()
	v, err := note.NewVerifier(strings.TrimSpace(logKey))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	out, err := note.Sign(n, s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
