package ingest

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Deps are what an Ingester is built from.
type Deps struct {
	Store  Store
	Point  *policy.Point
	Ledger *consent.Ledger
	Keys   *keys.Keyring
	Log    *audit.Log
}

// Store is the part of the store contract (portrait.Store) that an Ingester
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	ExpiredEvents(ctx context.Context, now time.Time, limit int) ([]portrait.StoredEvent, error)
	ExpiredProfile(ctx context.Context, now time.Time, limit int) ([]portrait.FieldRef, error)
	Generation(ctx context.Context) (int64, error)
	Profile(ctx context.Context, g policy.Grant) ([]portrait.ProfileValue, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
