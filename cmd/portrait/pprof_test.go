package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// --pprof-addr serves profiles on loopback only, to an admin API key
// only (a machine has other accounts than the operator's), and not the
// command line (which may name files and flags an operator did not mean
// to show).
func TestServePprof(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "p.key")
	if _, err := keys.Generate(keyFile); err != nil {
		t.Fatal(err)
	}
	a := testApp(t, filepath.Join(dir, "p.db"), keyFile)
	admin, operator := apikey.Secret(policy.Admin), apikey.Secret(policy.Operator)
	for name, k := range map[string]struct {
		secret string
		role   policy.Role
	}{"ops/root": {admin, policy.Admin}, "ops/load": {operator, policy.Operator}} {
		if err := a.staff.Register(ctx, system("test"), name, k.role, apikey.Hash(k.secret), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "[::]:0", "example.com:6060", "nonsense"} {
		if _, err := servePprof(ctx, addr, a.staff); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
			t.Errorf("servePprof(%q) = %v, want a refusal naming the flag", addr, err)
		}
	}
	u, err := servePprof(ctx, "127.0.0.1:0", a.staff)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/debug/pprof/heap", admin, 200},
		{"/debug/pprof/goroutine?debug=1", admin, 200},
		{"/debug/pprof/heap", "", 401},
		{"/debug/pprof/goroutine?debug=2", "not-a-key", 401},
		{"/debug/pprof/heap", operator, 403},
		{"/debug/pprof/cmdline", admin, 404},
		{"/v1/events", admin, 404},
	} {
		req, _ := http.NewRequest("GET", u+c.path, nil)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s with key %.6q: %d, want %d", c.path, c.key, resp.StatusCode, c.want)
		}
	}
}
