package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
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

// A store in the append-then-cluster layout (migration 0040) with events
// both appended to the old events_new and clustered opens in the sorted-run
// layout (0060) with every event readable exactly as stored, ids included,
// the old events_new's keys still refused, expiries still swept, and new
// events written as runs (CM-3).
func TestMigrateEventRuns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	db := mustOpen(t, path)
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// Back to the layout before 0060, as 0040 left it (and so before 0070).
	for _, q := range []string{`DROP TABLE events_new`, `DROP TABLE event_runs`, `DELETE FROM schema_version WHERE version IN (60, 70)`,
		`DROP TABLE event_expiry`, `CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL`,
		`CREATE TABLE events_new (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL,
			idem BLOB, sealed BLOB NOT NULL, expires INTEGER)`,
		`CREATE UNIQUE INDEX events_new_subject ON events_new (pseudonym, idem)`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const keyed = "0123456789abcdef0123456789abcdef"
	key := func(p string) any {
		if p == keyed {
			b, _ := hex.DecodeString(p)
			return b
		}
		return p
	}
	type row struct {
		table, subject string
		idem           []byte
		expires        any
	}
	rows := []row{{"events", "a", []byte("k1"), nil}, {"events_new", keyed, nil, t0.Add(time.Hour).UnixNano()}, {"events_new", "a", []byte("k2"), nil},
		{"events", keyed, []byte("k1"), nil}, {"events_new", "b", nil, nil}, {"events_new", keyed, []byte("k3"), t0.Add(2 * time.Hour).UnixNano()}}
	want := map[string][]int64{}
	for i, r := range rows {
		id := int64(i + 1)
		if _, err := raw.Exec(`INSERT INTO `+r.table+` (id, pseudonym, type, time, idem, sealed, expires) VALUES (?, ?, 'view', ?, ?, ?, ?)`,
			id, key(r.subject), t0.Add(time.Duration(i)*time.Minute).UnixNano(), r.idem, []byte{byte(i)}, r.expires); err != nil {
			t.Fatal(err)
		}
		want[r.subject] = append(want[r.subject], id)
	}
	if _, err := raw.Exec(`UPDATE event_ids SET next = ?`, len(rows)+1); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db = mustOpen(t, path)
	defer db.Close()
	for p, ids := range want {
		got, err := db.Events(ctx, storetest.Grant(t, portrait.Pseudonym(p), policy.Read), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ids) {
			t.Fatalf("subject %s: %d events after migration, want %d", p, len(got), len(ids))
		}
		for i, e := range got {
			r := rows[ids[i]-1]
			if e.ID != ids[i] || string(e.Pseudonym) != p || !bytes.Equal(e.Idem, r.idem) || !bytes.Equal(e.Sealed, []byte{byte(ids[i] - 1)}) ||
				!e.Time.Equal(t0.Add(time.Duration(ids[i]-1)*time.Minute)) {
				t.Errorf("subject %s event %d after migration = %+v, want row %+v", p, i, e, r)
			}
		}
	}
	if exp, err := db.ExpiredEvents(ctx, t0.Add(3*time.Hour), 10); err != nil || len(exp) != 2 {
		t.Errorf("expired events after migration = %+v, %v; want the 2 with an expiry", exp, err)
	}
	fresh := []portrait.StoredEvent{
		{Grant: storetest.Grant(t, "a", policy.Collect), Pseudonym: "a", Type: "view", Time: t0, Idem: []byte("k2"), Sealed: []byte("dup")},
		{Grant: storetest.Grant(t, keyed, policy.Collect), Pseudonym: keyed, Type: "view", Time: t0, Idem: []byte("k3"), Sealed: []byte("dup")},
		{Grant: storetest.Grant(t, "b", policy.Collect), Pseudonym: "b", Type: "view", Time: t0, Sealed: []byte("new")},
	}
	var inserted []bool
	if err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		inserted, err = tx.InsertEvents(ctx, fresh)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(inserted) != 3 || inserted[0] || inserted[1] || !inserted[2] {
		t.Errorf("inserted = %v, want the keys of the old append table refused and the new event stored", inserted)
	}
	if got, err := db.Events(ctx, storetest.Grant(t, "b", policy.Read), time.Time{}); err != nil || len(got) != 2 || string(got[0].Sealed) != "new" || got[0].ID <= int64(len(rows)) {
		t.Errorf("events of b = %+v, %v; want the migrated one and a new one with a new id", got, err)
	}
	if events, runs, err := db.Backlog(ctx); err != nil || events != 1 || runs != 1 {
		t.Errorf("backlog after one new event = %d events in %d runs (%v), want 1 in 1", events, runs, err)
	}
}

// A store whose clustered table still has its expiry index (before
// migration 0070) opens with each subject's earliest clustered expiry
// recorded and the index dropped, so the sweep still finds every expired
// clustered event, earliest first (CM-3).
func TestMigrateEventExpiry(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	db := mustOpen(t, path)
	t0 := time.Unix(0, 0)
	var evs []portrait.StoredEvent
	for i := range 12 {
		p := []portrait.Pseudonym{"0123456789abcdef0123456789abcdef", "b", "c"}[i%3]
		evs = append(evs, portrait.StoredEvent{Grant: storetest.Grant(t, p, policy.Collect), Pseudonym: p, Type: "view", Time: t0,
			Sealed: []byte{byte(i)}, Expires: t0.Add(time.Duration(100-i) * time.Minute)})
	}
	evs[2].Expires = time.Time{} // c's first event never expires
	if err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { _, err := tx.InsertEvents(ctx, evs); return err }); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Cluster(ctx); err != nil || n != 12 {
		t.Fatalf("cluster = %d, %v", n, err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE event_expiry`, `CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL`,
		`DELETE FROM schema_version WHERE version = 70`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()

	db = mustOpen(t, path)
	defer db.Close()
	got, err := db.ExpiredEvents(ctx, t0.Add(95*time.Minute), 4)
	if err != nil {
		t.Fatal(err)
	}
	var mins []int
	for _, e := range got {
		mins = append(mins, int(e.Expires.Sub(t0)/time.Minute))
	}
	if want := []int{89, 90, 91, 92}; !reflect.DeepEqual(mins, want) {
		t.Errorf("expired after migration, limit 4: expiries %v, want %v", mins, want)
	}
	if got, err := db.ExpiredEvents(ctx, t0.Add(1000*time.Minute), 100); err != nil || len(got) != 11 {
		t.Errorf("all expired after migration = %d (%v), want the 11 with an expiry", len(got), err)
	}
}
