package main

import (
	"bytes"
	"strings"
	"testing"
)

// serve --cors-origins takes exact origins only; a wildcard or a path is
// refused before anything starts.
func TestServeCORSOriginsFlag(t *testing.T) {
	for _, bad := range []string{"https://*.example.com", "https://shop.example.com/path", "*"} {
		var out, errb bytes.Buffer
		if code := Main([]string{"serve", "--cors-origins", bad, "--db", t.TempDir() + "/p.db"}, &out, &errb); code != 1 ||
			!strings.Contains(errb.String(), "not an exact origin") {
			t.Errorf("--cors-origins %q: exit %d, %s", bad, code, errb.String())
		}
	}
}
