package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/storetest"
)

// TestRestoreLoad measures restore-and-replay: an engine whose store is
// restored from a backup 10⁴ log entries behind the regulator (100 of
// them erasures) fetches, verifies and re-applies them before it serves.
// It runs only with PORTRAIT_BENCH=1 (see docs/BENCHMARKS.md).
func TestRestoreLoad(t *testing.T) {
	if os.Getenv("PORTRAIT_BENCH") == "" {
		t.Skip("set PORTRAIT_BENCH=1 to measure")
	}
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			if pg && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			dir := t.TempDir()
			c := company{master: masterKey(), origin: "r.example/portrait", reg: startRegulator(t)}
			_, c.token = c.reg.enrol(t, "R Co.")
			var save, restore func()
			if pg {
				dsn := storetest.PostgresDatabase(t)
				// A pool larger than the 8 concurrent clients: with pgx's
				// default of 4 connections, concurrent consent changes and
				// ingest deadlock on the generation row (see the report).
				c.dsn = dsn + sep(dsn) + "pool_max_conns=32"
				save = func() { runTool(t, "pg_dump", "-Fc", "-f", filepath.Join(dir, "b.dump"), dsn) }
				restore = func() {
					pgRestore(t, dsn, filepath.Join(dir, "b.dump"))
				}
			} else {
				c.dsn = filepath.Join(dir, "r.db")
				save, restore = coldBackup(t, c.dsn, filepath.Join(dir, "b.db"))
			}
			const admin, erasures, behind = "admin-key", 100, 10_000
			p := c.serve(t, admin)
			event := func(s string) string {
				return fmt.Sprintf(`[{"subject":%q,"type":"profile","time":%q,"fields":{"city":"北京"}}]`, s, time.Now().UTC().Format(time.RFC3339))
			}
			parallel(t, erasures, func(i int) {
				s := fmt.Sprintf("e%d", i)
				p.call(t, "PUT", "/v1/subjects/"+s+"/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil)
				p.call(t, "POST", "/v1/events", admin, event(s), nil)
			})
			p.stop()
			save()
			p = c.serve(t, admin)
			key := string(p.get(t, "/v1/log/key"))
			before, _ := audit.ParseCheckpoint(p.get(t, "/v1/log/checkpoint"), key)
			parallel(t, erasures, func(i int) { p.call(t, "POST", fmt.Sprintf("/v1/subjects/e%d/erasure", i), admin, "", nil) })
			parallel(t, behind-erasures, func(i int) { p.call(t, "POST", "/v1/events", admin, event(fmt.Sprintf("n%d", i%500)), nil) })
			var size int64
			deadline := time.Now().Add(2 * time.Minute)
			for size < before.Size+behind {
				cp, _ := audit.ParseCheckpoint(waitCosigned(t, p, c.reg.witnessKey, 1, time.Minute), key)
				size = cp.Size
				if time.Now().After(deadline) {
					t.Fatalf("witnessed %d, want %d", size, before.Size+behind)
				}
				time.Sleep(200 * time.Millisecond)
			}
			p.stop()
			restore()
			start := time.Now()
			p = c.serve(t, admin)
			took := time.Since(start)
			p.stop()
			start = time.Now()
			c.serve(t, admin)
			t.Logf("%s: restore of a backup %d entries behind (%d erasures): serving after %v; a plain restart takes %v",
				name, size-before.Size, erasures, took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
}

func parallel(t *testing.T, n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// pgRestore restores a pg_dump -Fc file into the database at dsn as a
// whole: the schema is dropped first, because pg_restore --clean cannot
// drop the constraints of a partitioned table's partitions (events is
// partitioned by pseudonym). Restoring a backup over a live database is
// what an operator does after a loss, so it replaces everything.
func pgRestore(t *testing.T, dsn, dump string) {
	t.Helper()
	runTool(t, "psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
	runTool(t, "pg_restore", "--no-owner", "-d", dsn, dump)
}

// sep is what joins one more parameter to dsn.
func sep(dsn string) string {
	if strings.Contains(dsn, "?") {
		return "&"
	}
	return "?"
}
