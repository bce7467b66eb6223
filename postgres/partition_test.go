package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The events table is partitioned by a hash of the pseudonym, so a
// subject's events sit in one partition and the table can be distributed
// by the same column (docs/SCALING.md). The conformance suite
// (TestConformance) runs on this table.
func TestEventsPartitionedByPseudonym(t *testing.T) {
	u := freshSchema(t)
	mustOpen(t, u).Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	var strategy, key string
	err = conn.QueryRow(ctx, `SELECT p.partstrat::text, a.attname
		FROM pg_partitioned_table p
		JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
		WHERE p.partrelid = 'events'::regclass`).Scan(&strategy, &key)
	if err != nil {
		t.Fatalf("events is not a partitioned table: %v", err)
	}
	if strategy != "h" || key != "pseudonym" {
		t.Errorf("events partitioned by %s on %s, want hash (h) on pseudonym", strategy, key)
	}
	var parts int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass`).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 16 {
		t.Errorf("events has %d partitions, want 16", parts)
	}

	// Each subject's events land in one partition, and subjects spread.
	for s := range 64 {
		for e := range 3 {
			_, err := conn.Exec(ctx, `INSERT INTO events (pseudonym, type, time, idem, sealed) VALUES ($1, 'x', now(), $2, '\x00')`,
				fmt.Sprintf("p%02d", s), []byte{byte(e)})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	var split, used int
	err = conn.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM (SELECT pseudonym FROM events GROUP BY pseudonym HAVING count(DISTINCT tableoid) > 1) s),
		(SELECT count(DISTINCT tableoid) FROM events)`).Scan(&split, &used)
	if err != nil {
		t.Fatal(err)
	}
	if split != 0 {
		t.Errorf("%d subjects have events in more than one partition", split)
	}
	if used < 8 {
		t.Errorf("64 subjects used only %d of 16 partitions", used)
	}
	// A query naming the pseudonym reads one partition.
	var plan strings.Builder
	rows, err := conn.Query(ctx, `EXPLAIN SELECT * FROM events WHERE pseudonym = 'p01'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l string
		rows.Scan(&l)
		plan.WriteString(l + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n := len(partitionName.FindAllString(plan.String(), -1)); n != 1 {
		t.Errorf("a query by pseudonym plans %d partitions, want 1:\n%s", n, plan.String())
	}
}

// partitionName matches a partition scanned in a plan ("on events_p05 events").
var partitionName = regexp.MustCompile(`on events_p\d\d `)

// A database made before migration 0030 keeps its events, their ids and
// their idempotency keys when the table is partitioned, and new ids
// continue after the old ones.
func TestEventsPartitionMigrationKeepsRows(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Apply the migrations before 0030 by hand, as an older binary did.
	names, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		base := filepath.Base(name)
		v, _ := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if v >= 30 {
			continue
		}
		body, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, string(body)); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_version VALUES ($1, now())`, v); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		_, err := conn.Exec(ctx, `INSERT INTO events (pseudonym, type, time, idem, sealed) VALUES ($1, 'x', now(), $2, $3)`,
			fmt.Sprintf("s%d", i%7), []byte{byte(i)}, []byte{byte(i), 1})
		if err != nil {
			t.Fatal(err)
		}
	}
	var before string
	sum := `SELECT count(*)::text || ':' || sum(id)::text || ':' || md5(string_agg(pseudonym || encode(idem, 'hex') || encode(sealed, 'hex'), ',' ORDER BY id)) FROM events`
	if err := conn.QueryRow(ctx, sum).Scan(&before); err != nil {
		t.Fatal(err)
	}

	mustOpen(t, u).Close()

	var after string
	if err := conn.QueryRow(ctx, sum).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("events after partitioning %s, before %s", after, before)
	}
	var partitioned bool
	if err := conn.QueryRow(ctx, `SELECT relkind = 'p' FROM pg_class WHERE oid = 'events'::regclass`).Scan(&partitioned); err != nil || !partitioned {
		t.Fatalf("events not partitioned after the migration: %v", err)
	}
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO events (pseudonym, type, time, sealed) VALUES ('s1', 'x', now(), '\x00') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id != 101 {
		t.Errorf("first id after the migration %d, want 101", id)
	}
	// The idempotency key is still enforced per subject.
	if _, err := conn.Exec(ctx, `INSERT INTO events (pseudonym, type, time, idem, sealed) VALUES ('s0', 'x', now(), '\x00', '\x00')`); err == nil {
		t.Error("a duplicate idempotency key was accepted after partitioning")
	}
}

// The events table keeps exactly the indexes its reads and its
// constraints need: the primary key (pseudonym, id), which every read of
// a subject's events uses, the unique idempotency key and the expiry
// sweep's partial index. A (pseudonym, time) index (dropped by 0051)
// would cost every ingested event one more B-tree insert.
func TestEventsIndexes(t *testing.T) {
	u := freshSchema(t)
	mustOpen(t, u).Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		// "CREATE UNIQUE INDEX events_pkey ON ONLY schema.events USING btree (pseudonym, id)"
		_, cols, _ := strings.Cut(d, "USING btree ")
		got = append(got, strconv.FormatBool(strings.Contains(d, "UNIQUE"))+" "+cols)
	}
	slices.Sort(got)
	want := []string{"false (expires) WHERE (expires IS NOT NULL)", "true (pseudonym, id)", "true (pseudonym, idem) WHERE (idem IS NOT NULL)"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("indexes on events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A subject's events by time come from the primary key, in one
	// partition, sorted: never a scan of the table.
	var plan strings.Builder
	rows, err = conn.Query(ctx, `EXPLAIN SELECT id FROM events WHERE pseudonym = 'p' AND time >= now() - interval '1 day' ORDER BY time, id`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		plan.WriteString(l + "\n")
	}
	parts := map[string]bool{}
	for _, m := range regexp.MustCompile(`events_p\d+`).FindAllString(plan.String(), -1) {
		parts[m] = true
	}
	if p := plan.String(); strings.Contains(p, "Seq Scan") || len(parts) != 1 {
		t.Errorf("a subject's events by time: plan\n%s\nwant one partition, by index", p)
	}
}
