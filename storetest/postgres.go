package storetest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the server tests may create throwaway databases on.
const EnvPostgres = "PORTRAIT_TEST_POSTGRES"

var dbSeq atomic.Int64

// PostgresDatabase creates a throwaway database on the server at
// $PORTRAIT_TEST_POSTGRES, dropped when tb ends, and returns its URL. It
// skips tb when the variable is unset, so that suites run everywhere and
// exercise PostgreSQL where CI provides it.
func PostgresDatabase(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvPostgres)
	if base == "" {
		tb.Skip(EnvPostgres + " is not set")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", EnvPostgres, err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("portrait_test_%d_%d", time.Now().UnixNano(), dbSeq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("postgres:///%s?host=%s", name, cfg.Host)
}
