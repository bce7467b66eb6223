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

// FenceBatch makes every later batch run (All) of the engine write only
// while f allows it: each page's transaction, the population labels' and
// the forecast fit's record call f.Check first, and a refusal stops the
// run with nothing of the refused transaction stored. A node of a cluster
// sets it when it joins, so that a batch run started on a node that has
// lost its lease (paused past it, cut off) cannot overwrite what the
// current holder derives; incremental work carries its own fence in the
// context (WithFence), which takes precedence. nil removes it.
func (e *Engine) FenceBatch(f Fence) {
	if f == nil {
		e.batchFence.Store(nil)
		return
	}
	e.batchFence.Store(&f)
}

// batchContext returns ctx carrying the engine's batch fence, unless ctx
// already carries one.
func (e *Engine) batchContext(ctx context.Context) context.Context {
	if f := e.batchFence.Load(); f != nil && fenceFrom(ctx) == nil {
		return WithFence(ctx, *f)
	}
	return ctx
}

// checkFence runs the context's fence, if any, in tx for pseudonyms.
func checkFence(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error {
	if f := fenceFrom(ctx); f != nil {
		return f.Check(ctx, tx, pseudonyms)
	}
	return nil
}
