package monitor

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// Store is the part of the store contract (portrait.Store) that a Monitor
// uses; any portrait.Store is one. Update's transaction is the whole
// portrait.Tx, since the callback's type is fixed by the composite.
type Store interface {
	audit.KindReader // the log, read verified
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
	States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	Suspensions(ctx context.Context) ([]policy.Suspension, error)
	Items(ctx context.Context) ([]portrait.Item, error)
	Protected(ctx context.Context, g policy.Grant) ([]portrait.ProtectedValue, error)
	Pseudonyms(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.Pseudonym, error)
	EventsFor(ctx context.Context, grants []policy.Grant, since time.Time) (map[portrait.Pseudonym][]portrait.StoredEvent, error)
	ProfilesFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.ProfileValue, error)
	LabelsFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.LabelValue, error)
	DeterminationsFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.StoredDetermination, error)
	ProtectedFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.ProtectedValue, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
