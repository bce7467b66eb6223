package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
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
	// 100 events of one type, every third keyed: 66 unkeyed (a full
	// statement of eventChunk rows and one of 2), 34 keyed (one
	// statement of 34).
	appendEvents(t, db, "p1", 100, 0)
	p := &db.bulk
	want := map[stmtKey]bool{{insertEventsOneType, eventChunk}: true, {insertEventsOneType, 66 - eventChunk}: true, {insertKeyedOneType, 34}: true}
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

// Every shape of InsertEvents' statements writes each event as given: a
// batch of one type binds the type once per statement and the run once
// for all, an unkeyed event's key is a NULL in the statement, and the
// rows' own arguments follow the shared ones in order whichever shape the
// batch takes, across a full statement and a short one.
func TestEventInsertShapes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		types []string // cycled over the batch
		keyed func(i int) bool
	}{
		{"one type, unkeyed", []string{"view"}, func(int) bool { return false }},
		{"one type, keyed", []string{"view"}, func(int) bool { return true }},
		{"one type, mixed", []string{"view"}, func(i int) bool { return i%3 == 0 }},
		{"types, unkeyed", []string{"view", "click", "buy"}, func(int) bool { return false }},
		{"types, keyed", []string{"view", "click"}, func(int) bool { return true }},
		{"types, mixed", []string{"view", "click"}, func(i int) bool { return i%3 == 0 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t)
			const n = eventChunk + 7
			evs := make([]portrait.StoredEvent, n)
			t0 := time.Unix(1_700_000_000, 0)
			for i := range evs {
				evs[i] = portrait.StoredEvent{Pseudonym: portrait.Pseudonym(fmt.Sprintf("s%d", i%5)), Type: tt.types[i%len(tt.types)],
					Time: t0.Add(time.Duration(i) * time.Second), Sealed: []byte(fmt.Sprintf("sealed-%d", i)), Expires: t0.Add(time.Duration(1000+i) * time.Hour)}
				if tt.keyed(i) {
					evs[i].Idem = []byte(fmt.Sprintf("k%d", i))
				}
			}
			var inserted []bool
			err := db.Update(context.Background(), func(tx guard.Tx) error {
				var err error
				inserted, err = tx.InsertEvents(context.Background(), evs)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(inserted, false) {
				t.Fatalf("inserted = %v, want every event", inserted)
			}
			rows, err := db.read.Query(`SELECT run, id, pseudonym, type, time, idem, sealed, expires FROM events_new ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var first int64
			i := 0
			for ; rows.Next(); i++ {
				var run, id, tm, exp int64
				var ps, typ, sealed string
				var idem []byte
				if err := rows.Scan(&run, &id, &ps, &typ, &tm, &idem, &sealed, &exp); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = id
				}
				e := evs[i]
				if run != first || id != first+int64(i) || ps != string(e.Pseudonym) || typ != e.Type || tm != e.Time.UnixNano() ||
					!bytes.Equal(idem, e.Idem) || sealed != string(e.Sealed) || exp != e.Expires.UnixNano() {
					t.Errorf("row %d = run %d id %d %s %s %d %q %s %d, want %+v", i, run, id, ps, typ, tm, idem, sealed, exp, e)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if i != n {
				t.Errorf("%d rows, want %d", i, n)
			}
		})
	}
}
