package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

// A database created before events were clustered by subject (schema 3)
// opens, migrates, and reads back every event exactly as stored, ids
// included; new events get ids above every id handed out before, even one
// since deleted, and stored idempotency keys still refuse duplicates (CM-3).
func TestMigrateEventsBySubject(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for v, name := range []string{"0001_init.sql", "0002_cases.sql", "0003_decisions.sql"} {
		body, err := os.ReadFile(filepath.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := old.Exec(`INSERT INTO schema_version (version, applied) VALUES (?, 0)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type row struct {
		subject string
		minute  int
		idem    []byte
		expires any
	}
	// Arrival order interleaves subjects and is not time order,
	// and a keyed pseudonym (32 hex digits, stored as its 16 bytes since)
	// is among them.
	const keyed = "0123456789abcdef0123456789abcdef"
	rows := []row{{"b", 5, nil, nil}, {"a", 20, []byte("k1"), t0.Add(time.Hour).UnixNano()}, {keyed, 7, []byte("k1"), nil}, {"a", 0, nil, nil},
		{"b", 1, []byte("k1"), nil}, {keyed, 2, nil, nil}, {"a", 10, nil, t0.Add(2 * time.Hour).UnixNano()}, {"gone", 3, nil, nil}}
	for i, r := range rows {
		if _, err := old.Exec(`INSERT INTO events (pseudonym, type, time, idem, sealed, expires) VALUES (?, 'view', ?, ?, ?, ?)`,
			r.subject, t0.Add(time.Duration(r.minute)*time.Minute).UnixNano(), r.idem, []byte{byte(i), 0xff}, r.expires); err != nil {
			t.Fatal(err)
		}
	}
	// The newest id was handed out and deleted: it must not come back.
	if _, err := old.Exec(`DELETE FROM events WHERE pseudonym = 'gone'`); err != nil {
		t.Fatal(err)
	}
	want := map[portrait.Pseudonym][]portrait.StoredEvent{}
	for _, p := range []string{"a", "b", keyed} {
		evs, err := old.Query(`SELECT id, pseudonym, type, time, idem, sealed, expires FROM events WHERE pseudonym = ? ORDER BY time, id`, p)
		if err != nil {
			t.Fatal(err)
		}
		for evs.Next() {
			var e portrait.StoredEvent
			var tm int64
			var exp sql.NullInt64
			if err := evs.Scan(&e.ID, &e.Pseudonym, &e.Type, &tm, &e.Idem, &e.Sealed, &exp); err != nil {
				t.Fatal(err)
			}
			e.Time = time.Unix(0, tm).UTC()
			if exp.Valid {
				e.Expires = time.Unix(0, exp.Int64).UTC()
			}
			want[portrait.Pseudonym(p)] = append(want[portrait.Pseudonym(p)], e)
		}
		if err := evs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db := mustOpen(t, path)
	defer db.Close()
	for _, p := range []string{"a", "b", keyed} {
		got, err := db.Events(ctx, storetest.Grant(t, portrait.Pseudonym(p), policy.Read), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want[portrait.Pseudonym(p)]) {
			t.Fatalf("subject %s: %d events after migration, want %d", p, len(got), len(want[portrait.Pseudonym(p)]))
		}
		for i, w := range want[portrait.Pseudonym(p)] {
			g := got[i]
			if g.ID != w.ID || g.Pseudonym != w.Pseudonym || g.Type != w.Type || !g.Time.Equal(w.Time) ||
				!bytes.Equal(g.Idem, w.Idem) || !bytes.Equal(g.Sealed, w.Sealed) || !g.Expires.Equal(w.Expires) {
				t.Errorf("subject %s event %d after migration = %+v, want %+v", p, i, g, w)
			}
		}
	}
	if exp, err := db.ExpiredEvents(ctx, t0.Add(3*time.Hour), 10); err != nil || len(exp) != 2 {
		t.Errorf("expired events after migration = %+v, %v; want the 2 with an expiry", exp, err)
	}

	fresh := []portrait.StoredEvent{
		{Grant: storetest.Grant(t, "a", policy.Collect), Pseudonym: "a", Type: "view", Time: t0, Idem: []byte("k1"), Sealed: []byte("dup")},
		{Grant: storetest.Grant(t, "a", policy.Collect), Pseudonym: "a", Type: "view", Time: t0.Add(time.Minute), Sealed: []byte("new")},
		{Grant: storetest.Grant(t, keyed, policy.Collect), Pseudonym: keyed, Type: "view", Time: t0, Idem: []byte("k1"), Sealed: []byte("dup")},
	}
	var inserted []bool
	if err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		inserted, err = tx.InsertEvents(ctx, fresh)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(inserted) != 3 || inserted[0] || !inserted[1] || inserted[2] {
		t.Errorf("inserted = %v, want the stored idempotency keys refused and the new event stored", inserted)
	}
	got, err := db.Events(ctx, storetest.Grant(t, "a", policy.Read), t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0].Sealed) != "new" || got[0].ID <= int64(len(rows)) {
		t.Errorf("events of a since minute 1 = %+v, want the new one first with an id above the deleted id %d", got, len(rows))
	}
}

// A migration merged after a higher-numbered one was applied still runs on
// open: versions are recorded one by one, not as a high-water mark.
func TestMigrateRunsLateLowerVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// As if 0031 had not been merged yet when a later 9999 was applied.
	for _, q := range []string{`DROP TABLE reg_docs`, `DELETE FROM schema_version WHERE version = 31`,
		`INSERT INTO schema_version (version, applied) VALUES (9999, 0)`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	db, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, _ = sql.Open("sqlite", path)
	defer raw.Close()
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'reg_docs'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("reg_docs after reopening: %d tables, %v; the late 0031 migration did not run", n, err)
	}
}
