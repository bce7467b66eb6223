package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
)

// CM-3: the retention sweep finds every expired event, earliest first,
// though the clustered table has no index on expires (migration 0070):
// event_expiry holds each subject's earliest clustered expiry exactly,
// whatever mix of appends, moves, rewrites (to an earlier or a later
// expiry, or none), deletes, erasures and rolled-back members came
// before. After every step, event_expiry must equal the minimum computed
// from the clustered table itself, and ExpiredEvents must answer what a
// scan of both tables answers, at several horizons and limits.
func TestEventExpiryExact(t *testing.T) {
	defer func(h, r int, d time.Duration) { moveHigh, moveRuns, moveIdle = h, r, d }(moveHigh, moveRuns, moveIdle)
	moveHigh, moveRuns, moveIdle = 1<<30, 1<<30, time.Hour // moves only where the test makes them
	e := openTest(t)
	ctx := context.Background()
	subjects := []portrait.Pseudonym{"0123456789abcdef0123456789abcdef", "b", "fedcba9876543210fedcba9876543210", "d"}
	rng := rand.New(rand.NewPCG(7, 14))
	at := func(m int) time.Time { return time.Unix(int64(m)*60, 0) }
	expiry := func() time.Time {
		if rng.IntN(5) == 0 {
			return time.Time{} // never expires
		}
		return at(rng.IntN(1000))
	}
	ids := func(q string, args ...any) []int64 {
		t.Helper()
		rows, err := e.read.QueryContext(ctx, q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}
	// pick returns a random stored event (id, subject), in a run or
	// clustered, or ok false if none is stored.
	pick := func() (int64, portrait.Pseudonym, bool) {
		all, err := e.EventsFor(ctx, subjects, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var evs []portrait.StoredEvent
		for _, p := range subjects {
			evs = append(evs, all[p]...)
		}
		if len(evs) == 0 {
			return 0, "", false
		}
		ev := evs[rng.IntN(len(evs))]
		return ev.ID, ev.Pseudonym, true
	}
	check := func(step string) {
		t.Helper()
		type bound struct {
			p   string
			exp int64
		}
		read := func(q string) []bound {
			rows, err := e.read.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []bound
			for rows.Next() {
				var b bound
				if err := rows.Scan(&b.p, &b.exp); err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
			return out
		}
		want := read(`SELECT hex(pseudonym), min(expires) FROM events WHERE expires IS NOT NULL GROUP BY pseudonym ORDER BY 1`)
		if got := read(`SELECT hex(pseudonym), expires FROM event_expiry ORDER BY 1`); !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: event_expiry = %v, want the clustered minimum %v", step, got, want)
		}
		for _, now := range []int{0, 200, 500, 1000} {
			for _, limit := range []int{1, 3, 1000} {
				want := ids(`SELECT id FROM (SELECT id, expires FROM events UNION ALL SELECT id, expires FROM events_new)
					WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires, id LIMIT ?`, at(now).UnixNano(), limit)
				exp, err := e.ExpiredEvents(ctx, at(now), limit)
				if err != nil {
					t.Fatal(err)
				}
				var got []int64
				for _, ev := range exp {
					got = append(got, ev.ID)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("after %s: expired at minute %d, limit %d = %v, want %v", step, now, limit, got, want)
				}
			}
		}
	}
	errRollback := errors.New("roll back")
	for i := range 300 {
		var step string
		var err error
		switch op := rng.IntN(10); {
		case op < 3:
			step = "append"
			evs := make([]portrait.StoredEvent, 1+rng.IntN(12))
			for j := range evs {
				evs[j] = portrait.StoredEvent{Pseudonym: subjects[rng.IntN(len(subjects))], Type: "view", Time: at(i),
					Sealed: []byte(fmt.Sprint(i, j)), Expires: expiry()}
			}
			err = e.Update(ctx, func(tx guard.Tx) error { _, err := tx.InsertEvents(ctx, evs); return err })
		case op < 5:
			step = "move"
			_, _, _, err = e.moveOnce(ctx, 1+rng.IntN(30))
		case op < 9:
			id, p, ok := pick()
			if !ok {
				continue
			}
			sealed, exp := []byte("rewritten"), expiry()
			step = fmt.Sprintf("rewrite of %d to %v", id, exp)
			if rng.IntN(3) == 0 {
				sealed, exp, step = nil, time.Time{}, fmt.Sprintf("delete of %d", id)
			}
			fail := rng.IntN(6) == 0
			err = e.Update(ctx, func(tx guard.Tx) error {
				if err := tx.RewriteEvent(ctx, p, id, sealed, exp); err != nil {
					return err
				}
				if fail {
					return errRollback
				}
				return nil
			})
			if fail {
				if !errors.Is(err, errRollback) {
					t.Fatalf("a failing member: %v", err)
				}
				step, err = "rolled-back "+step, nil
			}
		default:
			p := subjects[rng.IntN(len(subjects))]
			step = "erasure of " + string(p)
			err = e.Update(ctx, func(tx guard.Tx) error { return tx.(*txn).Erase(ctx, p) })
		}
		if err != nil {
			t.Fatalf("step %d, %s: %v", i, step, err)
		}
		check(fmt.Sprintf("step %d, %s", i, step))
	}
	if n := count(t, e, `SELECT count(*) FROM events WHERE expires IS NOT NULL`); n == 0 {
		t.Fatal("no clustered event with an expiry by the end: the test exercised nothing")
	}
}
