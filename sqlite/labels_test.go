package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

// Close finalizes the label upserts PutLabels keeps on the write
// connection: a statement left unfinalized keeps SQLite's connection
// open after Close (sqlite3_close_v2), and with it the write-ahead log,
// which the last connection to close otherwise checkpoints and removes.
func TestCloseFinalizesLabelStatements(t *testing.T) {
	for _, n := range []int{1, 300} { // one statement size, and several
		path := filepath.Join(t.TempDir(), "portrait.db")
		s := mustOpen(t, path)
		var values []portrait.LabelValue
		for i := range n {
			p := portrait.Pseudonym(fmt.Sprintf("s%04d", i))
			values = append(values, portrait.LabelValue{Grant: storetest.Grant(t, p, policy.Derive), Pseudonym: p, Label: "fan",
				Version: 1, Sealed: []byte("x"), Computed: time.Unix(1, 0)})
		}
		if err := s.Update(context.Background(), func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, values) }); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("%d labels: close: %v", n, err)
		}
		if _, err := os.Stat(path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%d labels: the write-ahead log is still there after Close (%v): a connection was left open", n, err)
		}
	}
}
