package monitor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/cluster"
	"github.com/portrait-dev/portrait/monitor"
)

// comparable is a report's JSON without what differs between two runs
// over the same data: its id, time, duration and the alerts' log indexes.
func comparable(t *testing.T, rep *monitor.Report) string {
	t.Helper()
	r := *rep
	r.ID, r.Time, r.Seconds = "", time.Time{}, 0
	r.Alerts = append([]monitor.Alert(nil), rep.Alerts...)
	for i := range r.Alerts {
		r.Alerts[i].LogIndex = 0
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Three nodes each collect the buckets they own (rendezvous hashing, as
// serve --cluster assigns them); their partials combined give the report
// one node's Run gives over the same store, every monitor included; and
// partials that miss a bucket or hold one twice are refused.
func TestCombineEqualsRun(t *testing.T) {
	e := newEnv(t, monitor.Options{})
	e.population()
	ctx := context.Background()
	// Two monitors of the same store, each fresh: one runs alone, the
	// other combines the partials.
	fresh := func() *monitor.Monitor {
		m, err := monitor.New(monitor.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log}, e.mon.Options())
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	one, err := fresh().Run(ctx, e.now)
	if err != nil {
		t.Fatal(err)
	}
	if one.Subjects == 0 || len(one.Alerts) == 0 {
		t.Fatalf("the population gave %d subjects, %d alerts: nothing to compare", one.Subjects, len(one.Alerts))
	}
	m := fresh()
	members := []int32{11, 22, 33}
	var parts []*monitor.Partial
	total := 0
	for _, node := range members {
		var mine []int
		for b := range cluster.Buckets {
			if cluster.Owner(members, b) == node {
				mine = append(mine, b)
			}
		}
		p, err := m.Collect(ctx, e.now, mine, cluster.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		if p.Subjects() == 0 || p.Subjects() == one.Subjects {
			t.Fatalf("node %d read %d of %d subjects: not a split", node, p.Subjects(), one.Subjects)
		}
		total += p.Subjects()
		parts = append(parts, p)
	}
	if total != one.Subjects {
		t.Fatalf("the partials read %d subjects, one node %d", total, one.Subjects)
	}
	for _, tc := range []struct {
		name  string
		parts []*monitor.Partial
		want  string
	}{
		{"a bucket missing", parts[1:], "missing"},
		{"a bucket twice", append(parts, parts[0]), "held twice"},
	} {
		if _, err := m.Combine(ctx, e.now, cluster.Buckets, tc.parts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// As serve --cluster leaves them in the store: one per bucket,
	// encoded, then decoded by the node that combines.
	var stored []*monitor.Partial
	for _, p := range parts {
		for _, q := range p.Split(cluster.Bucket) {
			b, err := q.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var back monitor.Partial
			if err := back.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			stored = append(stored, &back)
		}
	}
	if len(stored) != cluster.Buckets {
		t.Fatalf("%d per-bucket partials", len(stored))
	}
	three, err := m.Combine(ctx, e.now, cluster.Buckets, stored...)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := comparable(t, one), comparable(t, three); a != b {
		t.Errorf("one node and three differ:\none:   %s\nthree: %s", a, b)
	}
}
