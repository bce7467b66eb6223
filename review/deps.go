package review

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are what a review Service is built from.
type Deps struct {
	Store  Store
	Point  *policy.Point
	Ledger *consent.Ledger
	Keys   *keys.Keyring
	Log    *audit.Log
}

// Store is the part of the store contract (portrait.Store) that a review Service
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	DeterminationByID(ctx context.Context, id string) (portrait.StoredDetermination, error)
	Determinations(ctx context.Context, g policy.Grant) ([]portrait.StoredDetermination, error)
	LogSize(ctx context.Context) (int64, error)
	ReviewByID(ctx context.Context, id string) (portrait.Review, error)
	Reviews(ctx context.Context, status string) ([]portrait.Review, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
