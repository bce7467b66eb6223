package sqlite

import (
	"context"
	"sync"
)

// The governance generation in memory. Every request reads it (an API
// key's check, a decision's states, an ingest chunk), and on the read pool
// that was a read transaction per request whose page cache SQLite had
// emptied at the last write: 11 % of a made decision's CPU over HTTP
// (issue 14, session 9). One process owns a SQLite file (lock.go), and
// the generation moves only in a write transaction's bump (tables.Tx), so
// the process can keep the value it last read and forget it whenever one
// of its transactions bumps it; it is kept per file, in the process's
// hold on it, so that every handle on the file forgets it together.
//
// A read races a bump only benignly: a reader notes the epoch before it
// reads the store and keeps what it read only if no bump was forgotten
// since, so a value read before a COMMIT is never kept after the
// committing transaction's forget; and forget runs after the COMMIT,
// before any member of the group is answered, so the request after a
// withdrawal's answer reads the new generation (invariant 5).
type generation struct {
	mu    sync.Mutex
	n     int64
	known bool
	epoch uint64 // moved by every forget
}

// get returns the kept generation, or the epoch to fill it at.
func (g *generation) get() (n int64, epoch uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n, g.epoch, g.known
}

// fill keeps n, read from the store after get returned epoch, unless a
// bump was forgotten since.
func (g *generation) fill(epoch uint64, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.epoch == epoch {
		g.n, g.known = n, true
	}
}

// forget drops the kept generation: a transaction bumped it.
func (g *generation) forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.known = false
	g.epoch++
}

// Generation implements guard.Engine.Generation from memory while no
// transaction of this process has bumped it since it was read. Ping
// (tables.DB's) still reads the store, for a health check.
func (db *engine) Generation(ctx context.Context) (int64, error) {
	if db.closed.Load() {
		return db.DB.Generation(ctx) // reports the closed store
	}
	g := db.gen
	n, epoch, ok := g.get()
	if ok {
		return n, nil
	}
	n, err := db.DB.Generation(ctx)
	if err != nil {
		return 0, err
	}
	g.fill(epoch, n)
	return n, nil
}
