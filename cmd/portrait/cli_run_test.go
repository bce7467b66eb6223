package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
)

// run's exit codes and what it prints: a usage error with its own text
// says it (serve's flag combinations), one the flag package explained
// prints nothing more, any other error is printed with exit 1.
func TestRunReportsErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{errUsage, 2, ""},
		{fmt.Errorf("--cluster needs --nats-stream and a postgres:// --db: %w", errUsage), 2, "portrait: --cluster needs --nats-stream and a postgres:// --db\n"},
		{errors.New("open x.db: no such file"), 1, "portrait: open x.db: no such file\n"},
	} {
		var stderr bytes.Buffer
		if code := run(&stderr, c.err); code != c.code || stderr.String() != c.out {
			t.Errorf("run(%v) = %d, %q; want %d, %q", c.err, code, stderr.String(), c.code, c.out)
		}
	}
}
