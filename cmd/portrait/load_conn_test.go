package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConnPool: the load commands' client reuses one keep-alive connection for
// requests sent one after another, opens a new one when the server ends
// a connection (Connection: close) and when requests overlap, and hands
// back status and body as sent.
func TestConnPool(t *testing.T) {
	var conns atomic.Int64
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusCreated)
		w.Write(append([]byte(r.Header.Get("Authorization")+" "), b...))
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	p, err := newConnPool(ts.URL, "k", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	send := func(path string, body []byte) {
		t.Helper()
		st, got, err := p.call(context.Background(), "POST", path, "application/json", body)
		if err != nil || st != http.StatusCreated || string(got) != "Bearer k "+string(body) {
			t.Fatalf("%s: %d %q %v", path, st, got, err)
		}
	}
	for range 50 {
		send("/v1/decisions", []byte(`{"usecase":"x"}`))
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("50 requests in turn opened %d connections, want 1", n)
	}
	send("/close", nil)
	send("/v1/decisions", nil)
	if n := conns.Load(); n != 2 {
		t.Errorf("after Connection: close, %d connections, want 2", n)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", ts.URL+"/", nil)
			if st, _, err := p.do(context.Background(), req); err != nil || st != http.StatusCreated {
				t.Errorf("overlapping: %d %v", st, err)
			}
		}()
	}
	wg.Wait()
	if _, err := newConnPool("https://example.org", "k", 1); err == nil {
		t.Error("an https:// server was taken by the plain-HTTP pool")
	}
}
