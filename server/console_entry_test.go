package server_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// TestConsoleEntryCosigned: an entry's page says whether the published
// checkpoint that includes it carries another signature (the regulator's
// cosignature, verified before it was published), whether it has none,
// or whether the entry is newer than any published checkpoint (FA-6).
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
	// The regulator's witness adds its signature to the same checkpoint.
	skey, _, err := note.GenerateKey(rand.Reader, "regulator.example/witness")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(h.log.VerifierKey()))
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, signer)
	if err != nil {
		t.Fatal(err)
	}
	publish(cosigned)
	page := fetchPage(t, c, base+"/console/log/1?lang=zh-CN")
	if !strings.Contains(page, `id="cosigned"`) || !strings.Contains(page, "regulator.example/witness") || !strings.Contains(page, `id="verified"`) {
		t.Errorf("the cosignature is not shown:\n%s", page)
	}
}
