package audit

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// Record is one audit-log entry. It never holds personal data: subjects
// appear as keyed pseudonyms and payloads as hashes (invariant 4).
type Record struct {
	Kind    string         `json:"kind"` // decision, consent, suspension, ingest, erasure, audience, …
	Time    time.Time      `json:"time"`
	Actor   string         `json:"actor,omitempty"`   // role:key-id, never a name
	Subject string         `json:"subject,omitempty"` // pseudonym
	Purpose string         `json:"purpose,omitempty"`
	Action  string         `json:"action,omitempty"`
	Allow   *bool          `json:"allow,omitempty"`
	Codes   []string       `json:"codes,omitempty"`  // reason codes and requirement ids
	Digest  string         `json:"digest,omitempty"` // hex SHA-256 of a payload kept elsewhere
	Detail  map[string]any `json:"detail,omitempty"` // counts, declaration ids: nothing personal
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

var (
	_ Writer = portrait.Tx(nil)
	_ Reader = portrait.Store(nil)
)
