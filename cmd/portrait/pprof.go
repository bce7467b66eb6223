package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// authenticator is the API's own key check (apikey.Service).
type authenticator interface {
	Authenticate(ctx context.Context, secret string) (policy.Caller, error)
}

// servePprof serves Go's profiles (CPU, heap, goroutines, the execution
// trace) on addr until ctx ends: `serve --pprof-addr`, off by default, so
// that what a server spends under load can be read from the running
// process (docs/BENCHMARKS.md, issue 14). Profiles show code paths and
// heap sizes, and a goroutine dump can show request arguments, so the
// listener takes a loopback address only, apart from the API's, with no
// route of the API on it: it is for an operator on the machine, as a
// debugger would be. A machine has other accounts than the operator's,
// so every request must carry an admin API key, checked as the API
// checks it (adminOnly).
func servePprof(ctx context.Context, addr string, staff authenticator) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("serve: --pprof-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("serve: --pprof-addr %q: profiles are served on a loopback address only (127.0.0.1:6060)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("serve: --pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not served: the command line is not for the network", http.StatusNotFound)
	})
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: adminOnly(staff, mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln) // until Close: it then returns http.ErrServerClosed
	return "http://" + ln.Addr().String(), nil
}

// adminOnly serves h to a request whose bearer key is an admin's, and
// refuses any other: 401 without a valid key, 403 for another role.
func adminOnly(staff authenticator, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portrait profiles"`)
			http.Error(w, "profiles need an admin API key: send Authorization: Bearer <key>", http.StatusUnauthorized)
			return
		}
		c, err := staff.Authenticate(r.Context(), secret)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portrait profiles", error="invalid_token"`)
			http.Error(w, "the key is unknown, revoked or expired", http.StatusUnauthorized)
			return
		}
		if c.Role != policy.Admin {
			http.Error(w, "profiles are for an admin key; this key's role is "+string(c.Role), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
