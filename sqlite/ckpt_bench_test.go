package sqlite

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkCheckpointStall measures what SQLite's automatic checkpoint
// costs the one commit that triggers it (issue 14, target 3): 12,000
// single-row commits of about a decision's size on the driver and pragmas
// the engine uses, with wal_autocheckpoint at the engine's 16,384 pages,
// at SQLite's default 1,000, at 16,384 with a PASSIVE checkpoint from
// another connection every 250 ms, and at 16,384 with the writer itself
// checkpointing every 250 ms (counted in the commit that runs it). It reports the commit latency
// percentiles and the worst commit: at 500 decisions a second a stall of
// d queues d×500 requests behind it, which is what sets the p99. Run
// with -benchtime=1x.
func BenchmarkCheckpointStall(b *testing.B) {
	for _, c := range []struct {
		name       string
		auto       int
		bg, writer bool
	}{
		{"auto=16384", 16384, false, false},
		{"auto=1000", 1000, false, false},
		{"auto=16384+background", 16384, true, false},
		{"auto=16384+writer-every-250ms", 16384, false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				checkpointStall(b, c.auto, c.bg, c.writer)
			}
		})
	}
}

func checkpointStall(b *testing.B, auto int, bg, writer bool) {
	p := filepath.Join(b.TempDir(), "stall.db")
	dsn := fmt.Sprintf("%s?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(ON)&_pragma=wal_autocheckpoint(%d)", p, auto)
	db, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE d(id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX dk ON d(k)`); err != nil {
		b.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	if bg {
		rd, err := sql.Open("sqlite", dsn)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer close(done)
			defer rd.Close()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				rd.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}()
	} else {
		close(done)
	}
	const n = 12_000
	lat := make([]time.Duration, 0, n)
	v := make([]byte, 3000)
	last := time.Now()
	b.ResetTimer()
	for range n {
		rand.Read(v)
		t0 := time.Now()
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(`INSERT INTO d(k, v) VALUES (?, ?)`, fmt.Sprintf("%x", v[:16]), v); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		if writer && time.Since(last) > 250*time.Millisecond {
			if _, err := db.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				b.Fatal(err)
			}
			last = time.Now()
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	close(stop)
	<-done
	slices.Sort(lat)
	slow := 0
	for _, d := range lat {
		if d > 5*time.Millisecond {
			slow++
		}
	}
	b.ReportMetric(float64(lat[n/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[n*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[n*999/1000].Nanoseconds()), "p999-ns")
	b.ReportMetric(float64(lat[n-1].Nanoseconds()), "max-ns")
	b.ReportMetric(float64(slow), "commits>5ms")
}
