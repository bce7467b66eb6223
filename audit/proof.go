package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
)

// ErrRange reports a proof or entry request outside the log (index not
// below size, size beyond the log, from after to). Errors wrapping it are
// also *portrait.Error with code EINVALID, so the HTTP layer answers 400;
// any other error is a storage failure.
var ErrRange = errors.New("out of range")

func rangeError(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &portrait.Error{Code: portrait.EINVALID, Message: msg, Err: ErrRange}
}

// ProofResponse is the JSON body of GET /v1/log/proof/inclusion and
// GET /v1/log/proof/consistency: the proof hashes in RFC 6962 order, each
// base64-encoded.
type ProofResponse struct {
	Hashes [][]byte `json:"hashes"`
}

// NewProofResponse returns the response body for proof hashes.
func NewProofResponse(hashes [][32]byte) ProofResponse {
	p := ProofResponse{Hashes: make([][]byte, len(hashes))}
	for i := range hashes {
		p.Hashes[i] = hashes[i][:]
	}
	return p
}

// size returns the current log size as seen by r.
func (l *Log) size(ctx context.Context, r Reader) (int64, error) {
	n, err := r.LogSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("log size: %w", err)
	}
	l.sawCommitted(n)
	return n, nil
}

// InclusionProof returns the proof that entry index is in the tree of
// size size (RFC 6962 audit path), read with one r.LogHashes call.
func (l *Log) InclusionProof(ctx context.Context, r Reader, index, size int64) ([][32]byte, error) {
	if index < 0 || index >= size {
		return nil, rangeError("inclusion proof: index %d must be at least 0 and below size %d", index, size)
	}
	cur, err := l.size(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	if size > cur {
		return nil, rangeError("inclusion proof: size %d is beyond the log size %d", size, cur)
	}
	p, err := tlog.ProveRecord(size, index, l.hashReader(ctx, r.LogHashes))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	return hashes(p), nil
}

// ConsistencyProof returns the proof that the tree of size to extends the
// tree of size from (RFC 6962 consistency proof). It is empty when from
// is 0 or equals to.
func (l *Log) ConsistencyProof(ctx context.Context, r Reader, from, to int64) ([][32]byte, error) {
	if from < 0 || from > to {
		return nil, rangeError("consistency proof: from %d must be at least 0 and at most to %d", from, to)
	}
	cur, err := l.size(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", from, to, err)
	}
	if to > cur {
		return nil, rangeError("consistency proof: to %d is beyond the log size %d", to, cur)
	}
	if from == 0 || from == to {
		return [][32]byte{}, nil
	}
	p, err := tlog.ProveTree(to, from, l.hashReader(ctx, r.LogHashes))
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", from, to, err)
	}
	return hashes(p), nil
}

// Entry returns entry index exactly as it was hashed, for outside
// verifiers, who check it against the signed tree themselves. Only the
// kind column, which no outsider sees, is checked here: an entry whose
// column does not match its record is refused (ErrTampered).
func (l *Log) Entry(ctx context.Context, r Reader, index int64) ([]byte, error) {
	if index < 0 {
		return nil, rangeError("log entry %d: index must be at least 0", index)
	}
	ds, err := l.Entries(ctx, r, index, index+1)
	if err != nil {
		return nil, err
	}
	return ds[0], nil
}

// MaxEntries bounds the entries one Entries call returns.
const MaxEntries = 4096

// Entries returns entries from (inclusive) to to (exclusive), at most
// MaxEntries, exactly as hashed, with the same check as Entry.
func (l *Log) Entries(ctx context.Context, r Reader, from, to int64) ([][]byte, error) {
	if from < 0 || to <= from || to-from > MaxEntries {
		return nil, rangeError("log entries [%d, %d): want 0 <= from < to, at most %d entries", from, to, MaxEntries)
	}
	cur, err := l.size(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("log entries [%d, %d): %w", from, to, err)
	}
	if to > cur {
		return nil, rangeError("log entries [%d, %d): the log has %d entries", from, to, cur)
	}
	es, err := r.LogEntries(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("log entries [%d, %d): %w", from, to, err)
	}
	if int64(len(es)) != to-from {
		return nil, l.alert(tampered(from, "the store returned %d of entries %d to %d", len(es), from, to-1))
	}
	out := make([][]byte, len(es))
	for i, e := range es {
		if e.Index != from+int64(i) {
			return nil, l.alert(tampered(from+int64(i), "the store returned entry %d in its place", e.Index))
		}
		kind, err := KindOf(e.Data)
		if err != nil {
			return nil, l.alert(tampered(e.Index, "its data is not an audit record (%v)", err))
		}
		if kind != e.Kind {
			return nil, l.alert(tampered(e.Index, "its kind column says %q but its hashed record is a %q: the column was changed", e.Kind, kind))
		}
		out[i] = e.Data
	}
	return out, nil
}

func hashes[H ~[32]byte](p []H) [][32]byte {
	out := make([][32]byte, len(p))
	for i, h := range p {
		out[i] = h
	}
	return out
}
