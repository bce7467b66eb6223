package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// A `portrait serve` on SQLite stopped by SIGINT while events pour in
// leaves its database file complete: no frame in the write-ahead log, and
// every event it accepted readable from the file alone, so that a copy of
// the file is a whole backup (docs/OPERATIONS.md). Before, the store's
// Close closed the write connection while a background read (the
// derivation queue, the sweep) still held the file, so SQLite's
// checkpoint at close did not run, and the process could exit with frames
// left in the WAL.
func TestServeStopLeavesNoWAL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	const admin = "stop-admin-key"
	for round := range 2 {
		dir := t.TempDir()
		path := filepath.Join(dir, "p.db")
		p := startServe(t, bin, path, masterKey(), admin)
		// Two writers post batches until the server stops answering; a
		// batch answered 200 was committed before the answer.
		var accepted atomic.Int64
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := 0; ctx.Err() == nil; b++ {
					n, ok := postBatch(ctx, p.url, admin, w, b, 200)
					if !ok {
						return
					}
					accepted.Add(int64(n))
				}
			}()
		}
		// Stop once the derivation queue has had batches to read.
		for deadline := time.Now().Add(30 * time.Second); accepted.Load() < 4000; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: only %d events accepted in 30 s:\n%s", round, accepted.Load(), p.stderr.String())
			}
		}
		time.Sleep(time.Duration(round*150) * time.Millisecond)
		p.stop()
		cancel()
		wg.Wait()
		if p.cmd.ProcessState == nil || !p.cmd.ProcessState.Success() {
			t.Fatalf("round %d: serve did not exit cleanly on SIGINT: %v\n%s", round, p.cmd.ProcessState, p.stderr.String())
		}
		if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
			t.Errorf("round %d: write-ahead log after SIGINT: %d bytes, want none", round, fi.Size())
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		// The file alone, copied away from anything beside it.
		alone := filepath.Join(t.TempDir(), "alone.db")
		copyFile(t, path, alone)
		db, err := sql.Open("sqlite", alone)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		err = db.QueryRow(`SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM events_new)`).Scan(&n)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n < accepted.Load() {
			t.Errorf("round %d: the file alone holds %d events; the server accepted %d", round, n, accepted.Load())
		}
	}
}

// postBatch posts n view events of worker w's batch b; it reports how
// many were accepted, and false once the server no longer answers 200.
func postBatch(ctx context.Context, url, key string, w, b, n int) (int, bool) {
	var body bytes.Buffer
	for i := range n {
		fmt.Fprintf(&body, `{"subject":"stop-%d","type":"view","time":"2026-01-02T03:04:05Z","fields":{"item":"item-%d-%d-%d"}}`+"\n", i%50, w, b, i)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/events", &body)
	if err != nil {
		return 0, false
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return 0, false
	}
	sum, err := readSummary(strings.NewReader(string(answer)))
	if err != nil {
		return 0, false
	}
	return sum.Accepted, true
}
