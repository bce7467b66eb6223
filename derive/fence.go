package derive

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
)

// Fence keeps a node's derived writes to the subjects it owns (package
// cluster): Check runs inside each write transaction, before anything is
// written, and fails when another node has taken the bucket of any of the
// subjects since this node did. The transaction then writes nothing.
type Fence interface {
	Check(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error
}

type fenceKey struct{}

// WithFence returns a context under which Subjects writes only while f
// allows it. It travels in the context rather than in Options because one
// engine serves both fenced work (a bucket's work stream) and unfenced
// work (a batch run, a subject's rights request) at once.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

func fenceFrom(ctx context.Context) Fence {
	f, _ := ctx.Value(fenceKey{}).(Fence)
	return f
}
