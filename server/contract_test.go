package server_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/server"
)

// TestMain holds the handlers to the document over every test of the
// package: a body a handler decodes or encodes that disagrees with its
// route's contract fails the run (export_test.go observes them).
func TestMain(m *testing.M) {
	code := m.Run()
	errs, unseenIn, unseenOut, _ := server.ContractErrors()
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: handlers and /openapi.json disagree:\n\t%s\n", strings.Join(errs, "\n\t"))
		code = 1
	}
	if testing.Verbose() && (len(unseenIn) > 0 || len(unseenOut) > 0) {
		fmt.Fprintf(os.Stderr, "contract: request bodies never decoded by a test: %v\ncontract: responses never encoded by a test: %v\n", unseenIn, unseenOut)
	}
	os.Exit(code)
}

var updateOpenAPI = flag.Bool("update-openapi", false, "write ../client/openapi.json from the served document")

// TestOpenAPIFile keeps client/openapi.json, from which the Go client is
// generated, byte for byte the document the server serves: the client
// cannot drift from the server without this test failing.
func TestOpenAPIFile(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := http.Get(h.url + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const file = "../client/openapi.json"
	if *updateOpenAPI {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not the document the server serves; run go generate ./client", file)
	}
}
