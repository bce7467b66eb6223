package cluster

import (
	"context"
	portrait "github.com/portrait-dev/portrait"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

// Rendezvous hashing moves only the leaving node's buckets, and spreads
// buckets over the nodes.
func TestOwnerMovesOnlyTheLeaversBuckets(t *testing.T) {
	for _, tc := range []struct{ members []int32 }{
		{[]int32{1, 2, 3}},
		{[]int32{7, 1 << 30, 99, 12345, 5}},
	} {
		share := map[int32]int{}
		for b := range Buckets {
			share[Owner(tc.members, b)]++
		}
		for _, m := range tc.members {
			if share[m] < Buckets/len(tc.members)/3 {
				t.Errorf("%v: node %d owns %d of %d buckets", tc.members, m, share[m], Buckets)
			}
		}
		gone := tc.members[0]
		rest := tc.members[1:]
		for b := range Buckets {
			before, after := Owner(tc.members, b), Owner(rest, b)
			if before != gone && before != after {
				t.Errorf("%v: bucket %d moved from %d to %d though %d left", tc.members, b, before, after, gone)
			}
		}
	}
	if Owner(nil, 3) != 0 {
		t.Error("a bucket has an owner with no members")
	}
}

func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		pseudonym portrait.Pseudonym
		want      int
	}{
		{"0000aa", 0},
		{"0041ff", 0x41 % Buckets},
		{"ffff00", 0xffff % Buckets},
	} {
		if got := Bucket(tc.pseudonym); got != tc.want {
			t.Errorf("Bucket(%q) = %d, want %d", tc.pseudonym, got, tc.want)
		}
	}
	if b := Bucket("not hex"); b < 0 || b >= Buckets {
		t.Errorf("Bucket of a non-hex pseudonym: %d", b)
	}
}

// disjoint fails the test if two nodes hold one bucket.
func disjoint(t *testing.T, nodes ...*Node) {
	t.Helper()
	seen := map[int]int32{}
	for _, n := range nodes {
		for _, b := range n.Held() {
			if o, ok := seen[b]; ok {
				t.Fatalf("bucket %d held by nodes %d and %d at once", b, o, n.ID)
			}
			seen[b] = n.ID
		}
	}
}

// holds reports whether n holds bucket b, and lets it go at once.
func holds(n *Node, b int) bool {
	release, ok := n.Hold(b)
	if ok {
		release()
	}
	return ok
}

func held(nodes ...*Node) int {
	var n int
	for _, x := range nodes {
		n += len(x.Held())
	}
	return n
}

// Three nodes on one PostgreSQL hold every bucket once between them; a
// node joining takes buckets only as their owner lets them go, never two
// nodes at once; a node whose session dies (as with kill -9) leaves, and
// the others take its buckets.
func TestNodesShareBuckets(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn) // the leases table
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	join := func() *Node {
		n, err := Join(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Leave)
		return n
	}
	refresh := func(nodes ...*Node) {
		t.Helper()
		for _, n := range nodes {
			if err := n.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := join()
	refresh(a)
	if got := len(a.Held()); got != Buckets {
		t.Fatalf("a lone node holds %d of %d buckets", got, Buckets)
	}
	b, c := join(), join()
	// b and c want some of a's buckets, but a has not let them go.
	refresh(b, c)
	disjoint(t, a, b, c)
	if len(b.Held())+len(c.Held()) != 0 {
		t.Fatalf("b and c took %d buckets a still holds", len(b.Held())+len(c.Held()))
	}
	refresh(a, b, c)
	disjoint(t, a, b, c)
	if held(a, b, c) != Buckets || len(a.Held()) == Buckets {
		t.Fatalf("after a second refresh: a %d, b %d, c %d buckets", len(a.Held()), len(b.Held()), len(c.Held()))
	}
	if m := a.Members(); len(m) != 3 || !slices.Contains(m, b.ID) || !slices.Contains(m, c.ID) {
		t.Fatalf("members %v", m)
	}
	for _, n := range []*Node{a, b, c} {
		for _, bk := range n.Held() {
			if o := Owner(n.Members(), bk); o != n.ID {
				t.Errorf("node %d holds bucket %d owned by %d", n.ID, bk, o)
			}
		}
	}

	if holds(b, a.Held()[0]) {
		t.Fatal("b holds a's bucket")
	}

	// c's session ends as if its process were killed.
	kill, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer kill.Close(ctx)
	cHeld := c.Held()
	if _, err := kill.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1`, c.conn.PgConn().PID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	refresh(a, b)
	disjoint(t, a, b)
	if held(a, b) != Buckets {
		t.Fatalf("after c left, a and b hold %d of %d buckets (c held %d)", held(a, b), Buckets, len(cHeld))
	}
	for _, bk := range cHeld {
		if !holds(a, bk) && !holds(b, bk) {
			t.Errorf("c's bucket %d was not taken over", bk)
		}
	}
	// c finds its session gone and holds nothing until it joins again.
	if err := c.Refresh(ctx); err == nil && len(c.Held()) != 0 {
		// It may rejoin at once: then it holds nothing a or b holds.
		disjoint(t, a, b, c)
	}
	disjoint(t, a, b, c)

	// Work in hand keeps a bucket: when d joins and owns one of a's
	// buckets, a gives it up only once that work is done.
	d := join()
	refresh(d)
	members := d.Members()
	bk := -1
	for _, x := range a.Held() {
		if Owner(members, x) == d.ID {
			bk = x
			break
		}
	}
	if bk < 0 {
		t.Fatalf("d (%d) owns none of a's buckets among %v", d.ID, members)
	}
	release, ok := a.Hold(bk)
	if !ok {
		t.Fatal("Hold of a held bucket failed")
	}
	done := make(chan struct{})
	go func() { a.Refresh(ctx); close(done) }()
	select {
	case <-done:
		t.Fatal("a gave up a bucket with work in hand")
	case <-time.After(300 * time.Millisecond):
	}
	release()
	<-done
	if holds(a, bk) {
		t.Fatal("a kept a bucket d owns")
	}
	refresh(d, b)
	disjoint(t, a, b, c, d)
	if !holds(d, bk) {
		t.Error("d did not take the bucket a gave up")
	}
}
