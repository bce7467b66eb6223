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
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
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

// testPartials: a monitor run's per-bucket partial is stored once per
// run and bucket (a second is not: no subject counted twice), read back by
// run, and deleted with every earlier run.
func testPartials(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	type partials interface {
		PartialBuckets(ctx context.Context, run string) ([]int, error)
		Partials(ctx context.Context, run string) (map[int][]byte, error)
	}
	type partialTx interface {
		PutPartial(ctx context.Context, run string, bucket int, node int32, epoch int64, sealed []byte) (bool, error)
		DeletePartials(ctx context.Context, run string) error
	}
	ps, ok := s.(partials)
	if !ok {
		t.Fatal("the store keeps no monitor partials")
	}
	put := func(run string, b int, data string) bool {
		t.Helper()
		var stored bool
		err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			var err error
			stored, err = tx.(partialTx).PutPartial(ctx, run, b, 7, 1, []byte(data))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	const r1, r2 = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"
	if !put(r1, 3, "a") || !put(r1, 0, "b") || !put(r2, 3, "c") {
		t.Fatal("a first partial was not stored")
	}
	if put(r1, 3, "again") {
		t.Error("a second partial of one run and bucket was stored")
	}
	if bs, err := ps.PartialBuckets(ctx, r1); err != nil || len(bs) != 2 || bs[0] != 0 || bs[1] != 3 {
		t.Errorf("buckets of run 1: %v %v", bs, err)
	}
	if m, err := ps.Partials(ctx, r1); err != nil || string(m[3]) != "a" || string(m[0]) != "b" {
		t.Errorf("partials of run 1: %d stored, %v", len(m), err)
	}
	if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.(partialTx).DeletePartials(ctx, r1) }); err != nil {
		t.Fatal(err)
	}
	if bs, _ := ps.PartialBuckets(ctx, r1); len(bs) != 0 {
		t.Errorf("run 1 after its deletion: %v", bs)
	}
	if bs, _ := ps.PartialBuckets(ctx, r2); len(bs) != 1 {
		t.Errorf("a later run deleted with an earlier one: %v", bs)
	}
}
