package sqlite

import (
	"context"
	"os"
	"testing"

	"github.com/portrait-dev/portrait/guard"
)

// InsertEvents prepares each row count's statement once, on the write
// connection, and runs it again for the next batch of that shape, keyed
// and unkeyed apart; Close finalises them before closing the connection,
// so the connection really closes: SQLite removes the WAL only when the
// last connection closes cleanly, and an unfinalised statement keeps it
// open as a zombie.
func TestEventInsertsPreparedOnce(t *testing.T) {
	db := openTest(t)
	// 100 events, every third keyed: 66 unkeyed (a full statement of
	// eventChunk rows and one of 2), 34 keyed (one statement of 34).
	appendEvents(t, db, "p1", 100, 0)
	w := &db.eventWrites
	prepared := map[[2]int]bool{{0, eventChunk}: true, {0, 66 - eventChunk}: true, {1, 34}: true}
	for k := range w.stmts {
		for n, st := range w.stmts[k] {
			if (st != nil) != prepared[[2]int{k, n}] {
				t.Errorf("statement keyed=%d rows=%d prepared = %v, want %v", k, n, st != nil, prepared[[2]int{k, n}])
			}
		}
	}
	before := w.stmts
	appendEvents(t, db, "p2", 100, 100)
	if w.stmts != before {
		t.Error("a second batch of the same shape prepared its statements again")
	}
	if err := db.Update(context.Background(), func(guard.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for k := range w.stmts {
		for n, st := range w.stmts[k] {
			if st != nil {
				t.Errorf("statement keyed=%d rows=%d still open after Close", k, n)
			}
		}
	}
	if _, err := os.Stat(db.path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("WAL still there after Close (%v): the write connection did not close", err)
	}
}
