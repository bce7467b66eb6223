package cluster

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"hash/fnv"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portrait-dev/portrait/tables"
)

// Buckets is the number of buckets subjects fall into: enough that three
// to a few dozen nodes get even shares, few enough that a node's refresh
// (one lock call per bucket it gains or loses) stays cheap.
const Buckets = 64

// DefaultLease is how long a node's session may stay silent before
// PostgreSQL ends it, and with it the node's membership and buckets: a
// node paused (SIGSTOP, a long GC or VM pause, a cut network) for longer
// loses its buckets to the others. It is ten refresh intervals.
const DefaultLease = 10 * time.Second

// ErrFenced is returned for a write under a bucket's lease that this node
// does not hold, or no longer holds: another node has taken the bucket
// since (a newer epoch).
var ErrFenced = errors.New("cluster: bucket's lease is held by another node (newer epoch): write refused")

// LeaseTx is the part of a store transaction Fence needs: the bucket's
// lease epoch, read so that no node can take the bucket before the
// transaction ends (tables.Tx.LeaseEpoch).
type LeaseTx interface {
	LeaseEpoch(ctx context.Context, bucket int) (int64, error)
}

// Bucket is the bucket of a subject, from its pseudonym.
func Bucket(pseudonym portrait.Pseudonym) int {
	if b, err := hex.DecodeString(string(pseudonym[:min(4, len(pseudonym))])); err == nil && len(b) == 2 {
		return (int(b[0])<<8 | int(b[1])) % Buckets
	}
	h := fnv.New32a()
	h.Write([]byte(pseudonym))
	return int(h.Sum32() % Buckets)
}

// Owner is the member that ranks bucket b highest (rendezvous hashing),
// or 0 when there is no member.
func Owner(members []int32, b int) int32 {
	var best int32
	var top uint64
	for _, m := range members {
		if s := score(m, b); best == 0 || s > top || (s == top && m > best) {
			best, top = m, s
		}
	}
	return best
}

// score mixes a node and a bucket (splitmix64's finaliser).
func score(node int32, b int) uint64 {
	z := uint64(uint32(node))<<32 | uint64(uint32(b))
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Node is this process's membership of the cluster.
type Node struct {
	ID     int32
	dsn    string
	lease  time.Duration
	logger *slog.Logger

	mu        sync.Mutex // guards conn, members and the held flags' writers
	conn      *pgx.Conn  // the session whose advisory locks this node holds
	nodeKey   int32      // advisory lock namespaces, per schema
	bucketKey int32
	members   []int32
	buckets   [Buckets]struct {
		sync.RWMutex // read-held by work on the bucket; written to give it up
		held         bool
		epoch        atomic.Int64 // the lease epoch this node took; 0 when not held
	}
}

// Join connects to the PostgreSQL database at dsn, takes a node id and
// holds its lock, which makes this node a member until Leave or until the
// session ends. It holds no bucket until Refresh.
func Join(ctx context.Context, dsn string, logger *slog.Logger) (*Node, error) {
	return JoinLease(ctx, dsn, DefaultLease, logger)
}

// JoinLease is Join with a lease other than DefaultLease; it must be
// several times the refresh interval given to Run.
func JoinLease(ctx context.Context, dsn string, lease time.Duration, logger *slog.Logger) (*Node, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if lease < time.Second {
		return nil, fmt.Errorf("cluster: lease %v is under a second", lease)
	}
	n := &Node{dsn: dsn, lease: lease, logger: logger}
	if err := n.connect(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// connect opens the node's session and takes a node id no live node has.
func (n *Node) connect(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(n.dsn)
	if err != nil {
		return fmt.Errorf("cluster: connect: %w", err)
	}
	// The lease: PostgreSQL ends a session idle for longer, and with it
	// the node's advisory locks, so a paused node's buckets pass to the
	// others; Fence keeps it from writing for them once it resumes.
	cfg.RuntimeParams["idle_session_timeout"] = fmt.Sprint(n.lease.Milliseconds())
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cluster: connect: %w", err)
	}
	if err := conn.QueryRow(ctx, `SELECT hashtext('portrait node ' || current_schema()), hashtext('portrait bucket ' || current_schema())`).Scan(&n.nodeKey, &n.bucketKey); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("cluster: %w", err)
	}
	for range 10 {
		id := mrand.Int32N(1<<31-2) + 1
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, n.nodeKey, id).Scan(&ok); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("cluster: join: %w", err)
		}
		if ok {
			n.conn, n.ID = conn, id
			return nil
		}
	}
	conn.Close(ctx)
	return errors.New("cluster: join: no free node id after 10 tries")
}

// Leave gives up every bucket, after the work in hand, and leaves.
func (n *Node) Leave() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for b := range n.buckets {
		n.drop(b)
	}
	if n.conn != nil {
		n.conn.Close(context.Background())
		n.conn = nil
	}
}

// Members are the live nodes' ids, sorted, as of the last Refresh.
func (n *Node) Members() []int32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.members)
}

// Held lists the buckets this node holds.
func (n *Node) Held() []int {
	var out []int
	for b := range n.buckets {
		n.buckets[b].RLock()
		if n.buckets[b].held {
			out = append(out, b)
		}
		n.buckets[b].RUnlock()
	}
	return out
}

// Hold reports whether this node holds bucket b and, if so, keeps it held
// until release is called: work on a subject runs inside Hold.
func (n *Node) Hold(b int) (release func(), ok bool) {
	bk := &n.buckets[b]
	bk.RLock()
	if !bk.held {
		bk.RUnlock()
		return nil, false
	}
	return bk.RUnlock, true
}

// drop marks bucket b as not held, after the work in hand on it.
func (n *Node) drop(b int) {
	bk := &n.buckets[b]
	bk.Lock()
	bk.held = false
	bk.epoch.Store(0)
	bk.Unlock()
}

// Epoch is the lease epoch under which this node holds bucket b, 0 when
// it does not hold it.
func (n *Node) Epoch(b int) int64 { return n.buckets[b].epoch.Load() }

// Fence refuses, with ErrFenced, a write for bucket b in transaction tx
// unless the bucket's lease is still the one this node took. It reads the
// lease in tx and holds it until tx ends, so no node takes the bucket
// before the write commits. Call it inside Hold, before writing: Hold
// says what this node believes, Fence what PostgreSQL knows — they differ
// for a node that was paused past its lease and has not refreshed since.
func (n *Node) Fence(ctx context.Context, tx LeaseTx, b int) error {
	mine := n.buckets[b].epoch.Load()
	if mine == 0 {
		return fmt.Errorf("bucket %d: %w", b, ErrFenced)
	}
	now, err := tx.LeaseEpoch(ctx, b)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if now != mine {
		return fmt.Errorf("bucket %d: epoch %d, this node's %d: %w", b, now, mine, ErrFenced)
	}
	return nil
}

// Refresh reads the live nodes, gives up the buckets another node now
// owns (after the work in hand on them) and takes the buckets it owns
// whose lock is free. A bucket still locked by its previous owner is taken
// at a later refresh. When the session fails, the node holds nothing
// until it has joined again.
func (n *Node) Refresh(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil || n.conn.IsClosed() {
		if err := n.connect(ctx); err != nil {
			return err
		}
	}
	err := n.refresh(ctx)
	if err != nil {
		// The locks may be gone with the session: hold nothing.
		for b := range n.buckets {
			n.drop(b)
		}
		n.conn.Close(context.WithoutCancel(ctx))
		n.conn = nil
	}
	return err
}

func (n *Node) refresh(ctx context.Context) error {
	rows, err := n.conn.Query(ctx, `SELECT objid::text::bigint FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid::text::bigint = $1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, int64(uint32(n.nodeKey)))
	if err != nil {
		return fmt.Errorf("cluster: members: %w", err)
	}
	members, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (int32, error) {
		var id int64
		err := r.Scan(&id)
		return int32(id), err
	})
	if err != nil {
		return fmt.Errorf("cluster: members: %w", err)
	}
	slices.Sort(members)
	if !slices.Equal(members, n.members) {
		n.logger.Info("cluster: members", "node", n.ID, "members", len(members))
	}
	n.members = members
	for b := range n.buckets {
		bk := &n.buckets[b]
		want := Owner(members, b) == n.ID
		bk.RLock()
		held := bk.held
		bk.RUnlock()
		switch {
		case want && !held:
			var ok bool
			if err := n.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, n.bucketKey, int32(b)).Scan(&ok); err != nil {
				return fmt.Errorf("cluster: take bucket %d: %w", b, err)
			}
			if !ok {
				break
			}
			// A new epoch fences out the last holder's writes; the
			// update waits for any write of its still in flight.
			var epoch int64
			if err := n.conn.QueryRow(ctx, tables.TakeLeaseSQL, int32(b), n.ID).Scan(&epoch); err != nil {
				return fmt.Errorf("cluster: take lease of bucket %d: %w", b, err)
			}
			bk.Lock()
			bk.held = true
			bk.epoch.Store(epoch)
			bk.Unlock()
		case !want && held:
			n.drop(b) // waits for the work in hand on the bucket
			if _, err := n.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, n.bucketKey, int32(b)); err != nil {
				return fmt.Errorf("cluster: give up bucket %d: %w", b, err)
			}
		}
	}
	return nil
}

// Run refreshes every interval until ctx ends, then leaves.
func (n *Node) Run(ctx context.Context, every time.Duration) {
	defer n.Leave()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := n.Refresh(ctx); err != nil && ctx.Err() == nil {
			n.logger.Warn("cluster: refresh", "node", n.ID, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
