package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// --pprof-addr serves profiles on loopback only, and not the command
// line (which may name files and flags an operator did not mean to show).
func TestServePprof(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "[::]:0", "example.com:6060", "nonsense"} {
		if _, err := servePprof(ctx, addr); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
			t.Errorf("servePprof(%q) = %v, want a refusal naming the flag", addr, err)
		}
	}
	u, err := servePprof(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/debug/pprof/heap":              200,
		"/debug/pprof/goroutine?debug=1": 200,
		"/debug/pprof/cmdline":           404,
		"/v1/events":                     404,
	} {
		resp, err := http.Get(u + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
}
