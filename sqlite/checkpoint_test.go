package sqlite

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// No COMMIT checkpoints: the write connection's automatic checkpoint is
// off, so a decision never waits for a checkpoint's fsync; and the WAL
// stays bounded all the same, because the checkpointer copies it in the
// background and has the next leader restart it. Without the leader's
// restart the WAL only grows while commits keep coming (measured: 292 MB
// after 45 s of decisions).
func TestCheckpointOffTheWritePath(t *testing.T) {
	defer func(d time.Duration, n int) { checkpointEvery, restartFrames = d, n }(checkpointEvery, restartFrames)
	checkpointEvery, restartFrames = 2*time.Millisecond, 32
	db := openTest(t)
	ctx := context.Background()

	var auto int
	if err := db.write.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Errorf("write connection's wal_autocheckpoint = %d, want 0: a COMMIT would run the checkpoint while holding the writer", auto)
	}

	// Commits back to back from several callers, as under load: a
	// background checkpoint never finds the WAL quiet at its end.
	const writers, each = 4, 1000 // about 22 MB of WAL if it never restarted
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := db.Update(ctx, subject(fmt.Sprintf("p%d-%05d", w, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const n = writers * each
	st, err := os.Stat(db.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// Restarted, the WAL stays near restartFrames' 128 KiB while the
	// checkpointer keeps up; on a starved machine (load 10 on two cores)
	// its ticks come late and the file's high-water mark reached 7 MB.
	// Half of never restarting still tells the two apart.
	if st.Size() > 11<<20 {
		t.Errorf("WAL is %d bytes after %d commits: the checkpointer does not keep it bounded", st.Size(), n)
	}
	if !stored(t, db, fmt.Sprintf("p%d-%05d", writers-1, each-1)) {
		t.Error("last subject not readable")
	}
}

// The leader checkpoints on the write connection only when the background
// checkpoint copied the whole WAL, so that its checkpoint can restart the
// WAL; while a read pins frames (a derivation's long page read began before
// them) neither can, and the leader would only hold the writer to copy
// what the background checkpoint copies beside it.
func TestLeaderCheckpointsOnlyToRestart(t *testing.T) {
	defer func(d time.Duration, n int) { checkpointEvery, restartFrames = d, n }(checkpointEvery, restartFrames)
	checkpointEvery, restartFrames = 2*time.Millisecond, 32
	db := openTest(t)
	ctx := context.Background()
	if err := db.Update(ctx, subject("first")); err != nil {
		t.Fatal(err)
	}
	// A read transaction that began before the commits below pins them.
	conn, err := db.read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM subjects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	commits := func(prefix string) {
		for i := range 300 {
			if err := db.Update(ctx, subject(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
			if i%50 == 0 {
				time.Sleep(5 * time.Millisecond) // let the checkpointer look
			}
		}
	}
	// A tick may have found the WAL all copied before the read pinned
	// anything past its start (the migrations' and the first commit's
	// frames are all behind it), and the next leader rightly checkpoints
	// once for that. One commit past the read's start ends that: from
	// then on no tick finds every frame copied. A tick already under way
	// may still end with the old answer, so one leader checkpoint is
	// allowed; the old rule held the writer on nearly every tick.
	if err := db.Update(ctx, subject("pin")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	db.ckpt.restart.Store(false)
	before := db.ckpt.onWriter.Load()
	commits("pinned")
	if got := db.ckpt.onWriter.Load() - before; got > 1 {
		t.Errorf("%d checkpoints held the writer while a read pinned the WAL, want at most 1", got)
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	commits("free")
	if db.ckpt.onWriter.Load() == 0 {
		t.Error("no leader checkpoint once nothing pinned the WAL: it would grow without bound")
	}
}
