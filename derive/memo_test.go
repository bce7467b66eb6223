package derive_test

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

// decoded returns the subject's stored label values, opened, whatever
// their purpose (through an Access grant, as the subject's export reads
// them).
func (e *env) decoded(tb testing.TB, subject string) map[string]derive.Stored {
	tb.Helper()
	c, lvs := e.accessLabels(tb, subject)
	out := map[string]derive.Stored{}
	for _, lv := range lvs {
		v, err := derive.Open(c, lv)
		if err != nil {
			tb.Fatal(err)
		}
		out[lv.Label] = v
	}
	return out
}

// accessLabels returns the subject's stored label values, still sealed,
// read through an Access grant, and the subject's opened key (nil when
// nothing is stored).
func (e *env) accessLabels(tb testing.TB, subject string) (*keys.Cipher, []portrait.LabelValue) {
	tb.Helper()
	ctx := context.Background()
	ps := e.keys.Pseudonym(subject)
	d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
	lvs, err := e.store.Labels(ctx, d.Grant)
	if err != nil {
		tb.Fatal(err)
	}
	if len(lvs) == 0 {
		return nil, nil
	}
	subs, err := e.store.Subjects(ctx, []portrait.Pseudonym{ps})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := e.keys.Open(subs[ps])
	if err != nil {
		tb.Fatal(err)
	}
	return c, lvs
}

// Invariant 5, CN-4: the values an engine derives from what it keeps in
// memory between calls are the values an engine that reads everything
// from the store derives, over random sequences of views, purchases,
// searches, consent changes on both purposes and the clock moving (so
// windows and expiry move). Two stores get the same sequence; on one the
// same engine derives every time, on the other a new engine (nothing in
// memory) does.
//
// On PostgreSQL every read after a mark brings back the events of
// transactions at or after the last read's horizon, so the path that
// replaces an event held by one read again runs at nearly every step.
func TestMemoMatchesStore(t *testing.T) {
	stores := []struct {
		name string
		open func(testing.TB) portrait.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}}
	for _, st := range stores {
		for seed := range uint64(4) {
			t.Run(fmt.Sprint(st.name, "/", seed), func(t *testing.T) {
				if st.name == "postgres" && os.Getenv("PORTRAIT_TEST_POSTGRES") == "" {
					t.Skip("PORTRAIT_TEST_POSTGRES is not set")
				}
				if st.name == "postgres" && seed > 0 {
					t.Skip("one seed on PostgreSQL: 10-15 s each")
				}
				memoMatchesStore(t, seed, newEnvOn(t, st.open), newEnvOn(t, st.open))
			})
		}
	}
}

func memoMatchesStore(t *testing.T, seed uint64, kept, fresh *env) {
	{
		{
			fresh.in = ingest.New(ingest.Deps{Store: fresh.store, Point: fresh.point, Ledger: fresh.ledger, Keys: fresh.keys, Log: fresh.log}, ingest.Options{Now: fresh.clock,
				OnStored: func(ctx context.Context, ps []portrait.Pseudonym) {
					eng, err := derive.New(derive.Deps{Store: fresh.store, Point: fresh.point, Ledger: fresh.ledger, Keys: fresh.keys, Log: fresh.log}, derive.Options{Now: fresh.clock})
					if err != nil {
						t.Fatal(err)
					}
					if fresh.last, err = eng.Subjects(ctx, ps); err != nil {
						t.Errorf("incremental derivation: %v", err)
					}
				}})
			rng := mrand.New(mrand.NewPCG(seed, 14))
			subjects := []string{"ann", "ben", "cy"}
			cats := []string{"sports", "books", "garden"}
			both := func(f func(e *env)) { f(kept); f(fresh) }
			for _, s := range subjects {
				both(func(e *env) { e.consent(t, s, "personalization", policy.Granted) })
			}
			hits := 0
			for step := range 120 {
				s := subjects[rng.IntN(len(subjects))]
				var ev portrait.Event
				switch r := rng.IntN(20); {
				case r < 10:
					ev = view(s, cats[rng.IntN(len(cats))], time.Duration(rng.IntN(60*24))*time.Hour, kept.now)
				case r < 15:
					ev = purchase(s, float64(1+rng.IntN(4000)), kept.now.Add(-time.Duration(rng.IntN(90*24))*time.Hour))
				case r < 16:
					ev = portrait.Event{SubjectID: s, Type: "search", Time: kept.now, Fields: map[string]any{"search_query": "tent"}}
				case r < 18:
					st := []policy.Status{policy.Granted, policy.Withdrawn}[rng.IntN(2)]
					purpose := []string{"personalization", "marketing"}[rng.IntN(2)]
					both(func(e *env) { e.consent(t, s, purpose, st) })
					continue
				default:
					d := time.Duration(rng.IntN(10*24)) * time.Hour
					both(func(e *env) { e.now = e.now.Add(d) })
					continue
				}
				both(func(e *env) { e.ingest(t, ev) })
				if kept.last.Written != fresh.last.Written || kept.last.Removed != fresh.last.Removed || kept.last.Unchanged != fresh.last.Unchanged {
					t.Fatalf("step %d: kept %+v, fresh %+v", step, kept.last, fresh.last)
				}
				for _, s := range subjects {
					a, b := kept.decoded(t, s), fresh.decoded(t, s)
					if !reflect.DeepEqual(a, b) {
						t.Fatalf("step %d, %s: in memory %+v\nfrom the store %+v", step, s, a, b)
					}
					hits += len(a)
				}
			}
			if hits == 0 {
				t.Error("no label was ever derived: the comparison says nothing")
			}
		}
	}
}

// Invariant 5, CN-4: two nodes (two engines, ledgers and connection
// pools) on one PostgreSQL store. Node A derives a subject's labels and
// keeps what it read in memory; the subject withdraws through node B;
// node A's next derivation neither attaches nor keeps the label, and
// after consent is given again through B, A derives what a node with
// nothing in memory derives.
func TestTwoNodesWithdrawal(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	node := func() *env {
		e := &env{now: now}
		var err error
		if e.store, err = postgres.Open(context.Background(), dsn); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.store.Close() })
		if e.keys, err = keys.New(master); err != nil {
			t.Fatal(err)
		}
		e.point = policy.New(demoCatalog(t))
		if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
			t.Fatal(err)
		}
		if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{Now: e.clock}); err != nil {
			t.Fatal(err)
		}
		if e.eng, err = derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock}); err != nil {
			t.Fatal(err)
		}
		e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock,
			OnStored: func(ctx context.Context, ps []portrait.Pseudonym) {
				s, err := e.eng.Subjects(ctx, ps)
				if err != nil {
					t.Errorf("incremental derivation: %v", err)
				}
				e.last = s
			}})
		return e
	}
	a, b := node(), node()
	a.consent(t, "dora", "personalization", policy.Granted)
	a.ingest(t, fiveSportsViews("dora", now)...)
	a.ingest(t, view("dora", "sports", 30*time.Minute, now)) // the second derivation reads from memory
	if v, ok := a.decoded(t, "dora")["sports_fan"]; !ok || !v.Bool || v.EventCount != 6 {
		t.Fatalf("node A before the withdrawal: %+v", a.decoded(t, "dora"))
	}
	b.consent(t, "dora", "personalization", policy.Withdrawn)
	a.ingest(t, view("dora", "sports", 20*time.Minute, now))
	if got := a.decoded(t, "dora"); len(got) != 0 || a.last.Written != 0 {
		t.Fatalf("node A after a withdrawal on node B: %v stored (%+v), want none", got, a.last)
	}
	b.consent(t, "dora", "personalization", policy.Granted)
	a.ingest(t, view("dora", "sports", 10*time.Minute, now))
	got := a.decoded(t, "dora")
	if v := got["sports_fan"]; !v.Bool || v.EventCount != 8 {
		t.Fatalf("node A after consent again on node B: %+v", got)
	}
	c := node() // nothing in memory
	if err := c.store.Update(context.Background(), func(ctx context.Context, tx portrait.Tx) error {
		return tx.DeleteLabels(context.Background(), c.keys.Pseudonym("dora"), []string{"sports_fan", "big_spender"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.eng.Subjects(context.Background(), []portrait.Pseudonym{c.keys.Pseudonym("dora")}); err != nil {
		t.Fatal(err)
	}
	if again := c.decoded(t, "dora"); !reflect.DeepEqual(again, got) {
		t.Errorf("node with nothing in memory derives %+v, node A %+v", again, got)
	}
}

// countingStore counts write transactions and the label deletions in them.
type countingStore struct {
	portrait.Store
	updates, deletes int
}

func (c *countingStore) Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error {
	c.updates++
	return c.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return fn(ctx, &countingTx{tx, c}) })
}

type countingTx struct {
	portrait.Tx
	c *countingStore
}

func (t *countingTx) DeleteLabels(ctx context.Context, ps portrait.Pseudonym, labels []string) error {
	t.c.deletes++
	return t.Tx.DeleteLabels(ctx, ps, labels)
}

// A derivation from memory deletes only labels the memo says are stored:
// the labels of a purpose without consent were deleted by the first
// derivation and are not deleted again on every one after it; and a
// derivation with nothing new opens no write transaction at all.
func TestMemoSkipsKnownDeletions(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		cs := &countingStore{Store: e.store}
		eng, err := derive.New(derive.Deps{Store: cs, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock})
		if err != nil {
			t.Fatal(err)
		}
		e.eng = eng
		e.consent(t, "uma", "personalization", policy.Granted) // marketing's labels have no basis
		ps := []portrait.Pseudonym{e.keys.Pseudonym("uma")}
		ctx := context.Background()
		steps := []struct {
			name             string
			events           []portrait.Event
			updates, deletes int
		}{
			{"first, read in full", fiveSportsViews("uma", e.now), 1, 1},
			{"from memory", []portrait.Event{view("uma", "sports", time.Minute, e.now)}, 1, 0},
			{"nothing new", nil, 0, 0},
		}
		for _, s := range steps {
			if len(s.events) > 0 {
				plain := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
				var items []ingest.Item
				for _, ev := range s.events {
					items = append(items, ingest.Item{Event: ev})
				}
				if _, _, err := plain.Ingest(ctx, operator, items); err != nil {
					t.Fatal(err)
				}
			}
			cs.updates, cs.deletes = 0, 0
			sum, err := eng.Subjects(ctx, ps)
			if err != nil {
				t.Fatal(err)
			}
			if cs.updates != s.updates || cs.deletes != s.deletes {
				t.Errorf("%s: %d transactions, %d deletions; want %d, %d (%+v)", s.name, cs.updates, cs.deletes, s.updates, s.deletes, sum)
			}
			if sum.Removed == 0 {
				t.Errorf("%s: no label counted as removed; marketing's labels have no basis", s.name)
			}
		}
		if !e.labels(t, "uma", "personalization")["sports_fan"].Bool {
			t.Error("sports_fan not derived")
		}
		// A subject with no consent at all: the first derivation deletes
		// every label, the next ones know none is stored.
		vic := []portrait.Pseudonym{e.keys.Pseudonym("vic")}
		for i, want := range []int{1, 0, 0} {
			plain := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
			if _, _, err := plain.Ingest(ctx, operator, []ingest.Item{{Event: view("vic", "sports", time.Duration(i+1)*time.Minute, e.now)}}); err != nil {
				t.Fatal(err)
			}
			cs.updates = 0
			if _, err := eng.Subjects(ctx, vic); err != nil {
				t.Fatal(err)
			}
			if cs.updates != want {
				t.Errorf("vic, derivation %d: %d transactions, want %d", i+1, cs.updates, want)
			}
		}
	})
}
