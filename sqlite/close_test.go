package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// walSize is the size of the write-ahead log beside path: 0 if SQLite
// removed it.
func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Close leaves every committed frame in the database file, even when a
// read was still under way as it began (a derivation or a sweep reading
// while serve stopped): it waits for the read to return its connection,
// then checkpoints on the write connection, the last one open. Before, the
// write connection closed first, while the reader still held the file,
// and so checkpointed nothing, and a process that exited before the read
// returned left the frames in the WAL, so that a copy of the file alone
// lost them.
func TestCloseCheckpointsAfterReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portrait.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	e := db.e
	ctx := context.Background()
	for i := range 50 {
		if err := e.Update(ctx, subject(fmt.Sprintf("s%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if walSize(t, path) == 0 {
		t.Fatal("no WAL before Close: the test would mean nothing")
	}
	// A read under way: a query whose rows are open, and that returns its
	// connection only a while after Close begins.
	rows, err := e.read.QueryContext(ctx, `SELECT pseudonym FROM subjects`)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no subject read")
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		rows.Close()
	}()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := walSize(t, path); n != 0 {
		t.Errorf("WAL after Close: %d bytes, want none: frames not in the database file", n)
	}
	// The file alone, opened afresh without its WAL, holds every subject.
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n int
	if err := db2.e.read.QueryRowContext(ctx, `SELECT count(*) FROM subjects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Errorf("the file alone holds %d subjects, want 50", n)
	}
}

// A read that never returns its connection does not hold Close forever:
// after closeWait Close gives up, says so, and still releases the file.
func TestCloseReportsAStuckRead(t *testing.T) {
	defer func(d time.Duration) { closeWait = d }(closeWait)
	closeWait = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "portrait.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.e.Update(ctx, subject("stuck")); err != nil {
		t.Fatal(err)
	}
	rows, err := db.e.read.QueryContext(ctx, `SELECT pseudonym FROM subjects`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	rows.Next()
	start := time.Now()
	err = db.Close()
	if err == nil || !strings.Contains(err.Error(), "read connections still in use") {
		t.Errorf("Close with a read never returned: %v, want an error that says so", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s: it should give up after closeWait", d)
	}
	// The owner lock is released: the file opens again.
	rows.Close()
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	db2.Close()
}
