package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/portrait-dev/portrait/guard"
)

// Sorted runs, then cluster (issue 14, target 1; migrations 0040, 0060).
// Ingest writes each transaction's events once, as a sorted run of
// events_new listed in event_runs; the mover takes the oldest runs,
// merged by (pseudonym, id), into the clustered events table. Each move is
// one transaction through Update's group commit, INSERT … SELECT then
// DELETE of the same runs, so an event is in exactly one place at every
// commit: a reader, the idempotency check, the expiry sweep and erasure,
// which all look in both, never see it twice or miss it, and a crash
// mid-move leaves the transaction unwritten.
//
// When it runs: a goroutine the engine starts at Open. It yields the
// writer to ingest: while events are being written it moves nothing until
// the runs pile up past moveHigh events or moveRuns runs (then it moves
// batches until they are back under), and it clusters the rest once no
// event has been written for moveIdle, a batch at a time, stopping as
// soon as writing resumes. A burst is thus absorbed at the cost of writing
// each event once, and clustered after. It is a hint-driven loop, not a
// correctness mechanism: nothing depends on how soon events move, since
// every read covers both tables, so another process opening the file (or
// this one after a crash) sees every event, and its own mover clusters
// what it finds. Close stops the loop after the move under way; it does
// not drain the runs, which the next Open's mover does.

// Mover bounds: a move carries the oldest runs holding at most moveBatch
// events, at least one run (a transaction of tens of milliseconds that
// holds the one writer, so ingest waits at most that long for it); the
// runs pile up to moveHigh events or moveRuns runs while ingest writes
// (a subject's read seeks once per run, so moveRuns bounds it), and move
// once no event has been written for moveIdle. Variables only so that
// tests can shrink them before Open.
var (
	moveBatch = 10_000
	moveHigh  = 200_000
	moveRuns  = 512
	moveIdle  = time.Second
)

// mover is the engine's background clustering.
type mover struct {
	pending atomic.Int64 // events written into runs and not yet known to be moved: a hint
	runs    atomic.Int64 // runs written and not yet known to be moved: a hint
	last    atomic.Int64 // unix nanoseconds of the last write
	batch   int          // moveBatch; fields so tests can change them
	high    int
	maxRuns int
	idle    time.Duration
	wake    chan struct{} // buffered: the runs are past the high-water mark
	task
}

// appended records n events written as one run by a transaction (which
// may yet roll back: pending and runs are hints, and a move that finds
// fewer settles them).
func (m *mover) appended(n int) {
	if n == 0 {
		return
	}
	m.last.Store(time.Now().UnixNano())
	r := m.runs.Add(1)
	if m.pending.Add(int64(n)) >= int64(m.high) || r >= int64(m.maxRuns) {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// over reports whether the runs are past the high-water mark.
func (m *mover) over() bool {
	return m.pending.Load() >= int64(m.high) || m.runs.Load() >= int64(m.maxRuns)
}

// start begins the mover's loop; pending and runs are what Open found.
func (db *engine) startMover(pending, runs int64) {
	m := &db.mover
	m.batch, m.high, m.maxRuns, m.idle = moveBatch, moveHigh, moveRuns, moveIdle
	m.wake = make(chan struct{}, 1)
	m.pending.Store(pending)
	m.runs.Store(runs)
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
			p, r := m.pending.Load(), m.runs.Load()
			idle := time.Since(time.Unix(0, m.last.Load())) >= m.idle
			if p <= 0 && r <= 0 || !idle && !m.over() {
				break
			}
			select {
			case <-stop:
				return
			default:
			}
			n, runs, more, err := db.moveOnce(context.Background(), m.batch)
			if err != nil {
				// The events stay in their runs, where every read finds
				// them; the next tick tries again.
				break
			}
			settle(&m.pending, p, int64(n), !more)
			settle(&m.runs, r, int64(runs), !more)
			if !more {
				break
			}
		}
	}
}

// settle lowers a hint, read as before a move that moved n events (or
// runs), by n; if that move emptied the runs and nothing was written
// meanwhile, it is zero.
func settle(pending *atomic.Int64, before int64, n int64, emptied bool) {
	for {
		p := pending.Load()
		q := max(p-n, 0)
		if emptied && p == before {
			q = 0
		}
		if pending.CompareAndSwap(p, q) {
			return
		}
	}
}

// moveOnce moves the oldest runs holding up to limit events (at least
// one run) into the clustered table in one transaction and returns how
// many events and runs moved, and whether runs are left.
func (db *engine) moveOnce(ctx context.Context, limit int) (moved, runs int, more bool, err error) {
	err = db.Update(ctx, func(t guard.Tx) error {
		var err error
		moved, runs, more, err = t.(*txn).move(ctx, limit)
		return err
	})
	if err != nil {
		return 0, 0, true, err
	}
	return moved, runs, more, nil
}

// move moves the oldest runs, at least one and as many as hold at most
// limit events, into events, sorted by the clustered key so that each
// page of a subject's run of the clustered table is written once per move,
// and deletes them from events_new and event_runs. The runs are chosen
// first, so every statement acts on the same rows. OR IGNORE spares
// SQLite the statement journal, which copied every page of the clustered
// table the insert touched (it did not already hold): nothing can
// conflict, since an event is in one table only and an idempotency key is
// refused in both, and if a row were ignored all the same the counts
// would differ and the move refuse.
func (tx *txn) move(ctx context.Context, limit int) (moved, runs int, more bool, err error) {
	var last sql.NullInt64
	if err := tx.tx.QueryRowContext(ctx, `SELECT max(run), count(*) FROM (SELECT run, sum(n) OVER (ORDER BY run) AS upto FROM event_runs)
		WHERE upto <= ?1 OR run = (SELECT min(run) FROM event_runs)`, limit).Scan(&last, &runs); err != nil {
		return 0, 0, true, fmt.Errorf("move events: %w", err)
	}
	if !last.Valid {
		return 0, 0, false, nil
	}
	// The subjects' earliest expiries first, while the events are still
	// in their runs (expiry.go).
	if _, err := tx.tx.ExecContext(ctx, moveExpirySQL, last.Int64); err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: expiries: %w", last.Int64, err)
	}
	res, err := tx.tx.ExecContext(ctx, moveInsert+` INTO events (`+eventColumns+`)
		SELECT `+eventColumns+` FROM events_new WHERE run <= ? ORDER BY pseudonym, id`, last.Int64)
	if err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: %w", last.Int64, err)
	}
	in, err := res.RowsAffected()
	if err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: %w", last.Int64, err)
	}
	res, err = tx.tx.ExecContext(ctx, `DELETE FROM events_new WHERE run <= ?`, last.Int64)
	if err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: %w", last.Int64, err)
	}
	out, err := res.RowsAffected()
	if err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: %w", last.Int64, err)
	}
	if in != out {
		// Cannot happen under the write lock; refuse rather than lose or
		// double an event.
		return 0, 0, true, fmt.Errorf("move runs up to %d: copied %d but would delete %d", last.Int64, in, out)
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM event_runs WHERE run <= ?`, last.Int64); err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: %w", last.Int64, err)
	}
	if err := tx.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM event_runs)`).Scan(&more); err != nil {
		return 0, 0, true, fmt.Errorf("move runs up to %d: %w", last.Int64, err)
	}
	return int(in), runs, more, nil
}

// moveInsert is the move's verb; a variable only so that
// BenchmarkMoveCost can measure the statement journal it avoids.
var moveInsert = `INSERT OR IGNORE`

// Cluster moves every event still in a run into the clustered table now,
// in transactions of at most moveBatch events, and returns how many
// moved. The engine does this by itself in the background; Cluster is for
// tests, benchmarks that charge clustering to ingest, and an operator who
// wants the runs empty (before a file backup read by an older version,
// say).
func (db *DB) Cluster(ctx context.Context) (int, error) {
	total := 0
	for {
		n, _, more, err := db.e.moveOnce(ctx, db.e.mover.batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("cluster events: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

// Backlog reports how many events, in how many runs, wait to be
// clustered (for benchmarks and operators).
func (db *DB) Backlog(ctx context.Context) (events, runs int64, err error) {
	if err := db.e.read.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0), count(*) FROM event_runs`).Scan(&events, &runs); err != nil {
		return 0, 0, fmt.Errorf("cluster backlog: %w", err)
	}
	return events, runs, nil
}
