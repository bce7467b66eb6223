package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/cluster"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/stream"
)

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// share joins the cluster of the nodes on the PostgreSQL database at dsn
// (serve --cluster) and routes derivation through the NATS work stream
// to the node owning each subject's bucket, until ctx ends.
func (a *app) share(ctx context.Context, dsn string, nc *nats.Conn) error {
	node, err := cluster.Join(ctx, dsn, a.logger)
	if err != nil {
		return err
	}
	if err := node.Refresh(ctx); err != nil {
		node.Leave()
		return err
	}
	a.logger.Info("cluster: joined", "node", node.ID, "buckets", len(node.Held()))
	a.deriver.FenceBatch(fence{node: node, batch: true})
	go node.Run(ctx, time.Second)
	sh := &stream.Share{NC: nc, Owner: node, Bucket: cluster.Bucket, Logger: a.logger,
		Derive: func(ctx context.Context, ps []portrait.Pseudonym) error {
			_, err := a.deriver.Subjects(derive.WithFence(ctx, fence{node: node}), ps)
			return err
		}}
	if err := sh.Open(ctx); err != nil {
		node.Leave()
		return err
	}
	a.onStored, a.pending = sh.Add, nil
	if a.monitorEvery > 0 {
		// The monitors split across the nodes too; the node's own
		// schedule of whole runs is off.
		go a.monitorShare(ctx, node, a.monitorEvery)
		a.monitorEvery = 0
	}
	go func() {
		if err := sh.Run(ctx); err != nil {
			a.logger.Error("cluster: work stream stopped; derivation waits for batch runs", "err", err)
		}
	}()
	return nil
}

// fence checks, inside a derivation's write transaction, that this node
// still holds the lease of every bucket it writes for (derive.Fence). An
// incremental derivation writes for its subjects' buckets; a batch
// derivation (batch set) writes every subject's labels, so it runs on the
// node holding combineBucket, as the monitors' combine does, and checks
// that lease's epoch. A node that does not hold a lease, or was paused past
// it, is refused (cluster.ErrFenced) and writes nothing.
type fence struct {
	node  *cluster.Node
	batch bool
}

func (f fence) Check(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error {
	lt, ok := tx.(cluster.LeaseTx)
	if !ok {
		return errors.New("cluster: the store cannot fence writes (no lease epochs)")
	}
	if f.batch {
		if err := f.node.Fence(ctx, lt, combineBucket); err != nil {
			return &portrait.Error{Code: portrait.ECONFLICT, Err: err,
				Message: fmt.Sprintf("batch derivation runs on the node holding bucket %d; this node does not hold it now: run it there", combineBucket)}
		}
		return nil
	}
	seen := map[int]bool{}
	for _, p := range pseudonyms {
		b := cluster.Bucket(p)
		if seen[b] {
			continue
		}
		seen[b] = true
		if err := f.node.Fence(ctx, lt, b); err != nil {
			return err
		}
	}
	return nil
}
