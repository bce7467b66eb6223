package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/rights"
)

func init() { commands["check-signed"] = checkSigned }

// checkSigned verifies a signed document offline — a consent receipt
// (CN-2), an export bundle (SR-2), an erasure receipt (SR-3) or an
// evidence pack (FA-2) — against the handler's public key, which anyone can
// fetch once from GET /v1/receipts/key and keep.
func checkSigned(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("check-signed", stderr)
	kind := fs.String("kind", "", "receipt, export, erasure or evidence")
	file := fs.String("file", "", "the signed JSON document")
	key := fs.String("key", "", "the handler's Ed25519 public key, base64 (GET /v1/receipts/key)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || *key == "" {
		fmt.Fprintln(stderr, "check-signed: --kind, --file and --key are required")
		return errUsage
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*key))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return fmt.Errorf("--key: want the %d-byte Ed25519 public key in base64, as GET /v1/receipts/key prints it", ed25519.PublicKeySize)
	}
	pub := ed25519.PublicKey(raw)
	data, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	switch *kind {
	case "receipt":
		r, err := consent.VerifyReceipt(data, pub)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		fmt.Fprintf(stdout, "%s: valid consent receipt: %s %s, notice version %s, %s\n", *file, r.Purpose, r.Status, r.NoticeVersion, r.Time.Format("2006-01-02 15:04:05 MST"))
	case "export":
		x, err := rights.VerifyExport(data, pub)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		fmt.Fprintf(stdout, "%s: valid export %s of %d events, generated %s\n", *file, x.Schema, len(x.Events), x.Generated.Format("2006-01-02 15:04:05 MST"))
	case "erasure":
		// POST …/erasure answers {"receipt": {…}, "removed": …}: take the
		// response as saved, or the receipt alone.
		var resp struct {
			Receipt json.RawMessage `json:"receipt"`
		}
		if json.Unmarshal(data, &resp) == nil && len(resp.Receipt) > 0 {
			data = resp.Receipt
		}
		rc, err := rights.VerifyReceipt(data, pub)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		fmt.Fprintf(stdout, "%s: valid erasure receipt, audit-log entry %d\n", *file, rc.LogIndex)
	case "evidence":
		ev, err := oversight.Verify(data, pub)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		fmt.Fprintf(stdout, "%s: valid evidence pack, generated %s\n", *file, ev.Generated.Format("2006-01-02 15:04:05 MST"))
	default:
		fmt.Fprintf(stderr, "check-signed: --kind %q: want receipt, export, erasure or evidence\n", *kind)
		return errUsage
	}
	return nil
}
