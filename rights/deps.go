package rights

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are what a rights Service is built from.
type Deps struct {
	Store  Store
	Point  *policy.Point
	Ledger *consent.Ledger
	Keys   *keys.Keyring
	Log    *audit.Log
}

// Store is the part of the store contract (portrait.Store) that a rights Service
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	Cases(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.Case, error)
	Determinations(ctx context.Context, g policy.Grant) ([]portrait.StoredDetermination, error)
	Events(ctx context.Context, g policy.Grant, since time.Time) ([]portrait.StoredEvent, error)
	Labels(ctx context.Context, g policy.Grant) ([]portrait.LabelValue, error)
	Profile(ctx context.Context, g policy.Grant) ([]portrait.ProfileValue, error)
	Reviews(ctx context.Context, status string) ([]portrait.Review, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
