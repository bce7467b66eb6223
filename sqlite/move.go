package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/portrait-dev/portrait/guard"
)

// Sorted runs, then cluster (issue 14, target 1; migrations 0040, 0060).
// Ingest writes each transaction's events once, as a sorted run of
// events_new listed in event_runs; the mover takes the oldest runs,
// merged by (pseudonym, id), into the clustered events table, in slices
// of their subjects (moveOnce). Each slice is one transaction through
// Update's group commit, INSERT … SELECT then DELETE of the same rows, so
// an event is in exactly one place at every commit: a reader, the
// idempotency check, the expiry sweep and erasure, which all look in
// both, never see it twice or miss it, and a crash mid-slice leaves the
// transaction unwritten (and mid-move, the rest for the next move).
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
// events, at least one run, in slices of about moveSlice events (each a
// transaction of tens of milliseconds that holds the one writer, so
// ingest waits at most that long for it); the
// runs pile up to moveHigh events or moveRuns runs while ingest writes
// (a subject's read seeks once per run, so moveRuns bounds it), and move
// once no event has been written for moveIdle. Variables only so that
// tests can shrink them before Open.
var (
	moveBatch = 100_000
	moveSlice = 10_000
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
	slice   int          // moveSlice
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
	m.batch, m.slice, m.high, m.maxRuns, m.idle = moveBatch, moveSlice, moveHigh, moveRuns, moveIdle
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
// one run) into the clustered table, in slices of the subjects of about
// moveSlice events each, one transaction per slice, and returns how many
// events and runs moved, and whether runs are left.
//
// Why slices (issue 14, session 8): a move costs per clustered page it
// touches, and a subject's page is touched once per move whatever number
// of its events the move brings, so a move of more events is cheaper per
// event (BenchmarkMoveShape, 1,000 subjects: 17.7 µs of CPU per event in
// moves of 10,000, 11.5 in moves of 100,000, 11.6 in moves of 100,000 in
// slices of 10,000). But one move is one transaction, holding the single
// writer while ingest's commits queue: a move of 100,000 events held it
// for seconds. A slice moves every event of the chosen runs whose subject
// sorts below its bound, so each subject's events of all those runs move
// together, as in one large move, while each transaction stays the size
// of a small one, and the commits that queued meanwhile go between
// slices. The last slice moves the rest, whatever a failed or crashed
// earlier attempt left, and drops the runs from event_runs. Between
// slices a run is partly moved; every reader covers both tables, so none
// can tell.
func (db *engine) moveOnce(ctx context.Context, limit int) (moved, runs int, more bool, err error) {
	return db.moveSlices(ctx, limit, (*txn).move)
}

// moveSlices is moveOnce with the statement that moves one slice passed
// in: tx.move, or a layout measured against it (move_bench_test.go).
func (db *engine) moveSlices(ctx context.Context, limit int, slice func(tx *txn, ctx context.Context, last int64, bound any) (int, bool, error)) (moved, runs int, more bool, err error) {
	var last int64
	var bounds []any
	for i := 0; i == 0 || i <= len(bounds); i++ {
		var n int
		err := db.Update(ctx, func(t guard.Tx) error {
			tx := t.(*txn)
			if i == 0 {
				// Planned in the first slice's transaction, behind the
				// commits queued before it: the run whose commit woke the
				// mover is not visible to a read before it commits.
				var err error
				if last, runs, bounds, err = planMove(ctx, tx.tx, limit, db.mover.slice); err != nil || runs == 0 {
					return err
				}
			}
			var bound any // the last slice: every event left in the runs
			if i < len(bounds) {
				bound = bounds[i]
			}
			var err error
			n, more, err = slice(tx, ctx, last, bound)
			return err
		})
		if err != nil {
			return 0, 0, true, err
		}
		if runs == 0 {
			return 0, 0, false, nil
		}
		moved += n
	}
	return moved, runs, more, nil
}

// planMove chooses the oldest runs, at least one and as many as hold at
// most limit events, and the bounds of the slices that move them: the
// subjects found at even steps through the newest of those runs, which is
// sorted by subject, so that each slice carries about slice events when
// the runs hold subjects alike (one slice, the last, moves what remains).
func planMove(ctx context.Context, q querier, limit, slice int) (last int64, runs int, bounds []any, err error) {
	var newest sql.NullInt64
	var total int64
	if err := q.QueryRowContext(ctx, `SELECT max(run), count(*), coalesce(max(upto), 0) FROM (SELECT run, sum(n) OVER (ORDER BY run) AS upto FROM event_runs)
		WHERE upto <= ?1 OR run = (SELECT min(run) FROM event_runs)`, limit).Scan(&newest, &runs, &total); err != nil {
		return 0, 0, nil, fmt.Errorf("move events: %w", err)
	}
	if !newest.Valid {
		return 0, 0, nil, nil
	}
	slices := int((total + int64(slice) - 1) / int64(slice))
	if slices <= 1 {
		return newest.Int64, runs, nil, nil
	}
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM events_new WHERE run = ?`, newest.Int64).Scan(&n); err != nil {
		return 0, 0, nil, fmt.Errorf("move events: %w", err)
	}
	for i := 1; i < slices; i++ {
		var b any
		err := q.QueryRowContext(ctx, `SELECT pseudonym FROM events_new WHERE run = ?1 ORDER BY pseudonym LIMIT 1 OFFSET ?2`,
			newest.Int64, n*int64(i)/int64(slices)).Scan(&b)
		if errors.Is(err, sql.ErrNoRows) {
			break
		}
		if err != nil {
			return 0, 0, nil, fmt.Errorf("move events: %w", err)
		}
		if len(bounds) > 0 && compareKeys(bounds[len(bounds)-1], b) == 0 {
			continue
		}
		bounds = append(bounds, b)
	}
	return newest.Int64, runs, bounds, nil
}

// move moves the events of runs up to last whose subject sorts below
// bound (every event left in them if bound is nil) into events, sorted by
// the clustered key so that each page of a subject's run of the clustered
// table is written once per slice, and deletes them from events_new; the
// last slice (bound nil) also deletes the runs from event_runs. OR IGNORE
// spares SQLite the statement journal, which copied every page of the
// clustered table the insert touched (it did not already hold): nothing
// can conflict, since an event is in one table only and an idempotency
// key is refused in both, and if a row were ignored all the same the
// counts would differ and the move refuse. It reports how many events
// moved and whether runs are left after it.
func (tx *txn) move(ctx context.Context, last int64, bound any) (moved int, more bool, err error) {
	// A slice names its runs by IN, so that SQLite seeks each run's
	// (run, pseudonym) key to the bound rather than reading all of it.
	where, args := `run <= ?1`, []any{last}
	if bound != nil {
		where, args = `run IN (SELECT run FROM event_runs WHERE run <= ?1) AND pseudonym < ?2`, []any{last, bound}
	}
	// When the move takes every run (as a drain, and a sustained
	// ingest's charged move, do), the DELETE names no row: SQLite then
	// clears the table's pages whole (its truncate optimisation, which
	// with secure_delete still zeroes each freed page, SR-3) rather than
	// seeking, deleting and rebalancing row by row, which was the larger
	// part of the DELETE's cost (issue 14, session 9).
	all := false
	if bound == nil {
		if err := tx.tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM event_runs WHERE run > ?)`, last).Scan(&all); err != nil {
			return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
		}
	}
	del, delArgs := `DELETE FROM events_new WHERE `+where, args
	if all {
		del, delArgs = `DELETE FROM events_new`, nil
	}
	// The subjects' earliest expiries first, while the events are still
	// in their runs (expiry.go).
	if _, err := tx.tx.ExecContext(ctx, moveExpiryInto+where+moveExpiryGroup, args...); err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: expiries: %w", last, err)
	}
	res, err := tx.tx.ExecContext(ctx, moveInsert+` INTO events (`+eventColumns+`)
		SELECT `+eventColumns+` FROM events_new WHERE `+where+` ORDER BY pseudonym, id`, args...)
	if err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
	}
	in, err := res.RowsAffected()
	if err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
	}
	res, err = tx.tx.ExecContext(ctx, del, delArgs...)
	if err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
	}
	out, err := res.RowsAffected()
	if err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
	}
	if in != out {
		// Cannot happen under the write lock; refuse rather than lose or
		// double an event.
		return 0, true, fmt.Errorf("move runs up to %d: copied %d but would delete %d", last, in, out)
	}
	if bound != nil {
		return int(in), true, nil
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM event_runs WHERE run <= ?`, last); err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
	}
	if err := tx.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM event_runs)`).Scan(&more); err != nil {
		return 0, true, fmt.Errorf("move runs up to %d: %w", last, err)
	}
	return int(in), more, nil
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
