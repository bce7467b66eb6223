package stream

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

// natsServer runs a real NATS server with JetStream in the test process.
func natsServer(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func connect(t *testing.T, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// node is one serve process's ingest path over a shared store.
func node(t *testing.T, store portrait.Store, kr *keys.Keyring) (*ingest.Ingester, *consent.Ledger) {
	t.Helper()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	point := policy.New(cat)
	log, err := audit.New("portrait.test/log", kr.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := consent.New(consent.Deps{Store: store, Point: point, Log: log, Keys: kr}, consent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ingest.New(ingest.Deps{Store: store, Point: point, Ledger: ledger, Keys: kr, Log: log}, ingest.Options{}), ledger
}

func onEachStore(t *testing.T, f func(t *testing.T, store portrait.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		f(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
			t.Skip("PORTRAIT_TEST_POSTGRES is not set")
		}
		db, err := postgres.Open(context.Background(), storetest.PostgresDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		f(t, db)
	})
}

func newKeys(t *testing.T) *keys.Keyring {
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func addStream(t *testing.T, nc *nats.Conn, name string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	return js
}

// collect gathers published results until n have arrived.
func collect(t *testing.T, nc *nats.Conn, subject string) (func(n int) []Result, func()) {
	t.Helper()
	var mu sync.Mutex
	var got []Result
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var r Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Errorf("result %q: %v", m.Data, err)
		}
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	wait := func(n int) []Result {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) < n {
			t.Fatalf("%d results after 30s, want %d", len(got), n)
		}
		return append([]Result(nil), got...)
	}
	return wait, func() { sub.Unsubscribe() }
}

func event(subject, key string, i int) []byte {
	return fmt.Appendf(nil, `{"subject":%q,"type":"view","time":"2026-12-01T10:00:%02dZ","idempotency_key":%q,"fields":{"item":"sku-%d","category":"sports"}}`, subject, i%60, key, i)
}

// Two serve nodes share one durable consumer: every event published is
// ingested once, through the governed path, and answered on NATS; a bad
// event or message is answered with its reason and not redelivered.
func TestIntakeTwoNodes(t *testing.T) {
	onEachStore(t, func(t *testing.T, store portrait.Store) {
		ns := natsServer(t)
		nc := connect(t, ns)
		js := addStream(t, nc, "EVENTS")
		kr := newKeys(t)
		in1, ledger := node(t, store, kr)
		in2, _ := node(t, store, kr)
		for _, s := range []string{"s1", "s2", "s3"} {
			if _, err := ledger.Record(context.Background(), policy.Caller{Role: policy.Operator, ID: "t"}, consent.ByID(s),
				consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
				t.Fatal(err)
			}
		}
		wait, stop := collect(t, nc, ResultsSubject("EVENTS"))
		defer stop()

		const n = 60
		ctx := context.Background()
		for i := range n {
			key := fmt.Sprintf("k%d", i)
			if i%3 == 0 {
				key = "" // the stream sequence stands in
			}
			if _, err := js.Publish(ctx, fmt.Sprintf("events.s%d", i%3+1), event(fmt.Sprintf("s%d", i%3+1), key, i)); err != nil {
				t.Fatal(err)
			}
		}
		js.Publish(ctx, "events.bad", []byte(`{"subject":"s1","type":"nosuch","time":"2026-12-01T10:00:00Z","fields":{}}`))
		js.Publish(ctx, "events.bad", []byte(`not json at all`))

		var handled [2]atomic.Int64
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		for k, in := range []*ingest.Ingester{in1, in2} {
			it := &Intake{NC: connect(t, ns), Stream: "EVENTS", Ingester: in, Batch: 8, Logger: quiet,
				afterIngest: func() error { handled[k].Add(1); return nil }}
			wg.Go(func() {
				if err := it.Run(rctx); err != nil {
					t.Error(err)
				}
			})
		}
		results := wait(n + 2)
		cancel()
		wg.Wait()

		var accepted, rejected, problems int
		seqs := map[uint64]bool{}
		for _, r := range results {
			if seqs[r.Sequence] {
				t.Errorf("message %d answered twice", r.Sequence)
			}
			seqs[r.Sequence] = true
			if r.Problem != nil {
				problems++
				continue
			}
			for _, e := range r.Results {
				switch e.Status {
				case ingest.Accepted:
					accepted++
				case ingest.Rejected:
					rejected++
					if e.Problem == nil || e.Reason == "" {
						t.Errorf("rejection without a reason: %+v", e)
					}
				}
			}
		}
		// The undeclared type and the line that is not JSON are each
		// rejected with a reason, as POST /v1/events would.
		if accepted != n || rejected != 2 || problems != 0 {
			t.Errorf("accepted %d rejected %d unreadable %d; want %d, 2, 0", accepted, rejected, problems, n)
		}
		if handled[0].Load() == 0 || handled[1].Load() == 0 {
			t.Logf("batches per node: %d, %d (JetStream chose one node for all)", handled[0].Load(), handled[1].Load())
		}
	})
}

// A node that stores a batch and dies before acknowledging it: JetStream
// redelivers the messages to another node, which finds every event already
// stored (exactly once in effect), keyed by its producer or by its stream
// sequence.
func TestIntakeRedeliveryIsIdempotent(t *testing.T) {
	onEachStore(t, func(t *testing.T, store portrait.Store) {
		ns := natsServer(t)
		nc := connect(t, ns)
		js := addStream(t, nc, "EV")
		kr := newKeys(t)
		in, ledger := node(t, store, kr)
		ledger.Record(context.Background(), policy.Caller{Role: policy.Operator, ID: "t"}, consent.ByID("s1"),
			consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"})
		wait, stop := collect(t, nc, ResultsSubject("EV"))
		defer stop()
		ctx := context.Background()
		js.Publish(ctx, "events.a", event("s1", "key-1", 1))
		js.Publish(ctx, "events.b", event("s1", "", 2))

		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		crashed := make(chan struct{})
		dying := &Intake{NC: connect(t, ns), Stream: "EV", Ingester: in, Logger: quiet, AckWait: time.Second,
			afterIngest: func() error { close(crashed); select {} }} // stored, never acknowledged
		dctx, kill := context.WithCancel(ctx)
		go dying.Run(dctx)
		<-crashed
		kill()

		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		other := &Intake{NC: connect(t, ns), Stream: "EV", Ingester: in, Logger: quiet, AckWait: time.Second}
		go other.Run(rctx)
		results := wait(2)
		for _, r := range results {
			if len(r.Results) != 1 || r.Results[0].Status != ingest.Duplicate {
				t.Errorf("redelivered message %d: %+v, want one duplicate (stored once)", r.Sequence, r.Results)
			}
		}
	})
}

func TestIntakeNeedsTheStream(t *testing.T) {
	ns := natsServer(t)
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in, _ := node(t, db, newKeys(t))
	err = (&Intake{NC: connect(t, ns), Stream: "MISSING", Ingester: in}).Run(context.Background())
	if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("missing stream: %v", err)
	}
}
