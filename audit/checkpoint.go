package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is the signed statement of a log's size and root hash
// (C2SP tlog-checkpoint).
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   [32]byte
}

// body returns the checkpoint note text: "origin\nsize\nbase64(root)\n".
func (c Checkpoint) body() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Hash[:]) + "\n"
}

// Sign returns a signed note of the checkpoint of the log's current size.
func (l *Log) Sign(ctx context.Context, r Reader) ([]byte, error) {
	size, err := r.LogSize(ctx)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: log size: %w", err)
	}
	l.sawCommitted(size)
	root, err := tlog.TreeHash(size, l.hashReader(ctx, r.LogHashes))
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: tree hash of size %d: %w", size, err)
	}
	msg, err := note.Sign(&note.Note{Text: Checkpoint{Origin: l.origin, Size: size, Hash: root}.body()}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint of size %d: %w", size, err)
	}
	return msg, nil
}

// Publish signs and saves a checkpoint at most once per every, whenever
// the log has grown past the last saved checkpoint, until ctx is done.
// Failures are logged and retried at the next tick: the log itself stays
// intact, only the published checkpoint lags.
func (l *Log) Publish(ctx context.Context, r Reader, save func(ctx context.Context, note []byte) error, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := l.publish(ctx, r, save); err != nil && ctx.Err() == nil {
			slog.ErrorContext(ctx, "audit: publish checkpoint", "origin", l.origin, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publish saves a new checkpoint if the log is larger than the saved one.
// Reading the saved checkpoint each time keeps several nodes from
// publishing the same size over and over.
func (l *Log) publish(ctx context.Context, r Reader, save func(ctx context.Context, note []byte) error) error {
	size, err := r.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("log size: %w", err)
	}
	saved, err := r.Checkpoint(ctx)
	if err != nil && portrait.ErrorCode(err) != portrait.ENOTFOUND {
		return fmt.Errorf("read saved checkpoint: %w", err)
	}
	// A saved checkpoint that does not verify (signed before a key
	// rotation) is replaced.
	if c, err := ParseCheckpoint(saved, l.vkey); err == nil && c.Size >= size {
		return nil
	}
	msg, err := l.Sign(ctx, r)
	if err != nil {
		return err
	}
	if err := save(ctx, msg); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// ErrSignature reports a checkpoint that is not validly signed by the
// expected key.
var ErrSignature = errors.New("checkpoint signature does not verify")

// ParseCheckpoint verifies that msg is a note signed by verifierKey and
// parses its C2SP tlog-checkpoint body. The origin must be the key's name.
// Extension lines after the root hash are allowed and ignored.
func ParseCheckpoint(msg []byte, verifierKey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(verifierKey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("verifier key %q: %w (want name+hash+base64key, as served at /v1/log/key)", verifierKey, err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			var by []string
			for _, s := range unverified.Note.UnverifiedSigs {
				by = append(by, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
			}
			return Checkpoint{}, fmt.Errorf("%w: not signed by key %s+%08x (signed only by %s): the log key changed or the note is forged", ErrSignature, v.Name(), v.KeyHash(), strings.Join(by, ", "))
		}
		return Checkpoint{}, fmt.Errorf("%w by key %s+%08x: %v", ErrSignature, v.Name(), v.KeyHash(), err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return Checkpoint{}, fmt.Errorf("checkpoint body has %d lines, want origin, size and root hash", len(lines)-1)
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("checkpoint origin %q is not the key name %q", c.Origin, v.Name())
	}
	if c.Size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || c.Size < 0 || lines[1] != strconv.FormatInt(c.Size, 10) {
		return Checkpoint{}, fmt.Errorf("checkpoint size %q is not a decimal count", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != len(c.Hash) {
		return Checkpoint{}, fmt.Errorf("checkpoint root hash %q is not base64 of 32 bytes", lines[2])
	}
	copy(c.Hash[:], h)
	return c, nil
}
