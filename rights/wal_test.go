package rights_test

import (
	"context"
	portrait "github.com/portrait-dev/portrait"
	"os"
	"testing"

	"github.com/portrait-dev/portrait/rights"
)

// SR-3: erasure on SQLite truncates the write-ahead log itself, through
// rights.WALTruncater, so no page image of the erased rows stays in it.
func TestEraseTruncatesWAL(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, rights.Options{})
	if _, ok := e.store.(rights.WALTruncater); !ok {
		t.Fatalf("the SQLite store %T is not a rights.WALTruncater: erasure would leave its WAL as it is", e.store)
	}
	p := e.seed(t, "alice", 5)
	if fi, err := os.Stat(e.path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("before erasure: wal %v, %v; want a non-empty WAL for the test to mean anything", fi, err)
	}
	if _, err := e.svc.Erase(ctx, self(string(p)), portrait.Pseudonym(p)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(e.path + "-wal"); err != nil {
		t.Fatal(err)
	} else if fi.Size() != 0 {
		t.Errorf("after erasure: the WAL holds %d bytes, want 0", fi.Size())
	}
}
