package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
)

// BenchmarkDecisionHTTP: one explained decision, the governed call in
// process (apply.Service.Determine) and the same decision as
// POST /v1/decisions over a real loopback connection (keep-alive, as
// portrait load-apply sends it), in one run, so that what HTTP adds —
// routing, the staff key check, the body, JSON both ways, the client
// itself — is the gap between the two. "ratio" interleaves them call by
// call so that both see the same machine.
//
// BenchmarkDecisionHTTPPostgres is the same on PostgreSQL
// (PORTRAIT_TEST_POSTGRES).
func BenchmarkDecisionHTTP(b *testing.B) { benchDecisionHTTP(b, newHarness(b)) }

func BenchmarkDecisionHTTPPostgres(b *testing.B) {
	if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
		b.Skip("PORTRAIT_TEST_POSTGRES is not set")
	}
	benchDecisionHTTP(b, newPostgresHarness(b))
}

func benchDecisionHTTP(b *testing.B, h *harness) {
	h.point.SetCatalog(liveCatalog(b))
	op, adm := h.staff(policy.Operator), h.staff(policy.Admin)
	h.daveAwaitsCredit(op, adm)
	ctx := context.Background()
	caller := policy.Caller{Role: policy.Operator, ID: "operator-1"}
	p := h.keys.Pseudonym("dave")
	governed := func() {
		if _, err := h.apply.Determine(ctx, caller, p, "credit_limit"); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	body := []byte(`{"usecase":"credit_limit","subject":"dave"}`)
	overHTTP := func() {
		req, _ := http.NewRequest("POST", h.url+"/v1/decisions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+op)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("decision: %d", resp.StatusCode)
		}
	}
	governed()
	overHTTP()
	defer server.Unobserved()()
	b.Run("governed", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			governed()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	// The same call under a context that can be cancelled, as a request's
	// is: the SQLite driver and database/sql then watch it, with a
	// goroutine each, on every statement.
	b.Run("governed-cancellable", func(b *testing.B) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cpu := cpuTime()
		for b.Loop() {
			if _, err := h.apply.Determine(ctx, caller, p, "credit_limit"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	b.Run("http", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			overHTTP()
		}
		b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	b.Run("ratio", func(b *testing.B) {
		var gov, web time.Duration
		for b.Loop() {
			t0 := time.Now()
			governed()
			t1 := time.Now()
			overHTTP()
			gov, web = gov+t1.Sub(t0), web+time.Since(t1)
		}
		b.ReportMetric(float64(gov.Nanoseconds())/float64(b.N), "governed-ns/op")
		b.ReportMetric(float64(web.Nanoseconds())/float64(b.N), "http-ns/op")
		b.ReportMetric(float64(web)/float64(gov), "http/governed")
	})
}

// cpuTime is the CPU time this process has used, user and system: on a
// shared machine it varies far less per operation than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
