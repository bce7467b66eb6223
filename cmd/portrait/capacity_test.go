package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCapacity measures, on one `portrait serve`, the CPU time each kind of
// request costs the node and, on PostgreSQL, the database's backends:
// events ingested in batches, explained decisions and recommendations
// (docs/SCALING.md). It is opt-in (PORTRAIT_CAPACITY=1): the figures need
// a quiet machine, and the machine's load is printed beside them.
func TestCapacity(t *testing.T) {
	if os.Getenv("PORTRAIT_CAPACITY") == "" {
		t.Skip("PORTRAIT_CAPACITY is not set")
	}
	for engine, dsn := range engines(t) {
		t.Run(engine, func(t *testing.T) { testCapacity(t, engine, dsn(t)) })
	}
}

func testCapacity(t *testing.T, engine, dsn string) {
	const admin = "capacity-admin-key"
	ctx := context.Background()
	p := startKillable(t, dsn, newMaster(t), admin, "--assessments", filepath.Join(t.TempDir(), "assessments"))
	populate(t, p.url, admin)
	var db *sql.DB
	if engine == "postgres" {
		db = openSQL(t, engine, dsn)
	}
	var seq atomic.Int64
	const batch = 50
	phases := []struct {
		name  string
		n     int // requests
		per   int // operations per request
		issue func() error
	}{
		{"event (batches of 50)", 200, batch, func() error {
			n := seq.Add(1)
			var res ingestResponse
			_, err := try(ctx, p.url, "POST", "/v1/events", admin, viewEvents(fmt.Sprintf("soak-%d", n%soakSubjects), fmt.Sprintf("c%d", n), batch, time.Now().UTC().Add(-time.Second)), &res)
			if err == nil && res.Accepted != batch {
				err = fmt.Errorf("%d of %d accepted", res.Accepted, batch)
			}
			return err
		}},
		{"decision", 1000, 1, func() error {
			_, err := try(ctx, p.url, "POST", "/v1/decisions", admin, fmt.Sprintf(`{"usecase":"credit_limit","subject":"soak-%d"}`, seq.Add(1)%soakSubjects), nil)
			return err
		}},
		{"recommendation", 2000, 1, func() error {
			_, err := try(ctx, p.url, "GET", fmt.Sprintf("/v1/recommendations?subject=soak-%d&usecase=home_feed&n=5", seq.Add(1)%soakSubjects), admin, "", nil)
			return err
		}},
	}
	var out strings.Builder
	fmt.Fprintf(&out, "| %s | operations | wall s | ops/s | node CPU µs/op | PostgreSQL CPU µs/op | load1 before → after |\n|---|---|---|---|---|---|---|\n", engine)
	for _, ph := range phases {
		load0 := load1()
		node0, pg0 := cpuOf(p.cmd.Process.Pid), backendCPU(t, db)
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 4 {
			wg.Go(func() {
				for next.Add(1) <= int64(ph.n) {
					if err := ph.issue(); err != nil {
						if failed.Add(1) == 1 {
							t.Errorf("%s: %v", ph.name, err)
						}
					}
				}
			})
		}
		wg.Wait()
		wall := time.Since(start)
		node1, pg1 := cpuOf(p.cmd.Process.Pid), backendCPU(t, db)
		ops := float64(ph.n * ph.per)
		pg := "–"
		if db != nil {
			pg = fmt.Sprintf("%.0f", float64((pg1-pg0).Microseconds())/ops)
		}
		fmt.Fprintf(&out, "| %s | %.0f | %.1f | %.0f | %.0f | %s | %s → %s |\n", ph.name, ops, wall.Seconds(), ops/wall.Seconds(),
			float64((node1-node0).Microseconds())/ops, pg, load0, load1())
	}
	t.Logf("capacity on %s:\n%s", engine, out.String())
}

// clockTick is the kernel's USER_HZ, the unit of /proc/PID/stat times.
const clockTick = 100

// cpuOf is the user and system CPU time a process has used, from /proc.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick
}

// backendCPU is the CPU time used so far by the PostgreSQL backends
// connected to db's database (the node's pool), or 0 without db. The
// backends run on this machine, so /proc has them.
func backendCPU(t *testing.T, db *sql.DB) time.Duration {
	if db == nil {
		return 0
	}
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var sum time.Duration
	for rows.Next() {
		var pid int
		rows.Scan(&pid)
		sum += cpuOf(pid)
	}
	return sum
}
