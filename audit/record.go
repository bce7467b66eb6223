package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// Record is one audit-log entry. It never holds personal data: subjects
// appear as keyed pseudonyms and payloads as hashes (invariant 4).
type Record struct {
	Kind      string             `json:"kind"` // decision, consent, suspension, ingest, erasure, audience, …
	Time      time.Time          `json:"time"`
	Actor     string             `json:"actor,omitempty"` // role:key-id, never a name
	Pseudonym portrait.Pseudonym `json:"subject,omitempty"`
	Purpose   string             `json:"purpose,omitempty"`
	Action    string             `json:"action,omitempty"`
	Allow     *bool              `json:"allow,omitempty"`
	Codes     []string           `json:"codes,omitempty"`  // reason codes and requirement ids
	Digest    string             `json:"digest,omitempty"` // hex SHA-256 of a payload kept elsewhere
	Detail    map[string]any     `json:"detail,omitempty"` // counts, declaration ids: nothing personal
}

// Writer is what appending needs from a store transaction; portrait.Tx
// satisfies it.
type Writer interface {
	LogSize(ctx context.Context) (int64, error)
	LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	AppendLog(ctx context.Context, entries []portrait.LogEntry) error
	SaveCheckpoint(ctx context.Context, note []byte) error
}

// Reader is what proofs and checkpoints need from a store; portrait.Store
// satisfies it.
type Reader interface {
	LogSize(ctx context.Context) (int64, error)
	LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error)
	LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	Checkpoint(ctx context.Context) ([]byte, error)
}

// KindReader is a Reader that also finds entries by kind through an
// index; portrait.Store satisfies it. The index is a column no hash
// covers, so Verifier.ReadVerifiedKinds checks every entry it returns
// against its hashed record.
type KindReader interface {
	Reader
	LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error)
}

var (
	_ Writer     = portrait.Tx(nil)
	_ Reader     = portrait.Store(nil)
	_ KindReader = portrait.Store(nil)
)

// Decode returns the record that Encode encoded as data. It is the only
// reader of the encoding: code outside this package gets records from the
// verified reads (Verifier.ReadVerified), never by parsing entry data.
func Decode(data []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return Record{}, fmt.Errorf("decode audit record: %w", err)
	}
	if r.Kind == "" {
		return Record{}, errors.New("decode audit record: it has no kind")
	}
	return r, nil
}

// kindPrefix is how every encoded record begins: Kind is the first field
// of Record and Encode writes fields in declaration order.
const kindPrefix = `{"kind":"`

// KindOf returns the kind of the record encoded as data, reading only its
// first bytes when it can (the start-up check reads every record), else
// decoding it.
func KindOf(data []byte) (string, error) {
	if rest, ok := bytes.CutPrefix(data, []byte(kindPrefix)); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 && bytes.IndexByte(rest[:end], '\\') < 0 {
			return string(rest[:end]), nil
		}
	}
	r, err := Decode(data)
	if err != nil {
		return "", err
	}
	return r.Kind, nil
}

// CommittedSizer is a store that keeps the size of its committed log in
// memory, where one process owns the store and every commit that moves
// the head is its own (SQLite). PostgreSQL serves many nodes and has no
// such value.
type CommittedSizer interface {
	CommittedLogSize(ctx context.Context) (int64, error)
}

// CommittedSize returns how far the committed log reaches: from memory
// where r keeps it (CommittedSizer), otherwise read from the store. It is
// for reads that only ask how far to look, such as a decision scanning
// for new marks, whose records are then verified against the tree; a
// check of the log itself (Check, Sign, a read to the head) reads the
// head from the store, so that no check rests on the value in memory.
func CommittedSize(ctx context.Context, r interface {
	LogSize(ctx context.Context) (int64, error)
}) (int64, error) {
	if c, ok := r.(CommittedSizer); ok {
		return c.CommittedLogSize(ctx)
	}
	return r.LogSize(ctx)
}
