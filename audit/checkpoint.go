package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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
// It signs only a tree it has checked: every record up to that size has
// been hashed from its data (see Verifier), so a record edited in the
// store is refused rather than signed over.
func (l *Log) Sign(ctx context.Context, r Reader) ([]byte, error) {
	size, root, err := l.Head(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	l.sawCommitted(size)
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
// publishing the same size over and over. The saved checkpoint must be
// one this log signed and the verified tree must extend it: otherwise
// the log was wound back or rewritten, and nothing is signed over it.
func (l *Log) publish(ctx context.Context, r Reader, save func(ctx context.Context, note []byte) error) error {
	// The saved checkpoint first, then the head at the log's size: with
	// several nodes appending and publishing, an honest log read after a
	// checkpoint is never smaller than it.
	saved, ok, err := l.saved(ctx, r)
	if err != nil {
		return l.alert(err)
	}
	size, root, err := l.Head(ctx, r)
	if err != nil {
		return err
	}
	if ok {
		if err := l.extends(ctx, r, size, root, saved); err != nil {
			return l.alert(err)
		}
		if saved.Size >= size {
			return nil
		}
	}
	msg, err := note.Sign(&note.Note{Text: Checkpoint{Origin: l.origin, Size: size, Hash: root}.body()}, l.signer)
	if err != nil {
		return fmt.Errorf("sign checkpoint of size %d: %w", size, err)
	}
	if err := save(ctx, msg); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// extends checks that the verified tree of size and root extends the
// signed checkpoint saved, by a consistency proof over the stored hashes.
func (l *Log) extends(ctx context.Context, r Reader, size int64, root tlog.Hash, saved Checkpoint) error {
	switch {
	case saved.Size > size:
		return tampered(-1, "the newest signed checkpoint covers %d entries but the log holds %d: entries were removed and the head wound back", saved.Size, size)
	case saved.Size == size:
		if saved.Hash != root {
			return tampered(-1, "the log of %d entries does not give the root of the signed checkpoint of that size: entries were changed", size)
		}
		return nil
	case saved.Size == 0:
		return nil
	}
	p, err := tlog.ProveTree(size, saved.Size, storeHashes(ctx, r))
	if err != nil {
		return proofError(err)
	}
	if tlog.CheckTree(p, size, root, saved.Size, saved.Hash) != nil {
		return tampered(-1, "the verified log of %d entries does not extend the signed checkpoint of %d: entries before %d were changed", size, saved.Size, saved.Size)
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
