package apply

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are what the apply services (Service, Audiences) is built from.
type Deps struct {
	Store  Store
	Point  *policy.Point
	Ledger *consent.Ledger
	Keys   *keys.Keyring
	Log    *audit.Log
}

// Store is the part of the store contract (portrait.Store) that the apply services (Service, Audiences)
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	audit.KindReader // the log, read verified
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	DeterminationByID(ctx context.Context, id string) (portrait.StoredDetermination, error)
	Events(ctx context.Context, g policy.Grant, since time.Time) ([]portrait.StoredEvent, error)
	Items(ctx context.Context) ([]portrait.Item, error)
	Labels(ctx context.Context, g policy.Grant) ([]portrait.LabelValue, error)
	Profile(ctx context.Context, g policy.Grant) ([]portrait.ProfileValue, error)
	Pseudonyms(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.Pseudonym, error)
	Reviews(ctx context.Context, status string) ([]portrait.Review, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
	Suspensions(ctx context.Context) ([]policy.Suspension, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
