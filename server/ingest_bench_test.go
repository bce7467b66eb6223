package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
)

// BenchmarkHTTPIngest posts NDJSON batches of 1,000 view events of 1,000
// subjects over loopback TCP from two clients, through the whole governed
// path, as `portrait load --workers 2 --subjects 1000` does; one op is one
// batch. On SQLite and, with PORTRAIT_TEST_POSTGRES, PostgreSQL. It
// reports events/s, the process's CPU per event (server and clients: they
// share the process) and, on PostgreSQL, the CPU of the database's own
// backends per event. The client sub-benchmark sends the same requests to
// a handler that only reads the body and answers a canned response of
// the same size: its CPU per event is the clients' and HTTP's share, to
// subtract. Background derivation, which `portrait serve` runs after
// each batch, is not wired here.
//
//	go test ./server -run '^$' -bench HTTPIngest -benchtime 100x
func BenchmarkHTTPIngest(b *testing.B) {
	defer server.WithoutContractCheck()()
	bodies := loadBodies(8, 1000, *benchSubjects)
	b.Run("client", func(b *testing.B) {
		canned, _ := json.Marshal(struct {
			ingest.Summary
			Results []ingest.Result `json:"results"`
		}{ingest.Summary{Accepted: 1000}, make([]ingest.Result, 1000)})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(canned)
		}))
		defer ts.Close()
		postBatches(b, ts.URL, "k", bodies, nil)
	})
	b.Run("sqlite", func(b *testing.B) {
		h := newHarness(b)
		postBatches(b, h.url, h.staff(policy.Operator), bodies, nil)
	})
	b.Run("postgres", func(b *testing.B) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			b.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		h := newPostgresHarness(b)
		postBatches(b, h.url, h.staff(policy.Operator), bodies, func() time.Duration { return backendsCPU(b, h.pgURL) })
	})
}

// loadBodies makes n NDJSON bodies of size view events spread over
// subjects subjects, with the fields the demo catalog declares.
func loadBodies(n, size, subjects int) [][]byte {
	now := time.Now().UTC()
	out := make([][]byte, n)
	for b := range out {
		var body bytes.Buffer
		for i := range size {
			k := b*size + i
			fmt.Fprintf(&body, `{"subject":"load-%d","type":"view","time":%q,"fields":{"item":"item-%d","category":"c%d","price":%d}}`+"\n",
				k%subjects, now.Add(-time.Duration(k%86400)*time.Second).Format(time.RFC3339), k%5000, k%12, k%500)
		}
		out[b] = body.Bytes()
	}
	return out
}

// postBatches posts b.N batches from two clients and reports the rates.
func postBatches(b *testing.B, url, key string, bodies [][]byte, dbCPU func() time.Duration) {
	const workers, size = 2, 1000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var next atomic.Int64
	var failed atomic.Value
	var db0 time.Duration
	if dbCPU != nil {
		db0 = dbCPU()
	}
	cpu0 := processCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if n >= b.N || failed.Load() != nil {
					return
				}
				req, _ := http.NewRequest("POST", url+"/v1/events", bytes.NewReader(bodies[n%len(bodies)]))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := client.Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(data, []byte(`"accepted":1000,`)) {
					failed.Store(fmt.Errorf("batch %d: status %d: %.300s", n, resp.StatusCode, data))
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	events := float64(b.N * size)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/events, "cpu-ns/event")
	if dbCPU != nil {
		b.ReportMetric(float64((dbCPU()-db0).Nanoseconds())/events, "db-cpu-ns/event")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU sums the CPU time of the PostgreSQL backends connected to
// the benchmark's own (throwaway) database, from /proc: the server's
// share of PostgreSQL's work, which getrusage cannot see. Zero when
// PostgreSQL is not local or /proc is not readable. Clock ticks are
// taken as 100 a second (Linux's USER_HZ).
func backendsCPU(b *testing.B, url string) time.Duration {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command, which is in parentheses: state is
		// field 3, utime 14 and stime 15.
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

var benchSubjects = flag.Int("httpingest.subjects", 1000, "BenchmarkHTTPIngest: distinct subjects over the batches (each batch of 1,000 events spans min(subjects, 1,000))")
