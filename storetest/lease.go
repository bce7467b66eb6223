package storetest

import (
	"context"
	"testing"

	portrait "github.com/portrait-dev/portrait"
)

// testLeaseEpoch: a store transaction reads a bucket's lease epoch (the
// fencing token of package cluster), 0 for a bucket no node took. Taking
// a lease is PostgreSQL's alone (cluster); TestFence and
// TestPausedNodeCannotWrite in package cluster cover it.
func testLeaseEpoch(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx portrait.Tx) error {
		lt, ok := tx.(interface {
			LeaseEpoch(ctx context.Context, bucket int) (int64, error)
		})
		if !ok {
			t.Fatal("the store's transaction has no LeaseEpoch")
		}
		for _, b := range []int{0, 63} {
			e, err := lt.LeaseEpoch(ctx, b)
			if err != nil {
				return err
			}
			if e != 0 {
				t.Errorf("bucket %d: epoch %d in an empty store, want 0", b, e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
