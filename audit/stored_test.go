package audit_test

import (
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

func TestStoredHashLookup(t *testing.T) {
	// Record 3 stores three hashes: levels 0, 1 and 2 (tlog.StoredHashes).
	idx := []int64{5, 6}
	recs, err := audit.HashRecords(append(idx, 5))
	if err != nil || len(recs) != 1 || recs[0] != 3 {
		t.Fatalf("records %v, %v; want [3]", recs, err)
	}
	blob := make([]byte, 3*audit.HashSize)
	for i := range blob {
		blob[i] = byte(i / audit.HashSize)
	}
	got, err := audit.PickHashes([]int64{4, 5, 6}, map[int64][]byte{3: blob})
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range got {
		if h[0] != byte(i) {
			t.Errorf("hash %d starts with %d, want %d", i, h[0], i)
		}
	}
	if _, err := audit.HashRecords([]int64{-1}); portrait.ErrorCode(err) != portrait.EINVALID {
		t.Errorf("negative index: %v", err)
	}
	if _, err := audit.PickHashes([]int64{5}, map[int64][]byte{}); portrait.ErrorCode(err) != portrait.ENOTFOUND {
		t.Errorf("missing record: %v", err)
	}
	if _, err := audit.PickHashes([]int64{6}, map[int64][]byte{3: blob[:audit.HashSize]}); err == nil {
		t.Error("short hash blob accepted")
	}
}
