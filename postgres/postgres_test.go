package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

// testURL returns the PostgreSQL URL under test, or skips.
func testURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("PORTRAIT_TEST_POSTGRES")
	if u == "" {
		tb.Skip("PORTRAIT_TEST_POSTGRES is not set; set it to a PostgreSQL URL to run the PostgreSQL store tests")
	}
	return u
}

// freshSchema creates an empty schema, dropped when the test ends, and
// returns a URL whose connections use it, so tests run in parallel
// without seeing each other.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	base := testURL(tb)
	ctx := context.Background()
	name := "test_" + hex.EncodeToString(randomBytes(6))
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect %s: %v", base, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("PORTRAIT_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func mustOpen(tb testing.TB, u string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), u)
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// Invariant 7: the PostgreSQL engine passes the shared conformance suite.
func TestConformance(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) portrait.Store { return mustOpen(t, freshSchema(t)) })
}

// Nodes that start together on a new database apply the migrations once.
func TestOpenMigratesOnce(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	dbs := make([]*postgres.DB, 4)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(ctx, u) })
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
	again := mustOpen(t, u)
	defer again.Close()
	if note, err := again.Checkpoint(ctx); err != nil || string(note) != "kept" {
		t.Errorf("reopened store lost data: %q, %v", note, err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_version`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	if n != len(names) {
		t.Errorf("schema_version has %d rows, want one per migration (%d)", n, len(names))
	}
}

func TestOpenRefusesBadURL(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "postgres://%zz"); err == nil {
		t.Error("Open accepted a malformed URL")
	}
}

// FA-6, invariant 8: edited, swapped, truncated and relabelled log
// records in PostgreSQL are found by the start-up check and refused by
// verified reads.
func TestTamper(t *testing.T) {
	testURL(t)
	storetest.RunTamper(t, func(t *testing.T) (portrait.Store, storetest.Raw) {
		u := freshSchema(t)
		db := mustOpen(t, u)
		t.Cleanup(func() { db.Close() })
		return db, storetest.PostgresRaw(t, u)
	})
}

// The start-up check over a large log; opt-in, see storetest.RunCheckLarge.
func TestCheckLarge(t *testing.T) {
	testURL(t)
	db := mustOpen(t, freshSchema(t))
	defer db.Close()
	storetest.RunCheckLarge(t, db)
}

// A chunk's pending subjects are stored without compression: pglz spent
// 3 ms of the backend's CPU per chunk of 1,000 pseudonyms trying to
// compress random hexadecimal, and failed (migration 0074).
func TestPendingUncompressed(t *testing.T) {
	u := freshSchema(t)
	db := mustOpen(t, u)
	defer db.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var storage string
	if err := conn.QueryRow(ctx, `SELECT attstorage::text FROM pg_attribute
		WHERE attrelid = 'derive_pending'::regclass AND attname = 'pseudonyms'`).Scan(&storage); err != nil {
		t.Fatal(err)
	}
	if storage != "e" {
		t.Errorf("derive_pending.pseudonyms has storage %q, want e (external, uncompressed)", storage)
	}
}
