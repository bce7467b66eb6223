package server_test

import (
	"fmt"
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
