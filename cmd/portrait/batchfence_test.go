package main

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/cluster"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
	"github.com/portrait-dev/portrait/tables"
)

// A node's batch derivation writes only while it holds the combining
// bucket's lease: allowed while it does, refused with cluster.ErrFenced
// (and a conflict for the caller) once another node has taken the bucket
// under a newer epoch, though the node itself has not noticed yet; the
// refused transaction stores nothing.
func TestBatchFence(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	node, err := cluster.Join(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Leave()
	if err := node.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f := fence{node: node, batch: true}
	write := func(ps portrait.Pseudonym) error {
		return db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			if err := f.Check(ctx, tx, []portrait.Pseudonym{ps}); err != nil {
				return err
			}
			return tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: ps, WrappedKey: []byte("k"), SealedID: []byte("s")}})
		})
	}
	if err := write("00aa01"); err != nil {
		t.Fatalf("write while holding bucket %d: %v", combineBucket, err)
	}
	// Another node takes the bucket, as cluster.Node.Refresh does once
	// this node's session has ended: the epoch moves on.
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var epoch int64
	if err := other.QueryRow(ctx, tables.TakeLeaseSQL, int32(combineBucket), int32(7)).Scan(&epoch); err != nil {
		t.Fatal(err)
	}
	err = write("00aa02")
	if !errors.Is(err, cluster.ErrFenced) || portrait.ErrorCode(err) != portrait.ECONFLICT {
		t.Fatalf("write after the bucket moved: %v (code %s), want cluster.ErrFenced as a conflict", err, portrait.ErrorCode(err))
	}
	got, err := db.Subjects(ctx, []portrait.Pseudonym{"00aa01", "00aa02"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["00aa02"]; ok || len(got) != 1 {
		t.Errorf("subjects stored = %v, want only the write made before the bucket moved", got)
	}
}
