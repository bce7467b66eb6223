package oversight

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// Store is the part of the store contract (portrait.Store) that the
// oversight Service uses; any portrait.Store is one. Update's transaction
// is the whole portrait.Tx, since the callback's type is fixed by the
// composite.
type Store interface {
	audit.KindReader // the log, read verified and signed
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
	Suspensions(ctx context.Context) ([]policy.Suspension, error)
	Cases(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.Case, error)
	Reviews(ctx context.Context, status string) ([]portrait.Review, error)
}

// Any portrait.Store serves.
var _ Store = portrait.Store(nil)
