package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portrait-dev/portrait/storetest"
)

// jetStream runs a NATS server with JetStream in the test process and
// declares the stream EVENTS on events.>.
func jetStream(t *testing.T) (url string, js jetstream.JetStream) {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), js
}

// labelsOf is each subject's labels as GET /v1/subjects/{id}/labels shows
// them, keeping the label ids and values (not when they were computed).
func labelsOf(t *testing.T, url, admin string, subjects []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range subjects {
		var doc struct{ Labels []map[string]any }
		if _, err := try(context.Background(), url, "GET", "/v1/subjects/"+s+"/labels", admin, "", &doc); err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, l := range doc.Labels {
			v, _ := l["value"].(map[string]any)
			delete(v, "computed") // when, not what
			b, _ := json.Marshal(v)
			parts = append(parts, fmt.Sprintf("%v=%s", l["label"], b))
		}
		slices.Sort(parts)
		out[s] = strings.Join(parts, " ")
	}
	return out
}

// TestClusterThreeNodes runs three `portrait serve --cluster` processes
// on one PostgreSQL database taking events from one JetStream stream, and
// one plain node on another database taking the same events: every
// subject ends with the same labels on both. Then one of the three is
// killed with SIGKILL; the other two take over its buckets, and the
// labels of the next events again match the single node's.
func TestClusterThreeNodes(t *testing.T) {
	refDB, cluDB := storetest.PostgresDatabase(t), storetest.PostgresDatabase(t)
	const admin = "cluster-admin-key"
	master := newMaster(t)
	refURL, refJS := jetStream(t)
	cluURL, cluJS := jetStream(t)
	ref := startKillable(t, refDB, master, admin, "--nats", refURL, "--nats-stream", "EVENTS", "--monitor-every", "0")
	var nodes []*killable
	for range 3 {
		nodes = append(nodes, startKillable(t, cluDB, master, admin, "--nats", cluURL, "--nats-stream", "EVENTS", "--cluster", "--monitor-every", "3s"))
	}
	var subjects []string
	for i := range 24 {
		subjects = append(subjects, fmt.Sprintf("c-%d", i))
	}
	ctx := context.Background()
	for _, s := range subjects {
		for _, url := range []string{ref.url, nodes[0].url} {
			if _, err := try(ctx, url, "PUT", "/v1/subjects/"+s+"/consents/personalization", admin, `{"status":"granted","notice_version":"1"}`, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	publish := func(round int) {
		t.Helper()
		for i, s := range subjects {
			body := viewEvents(s, fmt.Sprintf("r%d", round), 5+i%7, at.Add(time.Duration(round)*time.Minute))
			if round%2 == 1 {
				body = strings.ReplaceAll(body, `"sports"`, `"books"`)
			}
			for _, js := range []jetstream.JetStream{refJS, cluJS} {
				if _, err := js.Publish(ctx, "events."+s, []byte(body)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// converge waits until the cluster's labels match the single node's,
	// read through node.
	converge := func(node *killable, what string) {
		t.Helper()
		var want, got map[string]string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			want, got = labelsOf(t, ref.url, admin, subjects), labelsOf(t, node.url, admin, subjects)
			if maps.Equal(want, got) && want[subjects[0]] != "" {
				return
			}
		}
		for _, s := range subjects {
			if want[s] != got[s] {
				t.Errorf("%s: subject %s: one node %q, cluster %q", what, s, want[s], got[s])
			}
		}
		t.FailNow()
	}
	publish(0)
	converge(nodes[1], "three nodes")
	publish(1)
	converge(nodes[2], "three nodes, second events")
	sameMonitorReport(t, ref, nodes, admin, "three nodes")

	nodes[0].kill()
	publish(2)
	converge(nodes[1], "after a node was killed")
	sameMonitorReport(t, ref, nodes[1:], admin, "after a node was killed")

	// The derivations went through the work stream, bucket by bucket, and
	// every message was done, the killed node's buckets included.
	ws, err := cluJS.Stream(ctx, "PORTRAIT_DERIVE")
	if err != nil {
		t.Fatalf("no work stream: %v", err)
	}
	// A message the killed node held unacknowledged is redelivered to the
	// bucket's new owner after the work stream's AckWait (10 s).
	var buckets int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		buckets = 0
		var waiting []string
		for name := range ws.ConsumerNames(ctx).Name() {
			c, err := ws.Consumer(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if ci := c.CachedInfo(); ci.NumPending != 0 || ci.NumAckPending != 0 {
				waiting = append(waiting, fmt.Sprintf("%s: %d pending, %d unacknowledged", name, ci.NumPending, ci.NumAckPending))
			}
			buckets++
		}
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("work left undone 30 s after the kill:\n%s", strings.Join(waiting, "\n"))
		}
	}
	if buckets < 16 {
		t.Errorf("only %d bucket consumers ran", buckets)
	}
	// Every node joined the cluster.
	for i, n := range nodes {
		if !strings.Contains(n.stderr.String(), "cluster: joined") {
			t.Errorf("node %d did not join the cluster:\n%s", i, tail(n.stderr.String(), 2000))
		}
	}
}

// monitorView is a monitor report without what differs between two runs
// over the same data: its id, time and duration, the alerts' log indexes.
func monitorView(t *testing.T, rep map[string]any) string {
	t.Helper()
	for _, k := range []string{"id", "time", "seconds"} {
		delete(rep, k)
	}
	if as, ok := rep["alerts"].([]any); ok {
		for _, a := range as {
			delete(a.(map[string]any), "log_index")
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameMonitorReport waits until one of the cluster's nodes has combined a
// monitor run that began after now — every node left the partials of
// the buckets it holds, the holder of bucket 0 combined them — and that
// report is the one a run on the single node gives (both nodes take the
// events from their streams at their own pace, so it asks again until
// they agree or a minute has passed).
func sameMonitorReport(t *testing.T, ref *killable, nodes []*killable, admin, what string) {
	t.Helper()
	ctx := context.Background()
	since := time.Now().UTC()
	var want, got string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		var one map[string]any
		if _, err := try(ctx, ref.url, "POST", "/v1/monitor/runs", admin, "", &one); err != nil {
			t.Fatal(err)
		}
		want = monitorView(t, one)
		for _, n := range nodes {
			var rep map[string]any
			if _, err := try(ctx, n.url, "GET", "/v1/monitor/report", admin, "", &rep); err != nil {
				continue // this node combined no run
			}
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rep["time"]))
			if err != nil || at.Before(since) {
				continue
			}
			if got = monitorView(t, rep); got == want {
				if n, _ := one["subjects"].(float64); n == 0 {
					t.Fatalf("%s: the monitor runs saw no subject", what)
				}
				return
			}
		}
	}
	for i, n := range nodes {
		t.Logf("node %d:\n%s", i, tail(n.stderr.String(), 1500))
	}
	if got == "" {
		t.Fatalf("%s: no node combined a monitor run within 60 s", what)
	}
	t.Fatalf("%s: the cluster's monitor report differs from one node's:\none node: %s\ncluster:  %s", what, want, got)
}
