package consent

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are what a Ledger is built from.
type Deps struct {
	Store Store
	Point *policy.Point
	Keys  *keys.Keyring
	Log   *audit.Log
}

// Store is the part of the store contract (portrait.Store) that a Ledger
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	ConsentHistory(ctx context.Context, g policy.Grant) ([]portrait.ConsentRecord, error)
	Generation(ctx context.Context) (int64, error)
	Labels(ctx context.Context, g policy.Grant) ([]portrait.LabelValue, error)
	LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error)
	LogSize(ctx context.Context) (int64, error)
	States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	StatesRange(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
	Suspensions(ctx context.Context) ([]policy.Suspension, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
