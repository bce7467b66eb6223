//go:build unix

package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/sqlite"
)

// TestMain lets the test binary play a second process: with
// PORTRAIT_LOCK_CHILD set it opens that database, says what happened on
// stdout, holds the store while its stdin stays open, and exits.
func TestMain(m *testing.M) {
	if path := os.Getenv("PORTRAIT_LOCK_CHILD"); path != "" {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			fmt.Printf("refused %v: %v\n", errors.Is(err, sqlite.ErrInUse), err)
			os.Exit(0)
		}
		fmt.Println("opened")
		bufio.NewReader(os.Stdin).ReadString('\n')
		db.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child starts the test binary as a second process opening path and
// returns its first line and the pipe that keeps it holding the store.
func child(t *testing.T, path string) (string, *exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PORTRAIT_LOCK_CHILD="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("second process: %v", err)
	}
	return strings.TrimSpace(line), cmd, func() { in.Close(); cmd.Wait() }
}

// One process owns a SQLite database: a second process's Open is refused
// with an error naming the owner and saying what to do instead, until
// every Open of the owner is closed or the owner dies (the kernel drops
// its lock: nothing stale is left to clear). Opens within one process
// share the hold.
func TestOpenRefusesSecondProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	db := mustOpen(t, path)
	db2 := mustOpen(t, path) // a second handle in the owning process

	line, _, done := child(t, path)
	done()
	if !strings.HasPrefix(line, "refused true:") {
		t.Fatalf("a second process opening a database in use: %q, want refused with ErrInUse", line)
	}
	for _, want := range []string{"process " + strconv.Itoa(os.Getpid()), "one node only", "/v1/keys"} {
		if !strings.Contains(line, want) {
			t.Errorf("refusal %q does not say %q", line, want)
		}
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	line, _, done = child(t, path)
	done()
	if !strings.HasPrefix(line, "refused true:") {
		t.Fatalf("with one of the owner's two handles still open: %q, want refused", line)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	line, cmd, done := child(t, path)
	if line != "opened" {
		done()
		t.Fatalf("after the owner closed: %q, want opened", line)
	}
	if _, err := sqlite.Open(ctx, path); !errors.Is(err, sqlite.ErrInUse) {
		t.Errorf("opened a database another process owns: %v", err)
	}
	cmd.Process.Kill() // dies holding the store
	done()
	deadline := time.Now().Add(5 * time.Second)
	for {
		db, err := sqlite.Open(ctx, path)
		if err == nil {
			db.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the owner was killed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
