package postgres

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The shared queries' ? placeholders become $1, $2, … in order.
func TestDialectNumbersPlaceholders(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT n FROM generation`:                                            `SELECT n FROM generation`,
		`SELECT a FROM t WHERE b = ? AND c = ANY(?)`:                          `SELECT a FROM t WHERE b = $1 AND c = ANY($2)`,
		`UPDATE t SET a = ? WHERE id = ? AND a < ?`:                           `UPDATE t SET a = $1 WHERE id = $2 AND a < $3`,
		`SELECT a FROM t WHERE pseudonym = ANY(?)`:                            `SELECT a FROM t WHERE pseudonym IN (SELECT unnest($1::text[]))`,
		`DELETE FROM t WHERE x = ? AND pseudonym = ANY(?) AND label = ANY(?)`: `DELETE FROM t WHERE x = $1 AND pseudonym IN (SELECT unnest($2::text[])) AND label = ANY($3)`,
	} {
		if got := pg.SQL(in); got != want {
			t.Errorf("SQL(%q) = %q, want %q", in, got, want)
		}
		if got := pg.SQL(in); got != want { // remembered
			t.Errorf("second SQL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A list of pseudonyms is joined, not compared element by element: under
// the generic plan PostgreSQL keeps for a prepared statement, "= ANY($1)"
// on a table of 1,000 subjects was a sequential scan testing every row
// against every element of the array (10 ms for 1,000 pseudonyms, a sixth
// of PostgreSQL's CPU under HTTP ingest). The plan of the query as the
// dialect writes it must not filter rows by the array.
func TestPseudonymListPlan(t *testing.T) {
	url := os.Getenv("PORTRAIT_TEST_POSTGRES")
	if url == "" {
		t.Skip("PORTRAIT_TEST_POSTGRES is not set")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ps := make([]string, 1000)
	for i := range ps {
		ps[i] = fmt.Sprintf("%032x", i*7919)
	}
	for _, q := range []string{
		`CREATE TEMP TABLE subjects (pseudonym TEXT PRIMARY KEY, wrapped_key BYTEA NOT NULL)`,
		`INSERT INTO subjects SELECT p, '\x00' FROM unnest($1::text[]) p`,
		`ANALYZE subjects`,
		`SET plan_cache_mode = force_generic_plan`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, ps)
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// EXPLAIN EXECUTE of a prepared statement shows the generic plan.
	array := "'{" + strings.Join(ps, ",") + "}'"
	plan := func(name, query string) string {
		if _, err := conn.Exec(ctx, "PREPARE "+name+"(text[]) AS "+query); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE "+name+"("+array+")")
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	shared := `SELECT pseudonym, wrapped_key FROM subjects WHERE pseudonym = ANY(?)`
	if p := plan("numbered", strings.ReplaceAll(shared, "?", "$1")); !strings.Contains(p, "Filter: (pseudonym = ANY ($1))") {
		t.Logf("without the rewrite the generic plan no longer filters by the array (the planner changed):\n%s", p)
	}
	if p := plan("joined", pg.SQL(shared)); strings.Contains(p, "ANY") {
		t.Errorf("the dialect's query still compares rows with the array:\n%s", p)
	}
	got := 0
	rows, err := conn.Query(ctx, pg.SQL(shared), ps[:10])
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		got++
	}
	if rows.Close(); rows.Err() != nil || got != 10 {
		t.Errorf("read %d of 10 subjects: %v", got, rows.Err())
	}
}
