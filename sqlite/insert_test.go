package sqlite

import (
	"context"
	"maps"
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
	p := &db.bulk
	want := map[stmtKey]bool{{insertEvents, eventChunk}: true, {insertEvents, 66 - eventChunk}: true, {insertKeyed, 34}: true}
	if len(p.by) != len(want) {
		t.Errorf("%d statements prepared, want %d: %v", len(p.by), len(want), p.by)
	}
	for k := range want {
		if p.by[k] == nil {
			t.Errorf("statement %v not prepared", k)
		}
	}
	before := maps.Clone(p.by)
	appendEvents(t, db, "p2", 100, 100)
	if !maps.Equal(p.by, before) {
		t.Error("a second batch of the same shape prepared its statements again")
	}
	if err := db.Update(context.Background(), func(guard.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if len(p.by) != 0 {
		t.Errorf("%d statements still open after Close", len(p.by))
	}
	if _, err := os.Stat(db.path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("WAL still there after Close (%v): the write connection did not close", err)
	}
}
