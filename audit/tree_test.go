package audit

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// The streaming tree produces exactly tlog's stored hashes and root, and
// knownRoot gives the signed root from any set of known records and the
// stored hashes, and another root when a known record is changed.
func TestTreeMatchesTlog(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 2, 3, 5, 8, 13, 64, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			_, m := buildLog(t, "k", testRecords(0, n))
			tr := newTree(0, nil)
			for i, e := range m.entries {
				if got := tr.add(e.Data, nil); !bytes.Equal(got, e.Hashes) {
					t.Fatalf("record %d: stored hashes differ from tlog's", i)
				}
			}
			want := treeHash(t, m)
			if tr.root() != want {
				t.Fatal("root differs from tlog.TreeHash")
			}
			hr := storeHashes(ctx, m)
			for _, idx := range [][]int64{{0}, {int64(n - 1)}, {0, int64(n - 1)}, {int64(n / 2)}, rangeOf(0, int64(n)), rangeOf(int64(n/3), int64(n-n/3))} {
				idx = dedup(idx)
				leaves := make([]tlog.Hash, len(idx))
				for i, x := range idx {
					leaves[i] = tlog.RecordHash(m.entries[x].Data)
				}
				got, err := knownRoot(int64(n), idx, leaves, hr)
				if err != nil || got != want {
					t.Fatalf("knownRoot(%v) = %x, %v; want the root", idx, got, err)
				}
				leaves[0] = tlog.RecordHash([]byte("changed"))
				if got, _ := knownRoot(int64(n), idx, leaves, hr); got == want {
					t.Fatalf("knownRoot(%v) with a changed record gives the root", idx)
				}
			}
		})
	}
}

func rangeOf(a, b int64) []int64 {
	var out []int64
	for i := a; i < b; i++ {
		out = append(out, i)
	}
	return out
}

func dedup(idx []int64) []int64 {
	var out []int64
	for _, x := range idx {
		if len(out) == 0 || x > out[len(out)-1] {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return []int64{0}
	}
	return out
}
