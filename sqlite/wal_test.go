package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/sqlite"
)

// Erasure truncates the WAL of a store that is a rights.WALTruncater: the
// SQLite store must stay one, or erased page images would linger (SR-3).
var _ rights.WALTruncater = (*sqlite.DB)(nil)

// SR-3: TruncateWAL leaves the write-ahead log empty.
func TestTruncateWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portrait.db")
	db := mustOpen(t, path)
	if err := db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: "p", WrappedKey: []byte("wrapped")}})
	}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("before: wal %v, %v; want a non-empty WAL for the test to mean anything", fi, err)
	}
	if err := db.TruncateWAL(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Errorf("after TruncateWAL: wal %v, %v; want empty", fi, err)
	}
}
