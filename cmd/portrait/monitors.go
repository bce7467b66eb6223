package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/cluster"
	"github.com/portrait-dev/portrait/monitor"
)

// partialStore is what the split monitors need of the store: the
// per-bucket partials of a run (tables).
type partialStore interface {
	PartialBuckets(ctx context.Context, run string) ([]int, error)
	Partials(ctx context.Context, run string) (map[int][]byte, error)
	Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error
}

// partialTx writes them, fenced by the bucket's lease.
type partialTx interface {
	cluster.LeaseTx
	PutPartial(ctx context.Context, run string, bucket int, node int32, epoch int64, sealed []byte) (bool, error)
	DeletePartials(ctx context.Context, run string) error
}

// partialPoll is how often a node looks for the partials it owes and the
// combiner for a complete run.
const partialPoll = 2 * time.Second

// combineBucket is the bucket whose holder combines the runs.
const combineBucket = 0

// monitorShare runs the monitors split across the cluster's nodes, a run
// every `every`, named by its start: each node leaves, for every bucket
// it holds, the run's inputs for that bucket's subjects (sealed, under
// its lease epoch), and the holder of bucket 0 combines them into the
// report once every bucket's partial is there. A bucket whose holder dies
// before leaving its partial is left by its next holder, so a run
// completes through a hand-over; a run's partial is stored once per
// bucket, so no subject is counted twice.
func (a *app) monitorShare(ctx context.Context, node *cluster.Node, every time.Duration) {
	st, ok := a.store.(partialStore)
	if !ok {
		a.logger.Error("cluster: the store keeps no monitor partials; monitors do not run")
		return
	}
	if err := a.monitor.Load(ctx); err != nil && ctx.Err() == nil {
		a.logger.Error("monitor: load proxy flags", "err", err)
	}
	t := time.NewTicker(partialPoll)
	defer t.Stop()
	combined := ""
	for {
		at := time.Now().UTC().Truncate(every)
		run := at.Format(time.RFC3339Nano)
		if err := a.leavePartials(ctx, st, node, run, at); err != nil && ctx.Err() == nil {
			a.logger.Warn("monitor: partials", "run", run, "err", err)
		}
		if run != combined {
			switch done, err := a.combine(ctx, st, node, run, at); {
			case err != nil && ctx.Err() == nil:
				a.logger.Warn("monitor: combine", "run", run, "err", err)
			case done:
				combined = run
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func partialAD(run string, b int) []byte {
	return []byte("monitor partial/" + run + "/" + strconv.Itoa(b))
}

// leavePartials stores run's partial of every bucket this node holds that
// has none yet.
func (a *app) leavePartials(ctx context.Context, st partialStore, node *cluster.Node, run string, at time.Time) error {
	have, err := st.PartialBuckets(ctx, run)
	if err != nil {
		return err
	}
	var todo []int
	for _, b := range node.Held() {
		if !slices.Contains(have, b) {
			todo = append(todo, b)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	p, err := a.monitor.Collect(ctx, at, todo, cluster.Bucket)
	if err != nil {
		return err
	}
	c := a.keys.NodeCipher()
	for b, q := range p.Split(cluster.Bucket) {
		plain, err := q.MarshalBinary()
		if err != nil {
			return err
		}
		sealed := c.Seal(plain, partialAD(run, b))
		release, ok := node.Hold(b)
		if !ok {
			continue // moved meanwhile: its new holder leaves it
		}
		err = st.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			ptx, ok := tx.(partialTx)
			if !ok {
				return errors.New("the store cannot keep monitor partials")
			}
			if err := node.Fence(ctx, ptx, b); err != nil {
				return err
			}
			_, err := ptx.PutPartial(ctx, run, b, node.ID, node.Epoch(b), sealed)
			return err
		})
		release()
		if err != nil {
			return fmt.Errorf("bucket %d: %w", b, err)
		}
	}
	return nil
}

// combine makes run's report if this node holds the combining bucket and
// every bucket's partial is stored; it reports whether it did.
func (a *app) combine(ctx context.Context, st partialStore, node *cluster.Node, run string, at time.Time) (bool, error) {
	release, ok := node.Hold(combineBucket)
	if !ok {
		return false, nil
	}
	defer release()
	have, err := st.PartialBuckets(ctx, run)
	if err != nil || len(have) < cluster.Buckets {
		return false, err
	}
	sealed, err := st.Partials(ctx, run)
	if err != nil {
		return false, err
	}
	c := a.keys.NodeCipher()
	parts := make([]*monitor.Partial, 0, len(sealed))
	for b, s := range sealed {
		plain, err := c.Open(s, partialAD(run, b))
		if err != nil {
			return false, fmt.Errorf("partial of bucket %d does not open: %w", b, err)
		}
		p := new(monitor.Partial)
		if err := p.UnmarshalBinary(plain); err != nil {
			return false, err
		}
		if !slices.Equal(p.Buckets, []int{b}) {
			return false, fmt.Errorf("the partial stored for bucket %d holds buckets %v", b, p.Buckets)
		}
		parts = append(parts, p)
	}
	rep, err := a.monitor.Combine(ctx, at, cluster.Buckets, parts...)
	if err != nil {
		return false, err
	}
	a.logger.Info("monitor: run combined", "run", run, "subjects", rep.Subjects, "alerts", len(rep.Alerts))
	// The partials hold personal inputs: gone once combined.
	err = st.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		ptx, ok := tx.(partialTx)
		if !ok {
			return errors.New("the store cannot keep monitor partials")
		}
		if err := node.Fence(ctx, ptx, combineBucket); err != nil {
			return err
		}
		return ptx.DeletePartials(ctx, run)
	})
	return true, err
}
