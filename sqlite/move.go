package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/portrait-dev/portrait/guard"
)

// Append, then cluster (issue 14, target 1; migration 0040). Ingest
// appends events to events_new, a rowid table in arrival order; the mover
// takes the oldest of them, sorted by (pseudonym, id), into the clustered
// events table. Each move is one transaction through Update's group
// commit, INSERT … SELECT then DELETE of the same ids, so an event is in
// exactly one table at every commit: a reader, the idempotency check, the
// expiry sweep and erasure, which all look in both, never see it twice or
// miss it, and a crash mid-move leaves the transaction unwritten.
//
// When it runs: a goroutine the engine starts at Open moves a batch as
// soon as a batch's worth has been appended, and what is left once
// appending has been idle for moveIdle. It is a hint-driven loop, not a
// correctness mechanism: nothing depends on how soon events move, since
// every read covers both tables, so another process opening the file (or
// this one after a crash) sees every event, and its own mover clusters
// what it finds. Close stops the loop after the move under way; it does
// not drain events_new, which the next Open's mover does.

// Mover bounds: a move carries at most moveBatch events (a transaction
// of tens of milliseconds that holds the one writer, so ingest waits at
// most that long for it), and a remainder smaller than that moves once no
// event has been appended for moveIdle. Variables only so that tests can
// shrink them before Open.
var (
	moveBatch = 10_000
	moveIdle  = time.Second
)

// mover is the engine's background clustering.
type mover struct {
	pending atomic.Int64 // events appended and not yet known to be moved: a hint
	last    atomic.Int64 // unix nanoseconds of the last append
	batch   int          // moveBatch; a field so tests can shrink it
	idle    time.Duration
	wake    chan struct{} // buffered: a batch's worth is waiting
	task
}

// appended records n events appended by a transaction (which may yet roll
// back: pending is a hint, and a move that finds fewer settles it).
func (m *mover) appended(n int) {
	if n == 0 {
		return
	}
	m.last.Store(time.Now().UnixNano())
	if m.pending.Add(int64(n)) >= int64(m.batch) {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// start begins the mover's loop; pending is what Open found in events_new.
func (db *engine) startMover(pending int64) {
	m := &db.mover
	m.batch, m.idle = moveBatch, moveIdle
	m.wake = make(chan struct{}, 1)
	m.pending.Store(pending)
	m.start(db.moveLoop)
}

func (db *engine) moveLoop(stop <-chan struct{}) {
	m := &db.mover
	tick := time.NewTicker(m.idle)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-m.wake:
		case <-tick.C:
		}
		for {
			p := m.pending.Load()
			idle := time.Since(time.Unix(0, m.last.Load())) >= m.idle
			if p <= 0 || (p < int64(m.batch) && !idle) {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
			n, err := db.moveOnce(context.Background(), m.batch)
			if err != nil {
				// The events stay in events_new, where every read finds
				// them; the next tick tries again.
				break
			}
			settle(&m.pending, p, n, n < m.batch)
			if n < m.batch {
				break
			}
		}
	}
}

// settle lowers pending, read as before a move that moved n events, by n;
// if that move emptied events_new and nothing was appended meanwhile,
// pending is zero.
func settle(pending *atomic.Int64, before int64, n int, emptied bool) {
	for {
		p := pending.Load()
		q := max(p-int64(n), 0)
		if emptied && p == before {
			q = 0
		}
		if pending.CompareAndSwap(p, q) {
			return
		}
	}
}

// moveOnce moves up to limit of the oldest appended events into the
// clustered table in one transaction and returns how many moved.
func (db *engine) moveOnce(ctx context.Context, limit int) (int, error) {
	var moved int
	err := db.Update(ctx, func(t guard.Tx) error {
		var err error
		moved, err = t.(*txn).move(ctx, limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}

// move moves up to limit of the oldest events of events_new into events,
// sorted by the clustered key so that each page of a subject's run is
// written once per move, and deletes them from events_new. The ids are
// chosen first, so both statements act on the same rows.
func (tx *txn) move(ctx context.Context, limit int) (int, error) {
	var last sql.NullInt64
	if err := tx.tx.QueryRowContext(ctx, `SELECT max(id) FROM (SELECT id FROM events_new ORDER BY id LIMIT ?)`, limit).Scan(&last); err != nil {
		return 0, fmt.Errorf("move events: %w", err)
	}
	if !last.Valid {
		return 0, nil
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO events (`+eventColumns+`)
		SELECT `+eventColumns+` FROM events_new WHERE id <= ? ORDER BY pseudonym, id`, last.Int64)
	if err != nil {
		return 0, fmt.Errorf("move events up to id %d: %w", last.Int64, err)
	}
	in, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("move events up to id %d: %w", last.Int64, err)
	}
	res, err = tx.tx.ExecContext(ctx, `DELETE FROM events_new WHERE id <= ?`, last.Int64)
	if err != nil {
		return 0, fmt.Errorf("move events up to id %d: %w", last.Int64, err)
	}
	out, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("move events up to id %d: %w", last.Int64, err)
	}
	if in != out {
		// Cannot happen under the write lock; refuse rather than lose or
		// double an event.
		return 0, fmt.Errorf("move events up to id %d: copied %d but would delete %d", last.Int64, in, out)
	}
	return int(in), nil
}

// Cluster moves every appended event into the clustered table now, in
// transactions of at most moveBatch events, and returns how many moved.
// The engine does this by itself in the background; Cluster is for tests
// and for an operator who wants events_new empty (before a file backup
// read by an older version, say).
func (db *DB) Cluster(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := db.e.moveOnce(ctx, db.e.mover.batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("cluster events: %w", err)
		}
		if n < db.e.mover.batch {
			return total, nil
		}
	}
}
