package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints off the write path (issue 14, target 3). SQLite's automatic
// checkpoint runs inside the COMMIT that takes the WAL past its threshold
// and waits there for the fsync of every database page it copied, while
// the one write connection is held: measured, decisions' COMMITs of
// 149–187 ms, several in a row, which were the p99 of decisions at 500/s
// (docs/BENCHMARKS.md). So no COMMIT checkpoints (wal_autocheckpoint(0)):
//
//   - a goroutine runs a PASSIVE checkpoint on a read connection every
//     checkpointEvery; PASSIVE takes neither the write lock nor blocks
//     readers, so commits go on while it copies and syncs;
//   - SQLite restarts the WAL from its beginning only when the writer
//     begins on a WAL whose every frame is in the database file, which
//     with commits every few milliseconds never happens by chance (the
//     WAL then grows without bound). So once the checkpointer finds the
//     WAL past restartFrames and has copied all of it, the next leader, before its group begins,
//     runs one PASSIVE checkpoint on the write connection: it copies only
//     the frames since the background one, and the group's first write
//     restarts the WAL if no reader is still on it (else a later leader
//     tries again).
//
// Erasure's TruncateWAL is unchanged (a TRUNCATE checkpoint on the writer).

// checkpointEvery and restartFrames are variables so that tests can
// change them before Open.
var (
	checkpointEvery = 250 * time.Millisecond
	restartFrames   = 4096 // 16 MiB of 4 KiB pages
)

// ckpt is the engine's background checkpointer.
type ckpt struct {
	restart  atomic.Bool  // the WAL is past restartFrames, all copied: the next leader checkpoints
	onWriter atomic.Int64 // checkpoints the leaders ran (for tests)
	task
}

func (db *engine) startCheckpointer() {
	db.ckpt.start(func(stop <-chan struct{}) { db.checkpointLoop(stop, checkpointEvery, restartFrames) })
}

func (db *engine) checkpointLoop(stop <-chan struct{}, every time.Duration, frames int) {
	c := &db.ckpt
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		// An error (another checkpoint under way, a full disk) leaves the
		// frames in the WAL, where every read finds them; the next tick
		// tries again.
		// The leader's checkpoint holds the writer while it copies, so it
		// is asked for only when it can restart the WAL: when this one
		// copied every frame. Frames it could not copy are pinned by a
		// read that began before them (a derivation's page read), which
		// blocks the restart too; the leader's checkpoint then only
		// copied, on the writer, what the next tick copies beside it
		// (measured: 50 such checkpoints of ~100 ms each held the writer
		// for 13 % of a 10⁶-event load).
		n, done, err := checkpoint(context.Background(), db.read.QueryRowContext, db.path)
		if err == nil && n >= frames && done == n {
			c.restart.Store(true)
		}
	}
}

// restartWAL runs the write connection's checkpoint the checkpointer asked
// for; the leader calls it before its group takes the connection.
func (db *engine) restartWAL() {
	if db.ckpt.restart.CompareAndSwap(true, false) {
		db.ckpt.onWriter.Add(1)
		checkpoint(context.Background(), db.write.QueryRowContext, db.path)
	}
}

// checkpoint runs a PASSIVE checkpoint and returns the WAL's size in
// frames and how many of them are now in the database file.
func checkpoint(ctx context.Context, queryRow func(context.Context, string, ...any) *sql.Row, path string) (frames, done int, err error) {
	var busy int
	if err := queryRow(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &done); err != nil {
		return 0, 0, fmt.Errorf("checkpoint wal of %s: %w", path, err)
	}
	return frames, done, nil
}

// task is a goroutine the engine runs beside its writer (the mover, the
// checkpointer) until Close.
type task struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// start runs loop on its own goroutine; loop returns once stop is closed.
func (t *task) start(loop func(stop <-chan struct{})) {
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(t.done)
		loop(t.stop)
	}()
}

// end stops the loop and waits for the work under way; a task never
// started ends at once.
func (t *task) end() {
	if t.stop == nil {
		return
	}
	t.once.Do(func() { close(t.stop) })
	<-t.done
}
