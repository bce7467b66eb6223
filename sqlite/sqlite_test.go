package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/sqlite/sqlitetest"
	"github.com/portrait-dev/portrait/storetest"
)

func mustOpen(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// Invariant 7: the SQLite engine passes the shared conformance suite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) portrait.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "portrait.db"))
	})
}

// SR-3, invariant 4: after erasure and a WAL checkpoint, neither the
// wrapped key nor any sealed value of the subject is left in the database
// file or its WAL, not even in free pages — whether the subject's events
// were still appended, all moved to the clustered table (the move's
// delete from events_new must not leave copies in free pages), or split
// across the two.
func TestEraseLeavesNoBytes(t *testing.T) {
	for _, layout := range []string{"appended", "moved", "split"} {
		t.Run(layout, func(t *testing.T) { eraseLeavesNoBytes(t, layout) })
	}
}

func eraseLeavesNoBytes(t *testing.T, layout string) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	db := mustOpen(t, path)
	defer db.Close()

	secret := func(tag string) []byte {
		return []byte(strings.Repeat("<"+tag+"-3c1d9f>", 8))
	}
	key, id, sealed, prof, label := secret("KEY"), secret("SID"), secret("EVT"), secret("PRF"), secret("LBL")
	why, attr, statement := secret("DEC"), secret("PRO"), secret("REV")
	err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{
			{Pseudonym: "victim", WrappedKey: key, SealedID: id},
			{Pseudonym: "other", WrappedKey: []byte("other key"), SealedID: []byte("other id")},
		}); err != nil {
			return err
		}
		var evs []portrait.StoredEvent
		for i := range 300 {
			p, s := "other", []byte(fmt.Sprintf("other sealed value %d", i))
			if i%3 == 0 {
				p, s = "victim", append(sealed, byte(i))
			}
			evs = append(evs, portrait.StoredEvent{Grant: storetest.Grant(t, portrait.Pseudonym(p), policy.Collect), Pseudonym: portrait.Pseudonym(p), Type: "view",
				Time: time.Unix(int64(i), 0), Sealed: s, Expires: time.Unix(int64(i)+1e6, 0)})
		}
		if _, err := tx.InsertEvents(ctx, evs); err != nil {
			return err
		}
		if err := tx.PutProfile(ctx, storetest.Grant(t, "victim", policy.Collect), []portrait.ProfileValue{{Field: "city", Sealed: prof, Source: "event", Updated: time.Now()}}); err != nil {
			return err
		}
		if err := tx.PutDetermination(ctx, portrait.StoredDetermination{Grant: storetest.Grant(t, "victim", policy.Use), ID: "d1", Pseudonym: "victim",
			UseCase: "credit", Sealed: why, Status: "automated"}); err != nil {
			return err
		}
		if err := tx.PutReview(ctx, portrait.Review{ID: "r1", DeterminationID: "d1", Pseudonym: "victim", Kind: "appeal", Sealed: statement, Status: "open"}); err != nil {
			return err
		}
		if err := tx.PutProtected(ctx, storetest.Grant(t, "victim", policy.Collect), []portrait.ProtectedValue{{Pseudonym: "victim", Attribute: "sex", Sealed: attr}}); err != nil {
			return err
		}
		return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: storetest.Grant(t, "victim", policy.Derive), Pseudonym: "victim", Label: "fan", Version: 1, Sealed: label, Computed: time.Now()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if layout != "appended" {
		if n, err := db.Cluster(ctx); err != nil || n != 300 {
			t.Fatalf("cluster moved %d events (%v), want 300", n, err)
		}
	}
	if layout == "split" {
		// More of the victim's events, appended after the move.
		var evs []portrait.StoredEvent
		for i := range 50 {
			evs = append(evs, portrait.StoredEvent{Grant: storetest.Grant(t, "victim", policy.Collect), Pseudonym: "victim", Type: "view",
				Time: time.Unix(int64(1000+i), 0), Sealed: append(append([]byte(nil), sealed...), 'n', byte(i))})
		}
		if err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { _, err := tx.InsertEvents(ctx, evs); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.TruncateWAL(ctx); err != nil {
		t.Fatal(err)
	}
	all := [][]byte{key, id, sealed, prof, label, why, attr, statement}
	// The scan must be able to see the values before erasure, or its
	// silence afterwards proves nothing.
	if found := scan(t, path, all); len(found) != len(all) {
		t.Fatalf("before erasure the database file holds %d of the %d values; the scan cannot see them", len(found), len(all))
	}

	err = db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.Erase(ctx, storetest.Grant(t, "victim", policy.Erase))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.TruncateWAL(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		if found := scan(t, f, all); len(found) > 0 {
			t.Errorf("after erasure %s still holds %q", filepath.Base(f), found)
		}
	}
	if evs, err := db.Events(ctx, storetest.Grant(t, "other", policy.Access), time.Time{}); err != nil || len(evs) != 200 {
		t.Errorf("erasure disturbed the other subject: %d events, %v", len(evs), err)
	}
}

// scan returns the needles found in the file at path; a missing file holds none.
func scan(t *testing.T, path string, needles [][]byte) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var found [][]byte
	for _, n := range needles {
		if bytes.Contains(b, n) {
			found = append(found, n)
		}
	}
	return found
}

// Two processes opening the same new database apply the migrations once;
// reopening applies nothing.
func TestOpenMigratesOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	var wg sync.WaitGroup
	dbs := make([]*sqlite.DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = sqlite.Open(ctx, path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	err := dbs[0].Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, []byte("kept")) })
	if err != nil {
		t.Fatal(err)
	}
	again := mustOpen(t, path)
	defer again.Close()
	if note, err := again.Checkpoint(ctx); err != nil || string(note) != "kept" {
		t.Errorf("reopened store lost data: %q, %v", note, err)
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var n int
	if err := raw.QueryRow(`SELECT count(*) FROM schema_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want := len(migrationFiles(t)); n != want {
		t.Errorf("schema_version has %d rows, want one per migration (%d)", n, want)
	}
	var mode string
	if err := raw.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
}

func TestOpenRefusesBadPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "x.db?mode=ro"} {
		if _, err := sqlite.Open(context.Background(), p); err == nil || !strings.Contains(err.Error(), "want") && !strings.Contains(err.Error(), "must not") {
			t.Errorf("Open(%q) = %v, want an error saying what to pass", p, err)
		}
	}
}

// migrationFiles lists the embedded migrations, so tests do not hard-code
// how many there are.
func migrationFiles(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	return names
}

// The database, its WAL and its shared-memory file hold wrapped keys and
// sealed personal data: they are created readable by the owner only,
// whatever the umask, and a file left wider by an older version is
// narrowed when opened.
func TestFilesPrivate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(path string)
	}{
		{"new", func(string) {}},
		{"left 0644", func(path string) {
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				os.Chmod(p, 0o644)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "portrait.db")
			tc.setup(path)
			db := mustOpen(t, path)
			defer db.Close()
			ctx := context.Background()
			// A write, so that the WAL and shared-memory files exist.
			err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				return tx.PutAPIKey(ctx, portrait.APIKey{ID: "admin/x", Hash: make([]byte, 32), Role: policy.Admin, Created: time.Now()})
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want 0600", filepath.Base(p), fi.Mode().Perm())
				}
			}
		})
	}
}

// FA-6, invariant 8: edited, swapped, truncated and relabelled log
// records in a SQLite file are found by the start-up check and refused by
// verified reads.
func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (portrait.Store, storetest.Raw) {
		path := filepath.Join(t.TempDir(), "portrait.db")
		db := mustOpen(t, path)
		t.Cleanup(func() { db.Close() })
		return db, sqlitetest.Raw(t, path)
	})
}

// The start-up check over a large log; opt-in, see storetest.RunCheckLarge.
// PORTRAIT_CHECK_DB keeps the filled database between runs.
func TestCheckLarge(t *testing.T) {
	path := os.Getenv("PORTRAIT_CHECK_DB")
	if path == "" {
		path = filepath.Join(t.TempDir(), "portrait.db")
	}
	db := mustOpen(t, path)
	defer db.Close()
	storetest.RunCheckLarge(t, db)
}
