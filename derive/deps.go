package derive

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are what an Engine is built from.
type Deps struct {
	Store  Store
	Point  *policy.Point
	Ledger *consent.Ledger
	Keys   *keys.Keyring
	Log    *audit.Log
}

// Store is the part of the store contract (portrait.Store) that an Engine
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	ScanEvents(ctx context.Context, grants []policy.Grant, since time.Time, into *portrait.EventPage) error
	EventsAfter(ctx context.Context, grants []policy.Grant, after map[portrait.Pseudonym]portrait.EventMark) (map[portrait.Pseudonym][]portrait.StoredEvent, int64, error)
	Generation(ctx context.Context) (int64, error)
	Labels(ctx context.Context, g policy.Grant) ([]portrait.LabelValue, error)
	LabelsFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.LabelValue, error)
	LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error)
	LogSize(ctx context.Context) (int64, error)
	ProfilesFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.ProfileValue, error)
	Pseudonyms(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.Pseudonym, error)
	Pending(ctx context.Context, after int64, limit int) ([]portrait.PendingMark, error)
	PendingCommitted(ctx context.Context, ids []int64) ([]int64, error)
	States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
	SubjectsAfter(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.SubjectKey, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
