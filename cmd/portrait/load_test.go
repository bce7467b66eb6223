package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// load reads each batch's counts from the head of the answer and skips
// the per-event results, reports its own CPU, and turns a problem into an
// error that carries the server's detail.
func TestLoad(t *testing.T) {
	results := strings.Repeat(`{"index":0,"status":"accepted","chunk":1},`, 99) + `{"index":99,"status":"rejected","code":"x","reason":"y"}`
	tests := []struct {
		name   string
		status int
		answer string
		want   []string // in stdout, or in the error when err
		err    bool
	}{
		{"accepted", 200, `{"accepted":99,"rejected":1,"duplicates":0,"dropped_fields":0,"log_index":7,"results":[` + results + `]}`,
			[]string{"300 events in 3 batches of 100 by 2 workers", "accepted 297, rejected 3", "load generator: ", "µs per event"}, false},
		{"results first", 200, `{"results":[` + results + `],"accepted":99,"rejected":1}`,
			[]string{"300 events in 3 batches", "accepted 297, rejected 3"}, false},
		{"problem", 400, `{"type":"/problems/invalid","title":"Bad Request","status":400,"detail":"line 3: \"time\" is missing","code":"invalid"}`,
			[]string{"status 400", `line 3: "time" is missing`}, true},
		{"not json", 502, `bad gateway`, []string{"status 502", "not a JSON object"}, true},
		{"cut short", 200, `{"accepted":99,"rejec`, []string{"status 200"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines, bad atomic.Int64
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/events" || r.Header.Get("Authorization") != "Bearer k" || r.Header.Get("Content-Type") != "application/x-ndjson" {
					bad.Add(1)
				}
				sc := bufio.NewScanner(r.Body)
				for sc.Scan() {
					if !bytes.HasPrefix(sc.Bytes(), []byte(`{"subject":"load-`)) {
						bad.Add(1)
					}
					lines.Add(1)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.answer)
			}))
			defer ts.Close()
			var stdout, stderr bytes.Buffer
			t.Setenv("PORTRAIT_KEY", "k")
			err := load(context.Background(), []string{"--server", ts.URL, "--events", "300", "--batch", "100", "--workers", "2", "--subjects", "10"}, &stdout, &stderr)
			if bad.Load() != 0 {
				t.Errorf("%d requests or lines were not what load sends", bad.Load())
			}
			got := stdout.String()
			if tt.err {
				if err == nil {
					t.Fatalf("no error; stdout %q", got)
				}
				got = err.Error()
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if lines.Load() != 300 {
					t.Errorf("server received %d events, want 300", lines.Load())
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q missing from %q", w, got)
				}
			}
		})
	}
}

// The load commands take their API key from PORTRAIT_KEY, and their help
// and their refusal without a key say so: a key on the command line is
// readable by every account (ps).
func TestLoadKeyFromEnvironment(t *testing.T) {
	for _, cmd := range []string{"load", "load-apply"} {
		t.Run(cmd, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Main([]string{cmd, "--help"}, &stdout, &stderr); code != 0 {
				t.Fatalf("%s --help: exit %d\n%s", cmd, code, stderr.String())
			}
			if !strings.Contains(stdout.String(), "PORTRAIT_KEY") {
				t.Errorf("%s --help does not name PORTRAIT_KEY:\n%s", cmd, stdout.String())
			}
			t.Setenv("PORTRAIT_KEY", "")
			stdout.Reset()
			stderr.Reset()
			if code := Main([]string{cmd, "--server", "http://127.0.0.1:1"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "PORTRAIT_KEY") {
				t.Errorf("%s without a key: exit %d, %q; want 2 and a message naming PORTRAIT_KEY", cmd, code, stderr.String())
			}
			stderr.Reset()
			t.Setenv("PORTRAIT_KEY", "k")
			if code := Main([]string{cmd, "--server", "https://127.0.0.1:1"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "plain http://") {
				t.Errorf("%s on https: exit %d, %q; want 2 and a message saying plain http://", cmd, code, stderr.String())
			}
		})
	}
}
