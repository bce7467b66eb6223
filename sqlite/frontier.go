package sqlite

import (
	"context"

	"github.com/portrait-dev/portrait/audit"
)

// The audit log's frontier in memory. An append reads the roots of the
// complete subtrees of the log it extends (audit.Frontier); they were a
// query per decision (the LogHashes read, 7.6 % of a made decision's CPU).
// The stored hashes of a committed log of size n never change, and one
// process owns a SQLite file, so the engine keeps the frontier of its
// last committed log (engine.front) and a commit group the frontier of
// its transaction's (group.front), as it keeps the head:
//
//   - it is used only at the size it was made for: the group takes the
//     engine's only if the head its transaction read from the log_head
//     row (once, as before) is that size, so a head moved behind this
//     engine's back (another handle on the file, a wound-back head) makes
//     the group read the frontier from the store instead;
//   - each AppendLog advances it by the hashes it stored (Frontier.Next,
//     which drops it if they do not continue it), a rolled-back member
//     restores the one from before it (group.step), and only a COMMIT
//     that succeeded publishes it, with the head: a rollback, a failed
//     commit or a crash leaves the engine's as it was, at a size that
//     the store's committed log has or will never again have.
//
// Nothing checks the log against it: a verifier reads the stored hashes
// and records as before, so an edited row is still found; the frontier
// only keeps this process's appends on the tree it committed.

// keptFrontier takes the engine's frontier for the transaction if it is
// for the size the transaction read (g.head).
func (g *group) keptFrontier() {
	if f := g.db.front.Load(); f != nil && f.Size == g.head {
		g.front = f
	}
}

// publishFrontier makes the committed transaction's frontier the
// engine's; called after a COMMIT that succeeded, with the head.
func (g *group) publishFrontier() {
	if g.front != nil && g.front.Size == g.head {
		g.db.front.Store(g.front)
	}
}

// frontierHashes answers LogHashes from the transaction's frontier if
// every index is one of it.
func (tx *txn) frontierHashes(ctx context.Context, indexes []int64) ([][32]byte, bool) {
	if _, err := tx.LogSize(ctx); err != nil {
		return nil, false // the caller's read reports it
	}
	if tx.readFrontier(ctx) == nil {
		return nil, false
	}
	return tx.g.front.Hashes(indexes)
}

// readFrontier returns the frontier of the transaction's log, read from
// the store in one query if the transaction has none of its size yet, so that the rest
// of the group and the next transactions do not read it; nil if it cannot
// be read (an append then fails on its own reads, or on the contiguity
// check). AppendLog calls it too, so that every transaction that appends
// commits a frontier, even when the Log took the hashes it needed from its
// own cache.
func (tx *txn) readFrontier(ctx context.Context) *audit.Frontier {
	g := tx.g
	if !g.known {
		return nil
	}
	if g.front != nil && g.front.Size == g.head {
		return g.front
	}
	var hs [][32]byte
	if idx := audit.FrontierIndexes(g.head); len(idx) > 0 {
		var err error
		if hs, err = shared(prepared{tx}).LogHashes(ctx, idx); err != nil {
			return nil
		}
	}
	g.front = audit.NewFrontier(g.head, hs)
	return g.front
}
