package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// MaxProof is the most consistency proof lines a request may carry
// (tlog-witness: "The client MUST NOT send more than 63").
const MaxProof = 63

// ContentTypeSize is the media type of a 409 Conflict body, which holds
// the size of the latest cosigned checkpoint.
const ContentTypeSize = "text/x.tlog.size"

// Request is the body of POST /add-checkpoint: the size of the last
// checkpoint the witness cosigned, an RFC 6962 consistency proof from it,
// and the new signed checkpoint.
type Request struct {
	OldSize    int64
	Proof      [][32]byte
	Checkpoint []byte
}

// Marshal encodes r as tlog-witness specifies: "old N", one base64 hash
// per line, an empty line, then the checkpoint.
func (r Request) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ErrMalformed reports a request body that does not follow tlog-witness;
// the witness answers 400 Bad Request.
var ErrMalformed = errors.New("malformed add-checkpoint request")

// ParseRequest decodes an add-checkpoint body.
func ParseRequest(body []byte) (Request, error) {
	var r Request
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	s, found := strings.CutPrefix(string(line), "old ")
	if !ok || !found {
		return r, fmt.Errorf("%w: first line must be \"old SIZE\"", ErrMalformed)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || (len(s) > 1 && s[0] == '0') {
		return r, fmt.Errorf("%w: old size %q is not a decimal without leading zeroes", ErrMalformed, s)
	}
	r.OldSize = n
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return r, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformed)
		}
		if len(line) == 0 {
			break
		}
		if len(r.Proof) == MaxProof {
			return r, fmt.Errorf("%w: more than %d proof lines", ErrMalformed, MaxProof)
		}
		h, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil || len(h) != 32 {
			return r, fmt.Errorf("%w: proof line %d is not a base64 SHA-256 hash", ErrMalformed, len(r.Proof)+1)
		}
		r.Proof = append(r.Proof, [32]byte(h))
	}
	r.Checkpoint = rest
	return r, nil
}

// ConflictError is the witness's 409 answer: the old size in the request
// is not the size of the checkpoint it last cosigned, which is Size.
type ConflictError struct{ Size int64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness has cosigned size %d, not the old size given", e.Size)
}

// StatusError is any other refusal by the witness.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness refused the checkpoint: %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// AddCheckpoint posts r to the witness at base (its submission prefix)
// and returns the checkpoint with the witness's cosignature added, after
// checking that cosignature with v. A 409 answer is a *ConflictError
// carrying the size to retry from.
func AddCheckpoint(ctx context.Context, hc *http.Client, base string, r Request, v note.Verifier) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(base, "/")+"/add-checkpoint", bytes.NewReader(r.Marshal()))
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("add-checkpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("add-checkpoint: read answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		n, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if err != nil || resp.Header.Get("Content-Type") != ContentTypeSize {
			return nil, fmt.Errorf("add-checkpoint: 409 without a %s body", ContentTypeSize)
		}
		return nil, &ConflictError{Size: n}
	default:
		return nil, &StatusError{Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	return Cosign(r.Checkpoint, body, v)
}

// Cosign adds the signature lines sigs (a witness's answer) to the signed
// checkpoint cp, keeping only those by v, and fails unless one of them is
// a valid cosignature by v (tlog-witness: the client concatenates the
// answer to the checkpoint and verifies it with the witness keys).
func Cosign(cp, sigs []byte, v note.Verifier) ([]byte, error) {
	n, err := note.Open(append(append([]byte{}, cp...), sigs...), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("cosignature by %s does not verify: %w", v.Name(), err)
	}
	// Keep the checkpoint's own signatures and the witness's verified
	// ones; drop anything else the witness sent.
	var b bytes.Buffer
	b.Write(cp)
	for _, s := range n.Sigs {
		if !bytes.Contains(cp, []byte(s.Base64)) {
			fmt.Fprintf(&b, "— %s %s\n", s.Name, s.Base64)
		}
	}
	return b.Bytes(), nil
}

// ErrNotCosigned reports a checkpoint without a valid cosignature by the
// required witness.
var ErrNotCosigned = errors.New("checkpoint is not cosigned by the witness")

// Verify checks that the signed note msg carries a valid cosignature by v
// and returns its time. The log's own signature is checked separately
// (audit.ParseCheckpoint).
func Verify(msg []byte, v *Verifier) (note.Signature, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return note.Signature{}, fmt.Errorf("%w %s+%08x: %v", ErrNotCosigned, v.Name(), v.KeyHash(), err)
	}
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			return s, nil
		}
	}
	return note.Signature{}, fmt.Errorf("%w %s+%08x", ErrNotCosigned, v.Name(), v.KeyHash())
}
