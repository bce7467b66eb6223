package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/guard"
	"github.com/portrait-dev/portrait/policy"
)

// Run runs the conformance suite. open must return a fresh, empty store
// for each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) portrait.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, portrait.Store)
	}{
		{"GrantRequired", testGrantRequired},
		{"EveryGrantRefused", testEveryGrantRefused},
		{"InsertEventsIdempotent", testInsertEventsIdempotent},
		{"InsertEventsLargeBatch", testInsertEventsLargeBatch},
		{"InsertEventsBatchOrder", testInsertEventsBatchOrder},
		{"Events", testEvents},
		{"EventsAcrossMove", testEventsAcrossMove},
		{"EraseAcrossMove", testEraseAcrossMove},
		{"IdempotentAcrossMove", testIdempotentAcrossMove},
		{"EventsAcrossRuns", testEventsAcrossRuns},
		{"ScanEvents", testScanEvents},
		{"RetentionAcrossMove", testRetentionAcrossMove},
		{"RetentionClustered", testRetentionClustered},
		{"ExpiredEvents", testExpiredEvents},
		{"ExpiredProfile", testExpiredProfile},
		{"RewriteEvent", testRewriteEvent},
		{"Profile", testProfile},
		{"Labels", testLabels},
		{"LabelsLargeBatch", testLabelsLargeBatch},
		{"LabelsBulk", testLabelsBulk},
		{"LabelsDeletedOfMany", testLabelsDeletedOfMany},
		{"Subjects", testSubjects},
		{"ConsentsAndStates", testConsentsAndStates},
		{"StatesBatch", testStatesBatch},
		{"StatesRange", testStatesRange},
		{"TxStates", testTxStates},
		{"Generation", testGeneration},
		{"Suspensions", testSuspensions},
		{"Erase", testErase},
		{"Log", testLog},
		{"LogKinds", testLogKinds},
		{"LogSerialised", testLogSerialised},
		{"Checkpoint", testCheckpoint},
		{"APIKey", testAPIKey},
		{"Cases", testCases},
		{"Pseudonyms", testPseudonyms},
		{"SubjectsAfter", testSubjectsAfter},
		{"Decisions", testDecisions},
		{"Reviews", testReviews},
		{"Items", testItems},
		{"ManyRows", testManyRows},
		{"Protected", testProtected},
		{"PageReads", testPageReads},
		{"EventsAfter", testEventsAfter},
		{"UpdateRollsBack", testUpdateRollsBack},
		{"NestedUpdateRefused", testNestedUpdateRefused},
		{"FailedLogAppendRollsBack", testFailedLogAppendRollsBack},
		{"LogAppendAfterRollback", testLogAppendAfterRollback},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"EndSessions", testEndSessions},
		{"TextRefused", testTextRefused},
		{"LeaseEpoch", testLeaseEpoch},
		{"Partials", testPartials},
		{"Pending", testPending},
		{"PendingErased", testPendingErased},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// base is a time with microsecond precision, which both engines keep.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

func update(t *testing.T, s portrait.Store, fn func(context.Context, portrait.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func subject(p string) portrait.SubjectKey {
	return portrait.SubjectKey{Pseudonym: portrait.Pseudonym(p), WrappedKey: []byte("key-" + p), SealedID: []byte("id-" + p), Created: base}
}

func event(t testing.TB, p, idem string, minute int) portrait.StoredEvent {
	e := portrait.StoredEvent{
		Grant:     Grant(t, portrait.Pseudonym(p), policy.Collect),
		Pseudonym: portrait.Pseudonym(p),
		Type:      "view",
		Time:      at(minute),
		Sealed:    []byte(fmt.Sprintf("sealed %s %d", p, minute)),
		Expires:   at(minute).Add(30 * 24 * time.Hour),
	}
	if idem != "" {
		e.Idem = []byte(idem)
	}
	return e
}

func insert(t *testing.T, s portrait.Store, events ...portrait.StoredEvent) []bool {
	t.Helper()
	var got []bool
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		got, err = tx.InsertEvents(context.Background(), events)
		return err
	})
	return got
}

func events(t *testing.T, s portrait.Store, p string) []portrait.StoredEvent {
	t.Helper()
	evs, err := s.Events(context.Background(), Grant(t, portrait.Pseudonym(p), policy.Access), time.Time{})
	if err != nil {
		t.Fatalf("events of %s: %v", p, err)
	}
	return evs
}

func wantNoGrant(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, policy.ErrNoGrant) {
		t.Errorf("%s: got error %v, want one wrapping policy.ErrNoGrant", what, err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := portrait.ErrorCode(err); got != code {
		t.Errorf("%s: got error %v (code %q), want code %q", what, err, got, code)
	}
}

// Invariant 2: every method that reads or writes personal values refuses
// a zero grant, a grant for another subject and a grant for another
// action, and writes nothing when it refuses.
func testGrantRequired(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a"), subject("b")})
	})
	insert(t, s, event(t, "a", "seed", 0))
	var zero policy.Grant

	writes := []struct {
		name string
		fn   func(ctx context.Context, tx portrait.Tx) error
	}{
		{"InsertEvents zero grant", func(ctx context.Context, tx portrait.Tx) error {
			e := event(t, "a", "", 1)
			e.Grant = zero
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{e})
			return err
		}},
		{"InsertEvents one bad grant in a batch", func(ctx context.Context, tx portrait.Tx) error {
			bad := event(t, "a", "", 2)
			bad.Grant = Grant(t, "b", policy.Collect)
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, "a", "", 3), bad})
			return err
		}},
		{"InsertEvents access grant", func(ctx context.Context, tx portrait.Tx) error {
			e := event(t, "a", "", 4)
			e.Grant = Grant(t, "a", policy.Access)
			_, err := tx.InsertEvents(ctx, []portrait.StoredEvent{e})
			return err
		}},
		{"PutProfile zero grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProfile(ctx, zero, []portrait.ProfileValue{{Field: "age", Sealed: []byte("x"), Source: "event", Updated: base}})
		}},
		{"PutProfile read grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProfile(ctx, Grant(t, "a", policy.Read), []portrait.ProfileValue{{Field: "age", Sealed: []byte("x"), Source: "event", Updated: base}})
		}},
		{"PutProfile field not covered", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProfile(ctx, Grant(t, "a", policy.Collect, "item"), []portrait.ProfileValue{{Field: "age", Sealed: []byte("x"), Source: "event", Updated: base}})
		}},
		{"RewriteEvent zero grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.RewriteEvent(ctx, zero, 1, nil, time.Time{})
		}},
		{"RewriteEvent access grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.RewriteEvent(ctx, Grant(t, "a", policy.Access), 1, nil, time.Time{})
		}},
		{"PutLabels zero grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutLabels(ctx, []portrait.LabelValue{{Pseudonym: "a", Label: "fan", Version: 1, Sealed: []byte("x"), Computed: base}})
		}},
		{"PutLabels grant of another subject", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: Grant(t, "b", policy.Derive), Pseudonym: "a", Label: "fan", Version: 1, Sealed: []byte("x"), Computed: base}})
		}},
		{"Erase zero grant", func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, zero) }},
		{"PutDetermination zero grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutDetermination(ctx, portrait.StoredDetermination{ID: "d", Pseudonym: "a", UseCase: "u", Status: "automated", Created: base})
		}},
		{"PutDetermination derive grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutDetermination(ctx, portrait.StoredDetermination{Grant: Grant(t, "a", policy.Derive), ID: "d", Pseudonym: "a", UseCase: "u", Status: "automated", Created: base})
		}},
		{"PutProtected zero grant", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProtected(ctx, zero, []portrait.ProtectedValue{{Pseudonym: "a", Attribute: "sex", Sealed: []byte("x")}})
		}},
		{"PutProtected value of another subject", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProtected(ctx, Grant(t, "a", policy.Collect), []portrait.ProtectedValue{{Pseudonym: "b", Attribute: "sex", Sealed: []byte("x")}})
		}},
		{"Erase access grant", func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a", policy.Access)) }},
	}
	for _, w := range writes {
		var inner error
		err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			inner = w.fn(ctx, tx)
			return nil // commit whatever the method wrote despite refusing
		})
		if err != nil {
			t.Fatalf("%s: update: %v", w.name, err)
		}
		wantNoGrant(t, w.name, inner)
		wantCode(t, w.name, inner, portrait.EFORBIDDEN)
	}
	if evs := events(t, s, "a"); len(evs) != 1 {
		t.Errorf("after refused writes subject a has %d events, want the 1 seeded", len(evs))
	}
	if p, err := s.Profile(ctx, Grant(t, "a", policy.Access)); err != nil || len(p) != 0 {
		t.Errorf("after refused writes profile = %v, %v; want empty", p, err)
	}
	if l, err := s.Labels(ctx, Grant(t, "a", policy.Access)); err != nil || len(l) != 0 {
		t.Errorf("after refused writes labels = %v, %v; want empty", l, err)
	}
	if subs, err := s.Subjects(ctx, []portrait.Pseudonym{"a"}); err != nil || len(subs) != 1 {
		t.Errorf("after refused erasure subjects = %v, %v; want a still stored", subs, err)
	}

	if _, err := s.Events(ctx, zero, time.Time{}); true {
		wantNoGrant(t, "Events zero grant", err)
	}
	if _, err := s.Events(ctx, Grant(t, "a", policy.Collect), time.Time{}); true {
		wantNoGrant(t, "Events collect grant", err)
	}
	if _, err := s.Profile(ctx, zero); true {
		wantNoGrant(t, "Profile zero grant", err)
	}
	if _, err := s.Labels(ctx, zero); true {
		wantNoGrant(t, "Labels zero grant", err)
	}
	if _, err := s.Determinations(ctx, zero); true {
		wantNoGrant(t, "Decisions zero grant", err)
	}
	if _, err := s.Protected(ctx, zero); true {
		wantNoGrant(t, "Protected zero grant", err)
	}
	if _, err := s.DeterminationByID(ctx, "d"); portrait.ErrorCode(err) != portrait.ENOTFOUND {
		t.Errorf("a refused PutDetermination stored a decision: %v", err)
	}
	if p, err := s.Protected(ctx, Grant(t, "b", policy.Read)); err != nil || len(p) != 0 {
		t.Errorf("refused PutProtected stored %v, %v", p, err)
	}
	for _, a := range []policy.Action{policy.Read, policy.Derive, policy.Use, policy.Access, policy.Sweep, policy.Correct} {
		if _, err := s.Events(ctx, Grant(t, "a", a), time.Time{}); err != nil {
			t.Errorf("Events with a %s grant: %v", a, err)
		}
	}
}

func testInsertEventsIdempotent(t *testing.T, s portrait.Store) {
	got := insert(t, s,
		event(t, "a", "k1", 0),
		event(t, "a", "k1", 1), // duplicate within the batch
		event(t, "a", "", 2),
		event(t, "a", "", 3),   // no key: never a duplicate
		event(t, "b", "k1", 4), // same key, other subject
	)
	if want := []bool{true, false, true, true, true}; !reflect.DeepEqual(got, want) {
		t.Errorf("first batch inserted %v, want %v", got, want)
	}
	got = insert(t, s, event(t, "a", "k1", 5), event(t, "a", "k2", 6), event(t, "b", "k1", 7))
	if want := []bool{false, true, false}; !reflect.DeepEqual(got, want) {
		t.Errorf("second batch inserted %v, want %v", got, want)
	}
	if n := len(events(t, s, "a")); n != 4 {
		t.Errorf("subject a has %d events, want 4", n)
	}
	if n := len(events(t, s, "b")); n != 1 {
		t.Errorf("subject b has %d events, want 1", n)
	}
	if got := insert(t, s); len(got) != 0 {
		t.Errorf("empty batch returned %v", got)
	}
}

// A batch large enough for an engine's bulk path (COPY on PostgreSQL)
// reports duplicates exactly as single inserts do.
func testInsertEventsLargeBatch(t *testing.T, s portrait.Store) {
	var first []portrait.StoredEvent
	for i := range 100 {
		first = append(first, event(t, fmt.Sprintf("s%d", i%10), fmt.Sprintf("k%d", i), i))
	}
	insert(t, s, first...)

	var batch []portrait.StoredEvent
	var want []bool
	for i := range 600 {
		p := fmt.Sprintf("s%d", i%10)
		switch i % 4 {
		case 0: // the first batch stored this subject and key when i < 100
			batch = append(batch, event(t, p, fmt.Sprintf("k%d", i), i))
			want = append(want, i >= 100)
		case 1: // keyless: always new
			batch = append(batch, event(t, p, "", i))
			want = append(want, true)
		case 2: // a new key
			batch = append(batch, event(t, p, fmt.Sprintf("n%d", i), i))
			want = append(want, true)
		case 3: // the previous event's subject and key again, within the batch
			batch = append(batch, event(t, fmt.Sprintf("s%d", (i-1)%10), fmt.Sprintf("n%d", i-1), i))
			want = append(want, false)
		}
	}
	got := insert(t, s, batch...)
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("event %d (subject %s, key %q): inserted %v, want %v", i, batch[i].Pseudonym, batch[i].Idem, got[i], want[i])
			}
		}
	}
	total := 0
	for i := range 10 {
		total += len(events(t, s, fmt.Sprintf("s%d", i)))
	}
	if wantTotal := 100 + 600 - 25 - 150; total != wantTotal {
		t.Errorf("stored %d events in all, want %d", total, wantTotal)
	}
}

// A large batch is stored whole and in its order: events of one subject
// at the same time read back in the order they were sent, with or without
// idempotency keys (PostgreSQL copies a keyless batch and inserts a keyed
// one from arrays; both must keep the order ids give).
func testInsertEventsBatchOrder(t *testing.T, s portrait.Store) {
	for _, keyed := range []bool{false, true} {
		var batch []portrait.StoredEvent
		for i := range 200 {
			idem := ""
			if keyed && i%2 == 0 {
				idem = fmt.Sprintf("order-%d", i)
			}
			e := event(t, fmt.Sprintf("order-%v-%d", keyed, i%3), idem, 0)
			e.Sealed = []byte(fmt.Sprintf("%05d", i))
			if i%5 == 0 {
				e.Expires = time.Time{}
			}
			batch = append(batch, e)
		}
		for i, ok := range insert(t, s, batch...) {
			if !ok {
				t.Errorf("keyed %v: event %d not inserted", keyed, i)
			}
		}
		for p := range 3 {
			got := events(t, s, fmt.Sprintf("order-%v-%d", keyed, p))
			var want []portrait.StoredEvent
			for i := p; i < len(batch); i += 3 {
				want = append(want, batch[i])
			}
			if len(got) != len(want) {
				t.Fatalf("keyed %v, subject %d: got %d events, want %d", keyed, p, len(got), len(want))
			}
			for i := range want {
				if !sameEvent(got[i], want[i]) {
					t.Errorf("keyed %v, subject %d, event %d: got %s, want %s", keyed, p, i, got[i].Sealed, want[i].Sealed)
				}
			}
		}
	}
}

func sameEvent(a, b portrait.StoredEvent) bool {
	return a.Pseudonym == b.Pseudonym && a.Type == b.Type && a.Time.Equal(b.Time) && bytes.Equal(a.Idem, b.Idem) &&
		bytes.Equal(a.Sealed, b.Sealed) && a.Expires.Equal(b.Expires)
}

func testEvents(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	in := []portrait.StoredEvent{event(t, "a", "k", 10), event(t, "a", "", 0), event(t, "b", "", 5), event(t, "a", "", 20)}
	in[3].Expires = time.Time{} // kept until erased
	insert(t, s, in...)
	got := events(t, s, "a")
	want := []portrait.StoredEvent{in[1], in[0], in[3]}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameEvent(got[i], want[i]) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
		if got[i].ID == 0 {
			t.Errorf("event %d has no id", i)
		}
		if got[i].Time.Location() != time.UTC {
			t.Errorf("event %d time %v is not UTC", i, got[i].Time)
		}
	}
	since, err := s.Events(ctx, Grant(t, "a", policy.Read), at(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(since) != 2 || !sameEvent(since[0], in[0]) || !sameEvent(since[1], in[3]) {
		t.Errorf("events since minute 10 = %+v, want minutes 10 and 20", since)
	}
}

// CM-3: the retention sweeper finds events whose retention has passed.
func testExpiredEvents(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	var in []portrait.StoredEvent
	for i := range 5 {
		e := event(t, "a", "", i)
		e.Expires = at(100 - 10*i) // 100, 90, 80, 70, 60
		in = append(in, e)
	}
	never := event(t, "a", "", 9)
	never.Expires = time.Time{}
	insert(t, s, append(in, never)...)

	got, err := s.ExpiredEvents(ctx, at(80), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].Expires.Equal(at(60)) || !got[2].Expires.Equal(at(80)) {
		t.Errorf("expired at minute 80 = %+v, want expiries 60, 70, 80", got)
	}
	got, err = s.ExpiredEvents(ctx, at(1000), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Expires.Equal(at(60)) {
		t.Errorf("limit 2 returned %+v, want the 2 earliest expiries", got)
	}
	if _, err := s.ExpiredEvents(ctx, at(0), 0); true {
		wantCode(t, "limit 0", err, portrait.EINVALID)
	}
}

// CM-3: profile values past their retention are found without their
// values, and deleted under a sweep grant for their own subject only.
func testExpiredProfile(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	put := func(subject string, values ...portrait.ProfileValue) {
		update(t, s, func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutProfile(ctx, Grant(t, portrait.Pseudonym(subject), policy.Collect), values)
		})
	}
	put("a", portrait.ProfileValue{Field: "city", Sealed: []byte("x"), Source: "event", Updated: at(0), Expires: at(100)},
		portrait.ProfileValue{Field: "age", Sealed: []byte("30"), Source: "event", Updated: at(0)},
		portrait.ProfileValue{Field: "item", Sealed: []byte("t"), Source: "event", Updated: at(0), Expires: at(50)})
	put("b", portrait.ProfileValue{Field: "city", Sealed: []byte("y"), Source: "event", Updated: at(0), Expires: at(60)})
	got, err := s.ExpiredProfile(ctx, at(80), 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []portrait.FieldRef{{Pseudonym: "a", Field: "item"}, {Pseudonym: "b", Field: "city"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("expired at minute 80 = %+v, want %+v", got, want)
	}
	if _, err := s.ExpiredProfile(ctx, at(80), 0); true {
		wantCode(t, "limit 0", err, portrait.EINVALID)
	}
	for name, g := range map[string]policy.Grant{"zero": {}, "access": Grant(t, "a", policy.Access), "other subject's": Grant(t, "b", policy.Sweep)} {
		err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.DeleteProfile(ctx, g, []string{"item"}) })
		if !errors.Is(err, policy.ErrNoGrant) && name != "other subject's" {
			t.Errorf("delete with a %s grant: %v, want ErrNoGrant", name, err)
		}
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.DeleteProfile(ctx, Grant(t, "a", policy.Sweep), []string{"item"})
	})
	left, err := s.Profile(ctx, Grant(t, "a", policy.Access))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].Field != "age" || left[1].Field != "city" {
		t.Errorf("profile of a after the sweep = %+v, want age and city", left)
	}
	if b, _ := s.Profile(ctx, Grant(t, "b", policy.Access)); len(b) != 1 {
		t.Errorf("profile of b = %+v, want its city untouched", b)
	}
}

// CM-3: a sweep rewrites or deletes an event, and only its own subject's.
func testRewriteEvent(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	insert(t, s, event(t, "a", "", 0), event(t, "a", "", 1), event(t, "b", "", 2))
	evs := events(t, s, "a")
	other := events(t, s, "b")[0]
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		g := Grant(t, "a", policy.Sweep)
		if err := tx.RewriteEvent(ctx, g, evs[0].ID, []byte("trimmed"), at(500)); err != nil {
			return err
		}
		return tx.RewriteEvent(ctx, g, evs[1].ID, nil, time.Time{})
	})
	got := events(t, s, "a")
	if len(got) != 1 || string(got[0].Sealed) != "trimmed" || !got[0].Expires.Equal(at(500)) {
		t.Errorf("after sweep events of a = %+v, want one trimmed event expiring at minute 500", got)
	}
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.RewriteEvent(ctx, Grant(t, "a", policy.Sweep), other.ID, nil, time.Time{})
	})
	wantCode(t, "rewrite another subject's event", err, portrait.ENOTFOUND)
	if n := len(events(t, s, "b")); n != 1 {
		t.Errorf("subject b has %d events after a sweep of a, want 1", n)
	}
}

// CM-2: profile values are upserted; reads return only covered fields.
func testProfile(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutProfile(ctx, Grant(t, "a", policy.Collect), []portrait.ProfileValue{
			{Field: "city", Sealed: []byte("shanghai"), Source: "event", Updated: at(0), Expires: at(100)},
			{Field: "age", Sealed: []byte("30"), Source: "event", Updated: at(0)},
		})
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutProfile(ctx, Grant(t, "a", policy.Correct, "city"), []portrait.ProfileValue{
			{Field: "city", Sealed: []byte("beijing"), Source: "correction", Updated: at(5), Expires: at(200)},
		})
	})
	got, err := s.Profile(ctx, Grant(t, "a", policy.Access))
	if err != nil {
		t.Fatal(err)
	}
	want := []portrait.ProfileValue{
		{Field: "age", Sealed: []byte("30"), Source: "event", Updated: at(0)},
		{Field: "city", Sealed: []byte("beijing"), Source: "correction", Updated: at(5), Expires: at(200)},
	}
	if len(got) != len(want) {
		t.Fatalf("profile = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Field != w.Field || !bytes.Equal(g.Sealed, w.Sealed) || g.Source != w.Source || !g.Updated.Equal(w.Updated) || !g.Expires.Equal(w.Expires) {
			t.Errorf("profile[%d] = %+v, want %+v", i, g, w)
		}
	}
	narrow, err := s.Profile(ctx, Grant(t, "a", policy.Read, "age"))
	if err != nil {
		t.Fatal(err)
	}
	if len(narrow) != 1 || narrow[0].Field != "age" {
		t.Errorf("profile under a grant for age = %+v, want only age", narrow)
	}
	if other, err := s.Profile(ctx, Grant(t, "b", policy.Access)); err != nil || len(other) != 0 {
		t.Errorf("profile of b = %+v, %v; want empty", other, err)
	}
}

// LP-3: labels are upserted and deleted per subject.
func testLabels(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	lv := func(p, label string, version int, minute int) portrait.LabelValue {
		return portrait.LabelValue{Grant: Grant(t, portrait.Pseudonym(p), policy.Derive), Pseudonym: portrait.Pseudonym(p), Label: label, Version: version,
			Sealed: []byte(fmt.Sprintf("%s/%s/%d", p, label, version)), Computed: at(minute), Expires: at(minute + 60)}
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutLabels(ctx, []portrait.LabelValue{lv("a", "fan", 1, 0), lv("a", "saver", 1, 0), lv("b", "fan", 1, 0)})
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutLabels(ctx, []portrait.LabelValue{lv("a", "fan", 2, 10)})
	})
	got, err := s.Labels(ctx, Grant(t, "a", policy.Use))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Label != "fan" || got[0].Version != 2 || string(got[0].Sealed) != "a/fan/2" ||
		!got[0].Computed.Equal(at(10)) || !got[0].Expires.Equal(at(70)) || got[0].Pseudonym != "a" || got[1].Label != "saver" {
		t.Errorf("labels of a = %+v, want fan v2 and saver", got)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.DeleteLabels(ctx, "a", []string{"fan"}) })
	if got, _ := s.Labels(ctx, Grant(t, "a", policy.Access)); len(got) != 1 || got[0].Label != "saver" {
		t.Errorf("after deleting fan labels of a = %+v, want saver", got)
	}
	if got, _ := s.Labels(ctx, Grant(t, "b", policy.Access)); len(got) != 1 {
		t.Errorf("deleting a's label touched b: %+v", got)
	}
}

// LP-3: a batch derivation page deletes the labels its subjects lost in
// one statement (DeleteLabelsOf): exactly those labels of exactly those
// subjects, quoted names included, and nothing when either list is empty.
func testLabelsDeletedOfMany(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	subjects := []string{"a", "b", "c", `d"'\x`}
	labels := []string{"fan", "saver", `q"uo'te`, "keep"}
	var values []portrait.LabelValue
	for _, p := range subjects {
		for _, l := range labels {
			values = append(values, portrait.LabelValue{Grant: Grant(t, portrait.Pseudonym(p), policy.Derive), Pseudonym: portrait.Pseudonym(p),
				Label: l, Version: 1, Sealed: []byte(p + "/" + l), Computed: at(0)})
		}
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, values) })
	type remover interface {
		DeleteLabelsOf(ctx context.Context, pseudonyms []portrait.Pseudonym, labels []string) error
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		r, ok := tx.(remover)
		if !ok {
			t.Fatalf("%T has no DeleteLabelsOf", tx)
		}
		if err := r.DeleteLabelsOf(ctx, nil, []string{"fan"}); err != nil {
			return err
		}
		if err := r.DeleteLabelsOf(ctx, []portrait.Pseudonym{"a"}, nil); err != nil {
			return err
		}
		return r.DeleteLabelsOf(ctx, []portrait.Pseudonym{"a", `d"'\x`, "nobody"}, []string{"fan", `q"uo'te`, "never"})
	})
	want := map[string][]string{"a": {"keep", "saver"}, "b": {"fan", "keep", `q"uo'te`, "saver"}, "c": {"fan", "keep", `q"uo'te`, "saver"}, `d"'\x`: {"keep", "saver"}}
	for p, w := range want {
		got, err := s.Labels(ctx, Grant(t, portrait.Pseudonym(p), policy.Access))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, lv := range got {
			ids = append(ids, lv.Label)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, w) {
			t.Errorf("labels of %s after deleting = %v, want %v", p, ids, w)
		}
	}
}

// LP-3: a derivation page writes thousands of values in one PutLabels;
// every one is stored as given (a blob with any bytes, an expiry or none),
// a repeated (subject, label) keeps its last value, and one refused grant
// among them stores nothing. 1,293 values cover every statement size an
// engine may split a batch into.
func testLabelsLargeBatch(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	const subjects, perSubject = 431, 3
	grants := make([]policy.Grant, subjects)
	var values []portrait.LabelValue
	for i := range subjects {
		p := portrait.Pseudonym(fmt.Sprintf("s%04d", i))
		grants[i] = Grant(t, p, policy.Derive)
		for j := range perSubject {
			v := portrait.LabelValue{Grant: grants[i], Pseudonym: p, Label: fmt.Sprintf("l%d", j), Version: 1 + j,
				Sealed: []byte{0, byte(i), byte(j), 0xff, '"', '\\'}, Computed: at(i)}
			if j != 1 {
				v.Expires = at(i + 60)
			}
			values = append(values, v)
		}
	}
	// The first value again, later in the batch and changed: the last wins.
	again := values[0]
	again.Version, again.Sealed = 9, []byte("last")
	values = append(values[:700:700], append([]portrait.LabelValue{again}, values[700:]...)...)
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, values) })
	got, err := s.LabelsFor(ctx, grants)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := range subjects {
		p := portrait.Pseudonym(fmt.Sprintf("s%04d", i))
		lvs := got[p]
		n += len(lvs)
		if len(lvs) != perSubject {
			t.Errorf("subject %s: %d labels, want %d", p, len(lvs), perSubject)
			continue
		}
		for j, lv := range lvs {
			want := []byte{0, byte(i), byte(j), 0xff, '"', '\\'}
			version := 1 + j
			if i == 0 && j == 0 {
				want, version = []byte("last"), 9
			}
			if lv.Label != fmt.Sprintf("l%d", j) || lv.Version != version || !bytes.Equal(lv.Sealed, want) ||
				!lv.Computed.Equal(at(i)) || (j == 1) != lv.Expires.IsZero() || (j != 1 && !lv.Expires.Equal(at(i+60))) {
				t.Errorf("subject %s label %d = %+v, want version %d sealed %x", p, j, lv, version, want)
			}
		}
	}
	if n != subjects*perSubject {
		t.Errorf("%d labels stored, want %d", n, subjects*perSubject)
	}
	// One value under another subject's grant, at the end of a large
	// batch: refused, and nothing of the batch is stored.
	var more []portrait.LabelValue
	for i := range subjects {
		p := portrait.Pseudonym(fmt.Sprintf("t%04d", i))
		more = append(more, portrait.LabelValue{Grant: Grant(t, p, policy.Derive), Pseudonym: p, Label: "l0", Version: 1, Sealed: []byte("x"), Computed: at(0)})
	}
	more = append(more, portrait.LabelValue{Grant: grants[1], Pseudonym: "t0000", Label: "l1", Version: 1, Sealed: []byte("x"), Computed: at(0)})
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, more) })
	if err == nil {
		t.Fatal("a batch with a value under another subject's grant was stored")
	}
	if got, err := s.Labels(ctx, Grant(t, "t0000", policy.Access)); err != nil || len(got) != 0 {
		t.Errorf("after the refused batch, t0000 has %+v, %v; want nothing", got, err)
	}
}

func testSubjects(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a"), subject("b")})
	})
	again := subject("a")
	again.WrappedKey = []byte("another key")
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{again, subject("c")})
	})
	got, err := s.Subjects(ctx, []portrait.Pseudonym{"a", "c", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("subjects = %+v, want a and c", got)
	}
	a := got["a"]
	if string(a.WrappedKey) != "key-a" || string(a.SealedID) != "id-a" || !a.Created.Equal(base) {
		t.Errorf("subject a = %+v: EnsureSubjects must not replace a stored subject's key", a)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: "d"}})
	})
	wantCode(t, "subject without a key", err, portrait.EINVALID)
}

// CN-2, CN-4, SR-7, LP-3, LP-4: the ledger keeps every record; the state
// holds the newest per purpose, the flags and the suppressed labels.
func testConsentsAndStates(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	recs := []portrait.ConsentRecord{
		{Pseudonym: "a", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", Channel: "web", UserAgent: "ua", IP: "10.0.0.0/24", Categories: []string{"user.location"}, At: at(0)},
		{Pseudonym: "a", Purpose: "marketing", Status: policy.Refused, NoticeVersion: "v1", Channel: "app", At: at(1),
			ConsentString: "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA", StringType: "tcfv2"}, // kept as evidence
		{Pseudonym: "a", Purpose: "personalization", Status: policy.Withdrawn, NoticeVersion: "v1", Channel: "web", At: at(2)},
		{Pseudonym: "a", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v2", Channel: "web", Guardian: true, At: at(3)},
		{Pseudonym: "b", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", Channel: "web", At: at(4)},
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a")}); err != nil {
			return err
		}
		for _, r := range recs {
			if err := tx.AppendConsent(ctx, r); err != nil {
				return err
			}
		}
		if err := tx.SetFlags(ctx, "a", portrait.Flags{Minor: true, ObjectMarketing: true, Personalization: 40}); err != nil {
			return err
		}
		if err := tx.Suppress(ctx, "a", "fan", false); err != nil {
			return err
		}
		if err := tx.Suppress(ctx, "a", "saver", false); err != nil {
			return err
		}
		if err := tx.Suppress(ctx, "a", "saver", true); err != nil {
			return err
		}
		if err := tx.Suppress(ctx, "a", "gone", false); err != nil {
			return err
		}
		return tx.Unsuppress(ctx, "a", "gone")
	})

	if _, err := s.ConsentHistory(ctx, policy.Grant{}); !errors.Is(err, policy.ErrNoGrant) {
		t.Errorf("consent history without a grant: %v, want ErrNoGrant", err) // invariant 2: the evidence is personal
	}
	hist, err := s.ConsentHistory(ctx, Grant(t, "a", policy.Access))
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 4 {
		t.Fatalf("history of a has %d records, want 4", len(hist))
	}
	for i, h := range hist {
		w := recs[i]
		if h.Pseudonym != "a" || h.Purpose != w.Purpose || h.Status != w.Status || h.NoticeVersion != w.NoticeVersion || h.Channel != w.Channel ||
			h.UserAgent != w.UserAgent || h.IP != w.IP || h.Guardian != w.Guardian || !reflect.DeepEqual(h.Categories, w.Categories) || !h.At.Equal(w.At) ||
			h.ConsentString != w.ConsentString || h.StringType != w.StringType {
			t.Errorf("history[%d] = %+v, want %+v", i, h, w)
		}
		if i > 0 && h.Seq <= hist[i-1].Seq {
			t.Errorf("history is not in ledger order: seq %d after %d", h.Seq, hist[i-1].Seq)
		}
	}

	states, err := s.States(ctx, []portrait.Pseudonym{"a", "b", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	a := states["a"]
	wantA := &policy.State{
		Pseudonym: "a",
		Consents: map[string]policy.Consent{
			"personalization": {Status: policy.Granted, NoticeVersion: "v2", Guardian: true, At: at(3)},
			"marketing":       {Status: policy.Refused, NoticeVersion: "v1", At: at(1)},
		},
		Minor: true, ObjectMarketing: true, Personalization: 40,
		Suppressed: map[string]bool{"fan": false, "saver": true},
	}
	if !sameState(a, wantA) {
		t.Errorf("state of a = %+v, want %+v", a, wantA)
	}
	// b has consents but no subject row: the flags are the defaults.
	wantB := &policy.State{Pseudonym: "b", Consents: map[string]policy.Consent{"personalization": {Status: policy.Granted, NoticeVersion: "v1", At: at(4)}},
		Personalization: 100, Suppressed: map[string]bool{}}
	if !sameState(states["b"], wantB) {
		t.Errorf("state of b = %+v, want %+v", states["b"], wantB)
	}
	fresh := &policy.State{Pseudonym: "nobody", Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	if !sameState(states["nobody"], fresh) {
		t.Errorf("state of an unknown subject = %+v, want %+v", states["nobody"], fresh)
	}

	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: "a", Purpose: "p", Status: policy.None, At: at(9)})
	})
	wantCode(t, "consent with status none", err, portrait.EINVALID)
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.SetFlags(ctx, "nobody", portrait.Flags{Personalization: 100})
	})
	wantCode(t, "flags of an unknown subject", err, portrait.ENOTFOUND)
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.SetFlags(ctx, "a", portrait.Flags{Personalization: 101})
	})
	wantCode(t, "personalization 101", err, portrait.EINVALID)
}

func sameState(a, b *policy.State) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Consents) != len(b.Consents) {
		return false
	}
	for k, c := range a.Consents {
		d, ok := b.Consents[k]
		if !ok || c.Status != d.Status || c.NoticeVersion != d.NoticeVersion || c.Guardian != d.Guardian || !c.At.Equal(d.At) {
			return false
		}
	}
	x, y := *a, *b
	x.Consents, y.Consents = nil, nil
	return reflect.DeepEqual(x, y)
}

// States answers for a batch of a thousand subjects at once.
func testStatesBatch(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	ids := make([]portrait.Pseudonym, 1000)
	for i := range ids {
		ids[i] = portrait.Pseudonym(fmt.Sprintf("s%04d", i))
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		for i, p := range ids {
			if i%2 == 0 {
				if err := tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: portrait.Pseudonym(p), Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", At: at(i)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	states, err := s.States(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != len(ids) {
		t.Fatalf("got %d states, want %d", len(states), len(ids))
	}
	for i, p := range ids {
		_, has := states[portrait.Pseudonym(p)].Consents["personalization"]
		if has != (i%2 == 0) {
			t.Fatalf("state of %s has consent %v, want %v", p, has, i%2 == 0)
		}
	}
}

// StatesRange answers as States for pseudonyms in byte order, read as a
// range: every table's rows of the page's subjects, newest consent per
// purpose, and nothing of a subject in the range that was not asked for
// or outside it — in byte order, where collations differ ("B" < "_x" <
// "a" < "z" < "é"). Pseudonyms out of order are refused.
func testStatesRange(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	names := []string{"0", "B", "Z", "_x", "a", "a1", "b", "z", "é"}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		var subs []portrait.SubjectKey
		for _, n := range names {
			subs = append(subs, subject(n))
		}
		if err := tx.EnsureSubjects(ctx, subs); err != nil {
			return err
		}
		for i, n := range names {
			p := portrait.Pseudonym(n)
			for k, st := range []policy.Status{policy.Granted, policy.Withdrawn, policy.Granted}[:1+i%3] {
				if err := tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: p, Purpose: "personalization", Status: st, NoticeVersion: fmt.Sprint("v", k), At: at(10*i + k)}); err != nil {
					return err
				}
			}
			if err := tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: p, Purpose: "marketing", Status: policy.Refused, NoticeVersion: "v1", At: at(10*i + 5)}); err != nil {
				return err
			}
			if err := tx.SetFlags(ctx, p, portrait.Flags{Minor: i%2 == 0, Restricted: i%3 == 0, Personalization: 10 * i}); err != nil {
				return err
			}
			if err := tx.Suppress(ctx, p, "label-"+n, i%2 == 1); err != nil {
				return err
			}
		}
		// A consent of a subject with no row, inside the range.
		return tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: "a0", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", At: at(99)})
	})
	for _, page := range [][]portrait.Pseudonym{
		{"B", "Z", "_x", "a"},
		{"B", "_x", "a0", "a1", "é"}, // "Z", "a", "b" in the range, not asked; "a0" has no row
		{"é"},
		{"0", "B", "Z", "_x", "a", "a1", "b", "z", "zz", "é"},
	} {
		want, err := s.States(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.StatesRange(ctx, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(page) {
			t.Errorf("page %v: %d states, want %d", page, len(got), len(page))
		}
		for _, p := range page {
			if !sameState(got[p], want[p]) {
				t.Errorf("page %v: state of %s = %+v, want %+v (as States reads it)", page, p, got[p], want[p])
			}
		}
		if st := want[page[0]]; page[0] == "B" && (st.Consents["marketing"].Status != policy.Refused || len(st.Suppressed) != 1) {
			t.Fatalf("States of B = %+v: the case wrote nothing", st)
		}
	}
	if none, err := s.StatesRange(ctx, nil); err != nil || len(none) != 0 {
		t.Errorf("StatesRange(nil) = %v, %v; want nothing", none, err)
	}
	_, err := s.StatesRange(ctx, []portrait.Pseudonym{"a", "B"})
	wantCode(t, "pseudonyms out of order", err, portrait.EINVALID)
}

// Tx.States reads inside the write transaction: it sees a change made
// earlier in the same transaction, which a read through the store does not
// until commit (invariant 5: ingest decides a chunk again with it).
func testTxStates(t *testing.T, s portrait.Store) {
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: "a", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", At: at(1)})
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: "a", Purpose: "personalization", Status: policy.Withdrawn, NoticeVersion: "v1", At: at(2)}); err != nil {
			return err
		}
		in, err := tx.States(ctx, []portrait.Pseudonym{"a", "b"})
		if err != nil {
			return err
		}
		if len(in) != 2 || in["a"].Consents["personalization"].Status != policy.Withdrawn || len(in["b"].Consents) != 0 || in["b"].Personalization != 100 {
			t.Errorf("states in the transaction: a %+v, b %+v", in["a"], in["b"])
		}
		if none, err := tx.States(ctx, nil); err != nil || len(none) != 0 {
			t.Errorf("states of nobody: %v %v", none, err)
		}
		return nil
	})
}

// Invariant 5: every governance change increments the generation in the
// same transaction.
func testGeneration(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping an open store: %v", err)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a")})
	})
	steps := []struct {
		name string
		fn   func(ctx context.Context, tx portrait.Tx) error
	}{
		{"AppendConsent", func(ctx context.Context, tx portrait.Tx) error {
			return tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: "a", Purpose: "p", Status: policy.Granted, NoticeVersion: "v1", At: at(0)})
		}},
		{"SetFlags", func(ctx context.Context, tx portrait.Tx) error {
			return tx.SetFlags(ctx, "a", portrait.Flags{Personalization: 0})
		}},
		{"Suppress", func(ctx context.Context, tx portrait.Tx) error { return tx.Suppress(ctx, "a", "fan", true) }},
		{"Unsuppress", func(ctx context.Context, tx portrait.Tx) error { return tx.Unsuppress(ctx, "a", "fan") }},
		{"Suspend", func(ctx context.Context, tx portrait.Tx) error {
			return tx.Suspend(ctx, policy.Suspension{Kind: policy.TargetLabel, ID: "fan", Reason: "audit", By: "regulator:r1", At: at(0)})
		}},
		{"Lift", func(ctx context.Context, tx portrait.Tx) error { return tx.Lift(ctx, policy.TargetLabel, "fan") }},
		{"Erase", func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a", policy.Erase)) }},
		// CM-5: nodes keep verified staff keys while the generation stands.
		{"RevokeAPIKey", func(ctx context.Context, tx portrait.Tx) error {
			if err := tx.PutAPIKey(ctx, portrait.APIKey{ID: "gk", Name: "risk/gen", Hash: bytes.Repeat([]byte{4}, 32), Role: policy.Operator, Created: at(0)}); err != nil {
				return err
			}
			_, err := tx.RevokeAPIKey(ctx, "risk/gen", at(1))
			return err
		}},
	}
	prev, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		update(t, s, st.fn)
		g, err := s.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if g <= prev {
			t.Errorf("%s left the generation at %d", st.name, g)
		}
		prev = g
	}
	// Creating a key or recording its use changes no one's rights.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutAPIKey(ctx, portrait.APIKey{ID: "gk2", Name: "risk/gen2", Hash: bytes.Repeat([]byte{6}, 32), Role: policy.Operator, Created: at(0)}); err != nil {
			return err
		}
		return tx.TouchAPIKey(ctx, "gk2", at(2))
	})
	if g, _ := s.Generation(ctx); g != prev {
		t.Errorf("creating or touching a key moved the generation from %d to %d", prev, g)
	}
	insert(t, s, event(t, "b", "", 0))
	if g, _ := s.Generation(ctx); g != prev {
		t.Errorf("inserting an event moved the generation from %d to %d; only governance changes should", prev, g)
	}
	// A rolled-back change leaves the generation alone.
	s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		tx.Suppress(ctx, "b", "x", true)
		return errors.New("abandon")
	})
	if g, _ := s.Generation(ctx); g != prev {
		t.Errorf("a rolled-back suppression moved the generation from %d to %d", prev, g)
	}
}

// RO-6: suspensions are stored until lifted.
func testSuspensions(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	sus := []policy.Suspension{
		{Kind: policy.TargetUseCase, ID: "credit", Reason: "unfair", By: "regulator:r1", At: at(1)},
		{Kind: policy.TargetLabel, ID: "fan", Reason: "audit", By: "regulator:r1", At: at(0)},
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		for _, x := range sus {
			if err := tx.Suspend(ctx, x); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.Suspensions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != policy.TargetLabel || got[0].Reason != "audit" || got[0].By != "regulator:r1" || !got[0].At.Equal(at(0)) || got[1].ID != "credit" {
		t.Errorf("suspensions = %+v, want the label then the use-case", got)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Lift(ctx, policy.TargetLabel, "fan") })
	if got, _ := s.Suspensions(ctx); len(got) != 1 || got[0].ID != "credit" {
		t.Errorf("after lifting fan suspensions = %+v", got)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.Lift(ctx, policy.TargetLabel, "fan") })
	wantCode(t, "lift what is not suspended", err, portrait.ENOTFOUND)
}

// SR-3, invariant 4: erasure removes the key and everything derived, and
// leaves other subjects alone.
func testErase(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	for _, p := range []string{"a", "b"} {
		update(t, s, func(ctx context.Context, tx portrait.Tx) error {
			if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject(p)}); err != nil {
				return err
			}
			if _, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, p, "k", 0), event(t, p, "", 1)}); err != nil {
				return err
			}
			if err := tx.PutProfile(ctx, Grant(t, portrait.Pseudonym(p), policy.Collect), []portrait.ProfileValue{{Field: "city", Sealed: []byte("x"), Source: "event", Updated: at(0)}}); err != nil {
				return err
			}
			if err := tx.PutLabels(ctx, []portrait.LabelValue{{Grant: Grant(t, portrait.Pseudonym(p), policy.Derive), Pseudonym: portrait.Pseudonym(p), Label: "fan", Version: 1, Sealed: []byte("x"), Computed: at(0)}}); err != nil {
				return err
			}
			if err := tx.Suppress(ctx, portrait.Pseudonym(p), "saver", true); err != nil {
				return err
			}
			if err := tx.SetFlags(ctx, portrait.Pseudonym(p), portrait.Flags{ObjectProfiling: true, Personalization: 10}); err != nil {
				return err
			}
			return tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: portrait.Pseudonym(p), Purpose: "personalization", Status: policy.Granted, NoticeVersion: "v1", At: at(0)})
		})
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a", policy.Erase)) })

	subs, err := s.Subjects(ctx, []portrait.Pseudonym{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := subs["a"]; ok || len(subs) != 1 {
		t.Errorf("after erasing a subjects = %+v, want only b", subs)
	}
	acc := Grant(t, "a", policy.Access)
	if evs, _ := s.Events(ctx, acc, time.Time{}); len(evs) != 0 {
		t.Errorf("erased subject still has events: %+v", evs)
	}
	if p, _ := s.Profile(ctx, acc); len(p) != 0 {
		t.Errorf("erased subject still has profile values: %+v", p)
	}
	if l, _ := s.Labels(ctx, acc); len(l) != 0 {
		t.Errorf("erased subject still has labels: %+v", l)
	}
	if h, _ := s.ConsentHistory(ctx, Grant(t, "a", policy.Access)); len(h) != 0 {
		t.Errorf("erased subject still has consents: %+v", h)
	}
	states, err := s.States(ctx, []portrait.Pseudonym{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if st := states["a"]; len(st.Consents) != 0 || len(st.Suppressed) != 0 || st.ObjectProfiling || st.Personalization != 100 {
		t.Errorf("erased subject's state = %+v, want a fresh one", st)
	}
	if st := states["b"]; len(st.Consents) != 1 || !st.Suppressed["saver"] || !st.ObjectProfiling {
		t.Errorf("erasing a changed b's state: %+v", st)
	}
	if n := len(events(t, s, "b")); n != 2 {
		t.Errorf("erasing a left b with %d events, want 2", n)
	}
	// The erased subject's idempotency keys are gone too: a new event with
	// the same key is new data.
	if got := insert(t, s, event(t, "a", "k", 5)); !got[0] {
		t.Errorf("after erasure an event with a reused key was taken as a duplicate")
	}
}

// hashReader reads stored hashes through the store contract, as package
// audit does.
func hashReader(ctx context.Context, read func(context.Context, []int64) ([][32]byte, error)) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := read(ctx, idx)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i := range hs {
			out[i] = hs[i]
		}
		return out, nil
	})
}

// appendRecords appends records to the log in tx the way package audit
// does: stored hashes computed by tlog from hashes read back in the
// transaction.
func appendRecords(ctx context.Context, tx portrait.Tx, records ...[]byte) error {
	n, err := tx.LogSize(ctx)
	if err != nil {
		return err
	}
	r := hashReader(ctx, tx.LogHashes)
	for i, data := range records {
		idx := n + int64(i)
		hashes, err := tlog.StoredHashes(idx, data, r)
		if err != nil {
			return fmt.Errorf("stored hashes of record %d: %w", idx, err)
		}
		var buf []byte
		for _, h := range hashes {
			buf = append(buf, h[:]...)
		}
		// Append one at a time so the next record's hashes can read this one's.
		if err := tx.AppendLog(ctx, []portrait.LogEntry{{Index: idx, Data: data, Hashes: buf}}); err != nil {
			return err
		}
	}
	return nil
}

// FA-6: the log holds a Merkle tree whose hashes the store returns
// exactly, so that tlog computes the same root as from the records alone.
// FA-6: records are found by kind through the index, in log order.
func testLogKinds(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(nil)
	log, err := audit.New("portrait.test/kinds", key)
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		_, err := log.Append(ctx, tx, audit.Record{Kind: "mark"}, audit.Record{Kind: "ingest"}, audit.Record{Kind: "mark"}, audit.Record{Kind: "catalog"})
		return err
	})
	got, err := s.LogEntriesOfKind(ctx, []string{"mark", "catalog"}, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Index != 0 || got[1].Index != 2 || got[2].Index != 3 || got[1].Kind != "mark" ||
		!bytes.Contains(got[2].Data, []byte(`"kind":"catalog"`)) {
		t.Errorf("marks and catalogs = %+v, want entries 0, 2, 3", got)
	}
	if got, _ := s.LogEntriesOfKind(ctx, []string{"mark"}, 1, 4); len(got) != 1 || got[0].Index != 2 {
		t.Errorf("marks from 1 = %+v, want entry 2", got)
	}
	_, err = s.LogEntriesOfKind(ctx, []string{"mark"}, 3, 2)
	wantCode(t, "reversed range", err, portrait.EINVALID)
}

func testLog(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	var records [][]byte
	for batch := range 4 {
		var rs [][]byte
		for i := range 5 + batch {
			rs = append(rs, fmt.Appendf(nil, `{"kind":"test","n":%d}`, len(records)+i))
		}
		update(t, s, func(ctx context.Context, tx portrait.Tx) error { return appendRecords(ctx, tx, rs...) })
		records = append(records, rs...)
	}
	n, err := s.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(records)) {
		t.Fatalf("log size %d, want %d", n, len(records))
	}

	// The root from the store's hashes equals the root over the records
	// hashed independently.
	got, err := tlog.TreeHash(n, hashReader(ctx, s.LogHashes))
	if err != nil {
		t.Fatal(err)
	}
	mem := map[int64]tlog.Hash{}
	memReader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = mem[x]
		}
		return out, nil
	})
	for i, data := range records {
		hs, err := tlog.StoredHashes(int64(i), data, memReader)
		if err != nil {
			t.Fatal(err)
		}
		for j, h := range hs {
			mem[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
		}
	}
	want, err := tlog.TreeHash(n, memReader)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("tree hash from the store %x, want %x", got, want)
	}

	// Proofs built from the store's hashes verify.
	p, err := tlog.ProveRecord(n, 7, hashReader(ctx, s.LogHashes))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(p, n, want, 7, tlog.RecordHash(records[7])); err != nil {
		t.Errorf("inclusion proof of record 7: %v", err)
	}

	entries, err := s.LogEntries(ctx, 3, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 6 || entries[0].Index != 3 || !bytes.Equal(entries[5].Data, records[8]) {
		t.Errorf("entries [3, 9) = %d entries starting at %d", len(entries), entries[0].Index)
	}
	if h := entries[0].Hashes; len(h)%32 != 0 || len(h) == 0 {
		t.Errorf("entry 3 hashes are %d bytes", len(h))
	}
	if e, err := s.LogEntries(ctx, n, n); err != nil || len(e) != 0 {
		t.Errorf("empty range = %v, %v", e, err)
	}
	_, err = s.LogEntries(ctx, n-1, n+1)
	wantCode(t, "entries past the end", err, portrait.ENOTFOUND)
	_, err = s.LogEntries(ctx, 5, 4)
	wantCode(t, "reversed range", err, portrait.EINVALID)
	_, err = s.LogHashes(ctx, []int64{tlog.StoredHashIndex(0, n)})
	wantCode(t, "hash of a record not yet appended", err, portrait.ENOTFOUND)

	// Appends must continue exactly where the log ends.
	for _, idx := range []int64{n + 1, n - 1} {
		err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			return tx.AppendLog(ctx, []portrait.LogEntry{{Index: idx, Data: []byte("x"), Hashes: make([]byte, 32)}})
		})
		wantCode(t, fmt.Sprintf("append at %d to a log of %d", idx, n), err, portrait.ECONFLICT)
	}
	if m, _ := s.LogSize(ctx); m != n {
		t.Errorf("refused appends moved the log size from %d to %d", n, m)
	}
}

// LogSize in a transaction holds the log head until the transaction ends,
// so concurrent appenders never both append at the same index.
func testLogSerialised(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				errs <- s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
					return appendRecords(ctx, tx, fmt.Appendf(nil, "worker %d record %d", w, i))
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent append: %v", err)
		}
	}
	if n, _ := s.LogSize(ctx); n != workers*each {
		t.Errorf("log size %d after %d concurrent appends", n, workers*each)
	}
	if _, err := tlog.TreeHash(workers*each, hashReader(ctx, s.LogHashes)); err != nil {
		t.Errorf("tree over concurrent appends: %v", err)
	}
}

// FA-6: the newest signed checkpoint is returned; older ones are kept.
func testCheckpoint(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	_, err := s.Checkpoint(ctx)
	wantCode(t, "checkpoint of a new store", err, portrait.ENOTFOUND)
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, []byte("note 1\n")) })
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, []byte("note 2\n")) })
	got, err := s.Checkpoint(ctx)
	if err != nil || string(got) != "note 2\n" {
		t.Errorf("checkpoint = %q, %v; want note 2", got, err)
	}
}

// CM-5: staff API keys are found by hash only; a revoked key is found by
// nobody and its hash can never be stored again; a name is unique among
// the keys in force (RO-7); last use only moves forward.
func testAPIKey(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	k := portrait.APIKey{ID: "k1", Name: "risk/alice", Hash: bytes.Repeat([]byte{7}, 32), Role: policy.Operator, Created: at(0), Expires: at(90 * 24)}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutAPIKey(ctx, k) })
	got, err := s.APIKey(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || got.Name != k.Name || got.Role != k.Role || !bytes.Equal(got.Hash, k.Hash) || !got.Created.Equal(k.Created) ||
		!got.Expires.Equal(k.Expires) || !got.Revoked.IsZero() || !got.LastUsed.IsZero() {
		t.Errorf("api key = %+v, want %+v", got, k)
	}
	_, err = s.APIKey(ctx, bytes.Repeat([]byte{8}, 32))
	wantCode(t, "unknown key", err, portrait.ENOTFOUND)
	put := func(k portrait.APIKey) error {
		return s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutAPIKey(ctx, k) })
	}
	wantCode(t, "duplicate hash", put(portrait.APIKey{ID: "k2", Name: "risk/bob", Hash: k.Hash, Role: policy.Admin}), portrait.ECONFLICT)
	wantCode(t, "duplicate name in force", put(portrait.APIKey{ID: "k2", Name: "risk/alice", Hash: bytes.Repeat([]byte{9}, 32), Role: policy.Admin}), portrait.ECONFLICT)
	for name, bad := range map[string]portrait.APIKey{
		"subject role":  {ID: "k3", Hash: bytes.Repeat([]byte{1}, 32), Role: policy.Subject},
		"system role":   {ID: "k3", Hash: bytes.Repeat([]byte{1}, 32), Role: policy.System},
		"no role":       {ID: "k3", Hash: bytes.Repeat([]byte{1}, 32)},
		"short hash":    {ID: "k3", Hash: []byte{1}, Role: policy.Admin},
		"no id":         {Hash: bytes.Repeat([]byte{1}, 32), Role: policy.Admin},
		"odd role text": {ID: "k3", Hash: bytes.Repeat([]byte{1}, 32), Role: "Admin; drop"},
	} {
		wantCode(t, name, put(bad), portrait.EINVALID)
	}
	// A key stored without a name (as before names existed) is named by its id.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(ctx, portrait.APIKey{ID: "legacy-1", Hash: bytes.Repeat([]byte{3}, 32), Role: policy.Auditor, Created: at(0)})
	})
	if got, err := s.APIKey(ctx, bytes.Repeat([]byte{3}, 32)); err != nil || got.Name != "legacy-1" || !got.Expires.IsZero() {
		t.Errorf("legacy key = %+v, %v", got, err)
	}

	// Last use moves forward only.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.TouchAPIKey(ctx, "k1", at(5)) })
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.TouchAPIKey(ctx, "k1", at(2)) })
	if got, _ := s.APIKey(ctx, k.Hash); !got.LastUsed.Equal(at(5)) {
		t.Errorf("last used = %v, want %v", got.LastUsed, at(5))
	}

	// Revocation: the key is gone for lookups, stays listed, its hash is
	// never accepted again, and its name is free for a new key.
	var revoked portrait.APIKey
	update(t, s, func(ctx context.Context, tx portrait.Tx) (err error) {
		revoked, err = tx.RevokeAPIKey(ctx, "risk/alice", at(6))
		return err
	})
	if revoked.ID != "k1" || revoked.Role != policy.Operator || !revoked.Revoked.Equal(at(6)) {
		t.Errorf("revoked = %+v", revoked)
	}
	_, err = s.APIKey(ctx, k.Hash)
	wantCode(t, "revoked key looked up", err, portrait.ENOTFOUND)
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := tx.RevokeAPIKey(ctx, "risk/alice", at(7))
		return err
	})
	wantCode(t, "revoke twice", err, portrait.ENOTFOUND)
	wantCode(t, "revoked hash again", put(portrait.APIKey{ID: "k4", Name: "risk/carol", Hash: k.Hash, Role: policy.Operator}), portrait.ECONFLICT)
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(ctx, portrait.APIKey{ID: "k5", Name: "risk/alice", Hash: bytes.Repeat([]byte{5}, 32), Role: policy.Reviewer, Created: at(8)})
	})
	all, err := s.APIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range all {
		names = append(names, fmt.Sprintf("%s %s %s revoked=%v", k.ID, k.Name, k.Role, !k.Revoked.IsZero()))
	}
	want := []string{"legacy-1 legacy-1 auditor revoked=false", "k1 risk/alice operator revoked=true", "k5 risk/alice reviewer revoked=false"}
	if !slices.Equal(names, want) {
		t.Errorf("keys:\n%s\nwant\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
}

// SR-4, SR-5: request cases are upserted by id, listed oldest first, and
// outlive the subject's erasure as its receipt.
func testCases(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	cases := []portrait.Case{
		{ID: "c2", Pseudonym: "a", Type: "erasure", Status: "open", Created: at(2), Deadline: at(2 + 15*24*60)},
		{ID: "c1", Pseudonym: "a", Type: "access", Status: "open", Created: at(1), Deadline: at(1 + 15*24*60)},
		{ID: "c3", Pseudonym: "b", Type: "objection", Status: "open", Created: at(3)},
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		for _, c := range cases {
			if err := tx.PutCase(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	done := cases[0]
	done.Status, done.Closed, done.Outcome, done.LogIndex = "fulfilled", at(10), "erased", 42
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutCase(ctx, done); err != nil {
			return err
		}
		return tx.Erase(ctx, Grant(t, "a", policy.Erase))
	})
	got, err := s.Cases(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	want := []portrait.Case{cases[1], done}
	if len(got) != len(want) {
		t.Fatalf("cases of a = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Pseudonym != w.Pseudonym || g.Type != w.Type || g.Status != w.Status || !g.Created.Equal(w.Created) ||
			!g.Deadline.Equal(w.Deadline) || !g.Closed.Equal(w.Closed) || g.Outcome != w.Outcome || g.Reason != w.Reason || g.LogIndex != w.LogIndex {
			t.Errorf("case %d = %+v, want %+v", i, g, w)
		}
	}
	if all, err := s.Cases(ctx, ""); err != nil || len(all) != 3 || all[2].ID != "c3" || !all[2].Deadline.IsZero() {
		t.Errorf("all cases = %+v, %v; want c1, c2, c3", all, err)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutCase(ctx, portrait.Case{ID: "c4"}) })
	wantCode(t, "case without subject", err, portrait.EINVALID)
}

// Pseudonyms pages through every stored subject in byte order.
func testPseudonyms(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	names := []string{"b", "a", "B", "_x", "a1", "Z", "é"}
	var subs []portrait.SubjectKey
	for _, n := range names {
		subs = append(subs, subject(n))
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.EnsureSubjects(ctx, subs) })
	got := pageAll(t, func(after portrait.Pseudonym) ([]portrait.Pseudonym, error) { return s.Pseudonyms(ctx, after, 3) },
		func(p portrait.Pseudonym) portrait.Pseudonym { return p })
	want := []portrait.Pseudonym{"B", "Z", "_x", "a", "a1", "b", "é"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pseudonyms = %q, want %q (byte order)", got, want)
	}
	_, err := s.Pseudonyms(ctx, "", 0)
	wantCode(t, "limit 0", err, portrait.EINVALID)
}

// pageAll reads every page of three that page returns, each after the
// last subject of the one before, until an empty one.
func pageAll[T any](t *testing.T, page func(after portrait.Pseudonym) ([]T, error), subject func(T) portrait.Pseudonym) []T {
	t.Helper()
	var got []T
	var after portrait.Pseudonym
	for {
		p, err := page(after)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > 3 {
			t.Fatalf("page of %d, limit 3", len(p))
		}
		if len(p) == 0 {
			return got
		}
		got = append(got, p...)
		after = subject(p[len(p)-1])
	}
}

// SubjectsAfter pages through the same subjects in the same order as
// Pseudonyms, each with its stored row as Subjects returns it, and leaves
// out an erased subject.
func testSubjectsAfter(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	names := []string{"b", "a", "B", "_x", "a1", "Z", "é", "gone"}
	var subs []portrait.SubjectKey
	for _, n := range names {
		subs = append(subs, subject(n))
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.EnsureSubjects(ctx, subs) })
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "gone", policy.Erase)) })
	got := pageAll(t, func(after portrait.Pseudonym) ([]portrait.SubjectKey, error) { return s.SubjectsAfter(ctx, after, 3) },
		func(k portrait.SubjectKey) portrait.Pseudonym { return k.Pseudonym })
	var want []portrait.SubjectKey
	for _, n := range []string{"B", "Z", "_x", "a", "a1", "b", "é"} {
		want = append(want, subject(n))
	}
	if len(got) != len(want) {
		t.Fatalf("%d subjects, want %d", len(got), len(want))
	}
	for i := range want {
		if g, w := got[i], want[i]; g.Pseudonym != w.Pseudonym || !bytes.Equal(g.WrappedKey, w.WrappedKey) || !bytes.Equal(g.SealedID, w.SealedID) || !g.Created.Equal(w.Created) {
			t.Errorf("subject %d = %+v, want %+v (byte order, the stored row)", i, g, w)
		}
	}
	_, err := s.SubjectsAfter(ctx, "", 0)
	wantCode(t, "limit 0", err, portrait.EINVALID)
}

// AD-2, AD-4: decisions are stored with a Use grant; the sealed
// explanation is returned only under a grant for the subject.
func testDecisions(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	d := portrait.StoredDetermination{Grant: Grant(t, "a", policy.Use), ID: "d1", Pseudonym: "a", UseCase: "credit", Model: "risk", ModelVersion: 3,
		Outcome: true, Score: 0.75, InputHash: "abc", Sealed: []byte("why"), Status: "automated", Created: at(1), LogIndex: 9}
	d2 := d
	d2.ID, d2.Created, d2.Outcome, d2.Score = "d0", at(0), false, 0.25
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutDetermination(ctx, d); err != nil {
			return err
		}
		return tx.PutDetermination(ctx, d2)
	})
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutDetermination(ctx, d) })
	wantCode(t, "decision id reused", err, portrait.ECONFLICT)
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.SetDeterminationStatus(ctx, "d1", "pending_review")
	})
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.SetDeterminationStatus(ctx, "nope", "upheld")
	})
	wantCode(t, "status of an unknown decision", err, portrait.ENOTFOUND)

	got, err := s.DeterminationByID(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	want := d
	want.Grant, want.Sealed, want.Status = policy.Grant{}, nil, "pending_review"
	if !sameDecision(got, want) {
		t.Errorf("decision d1 = %+v, want %+v (without its sealed part)", got, want)
	}
	_, err = s.DeterminationByID(ctx, "nope")
	wantCode(t, "unknown decision", err, portrait.ENOTFOUND)
	list, err := s.Determinations(ctx, Grant(t, "a", policy.Access))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "d0" || string(list[1].Sealed) != "why" || list[1].Status != "pending_review" {
		t.Errorf("decisions of a = %+v, want d0 then d1 with its sealed part", list)
	}
	if other, err := s.Determinations(ctx, Grant(t, "b", policy.Access)); err != nil || len(other) != 0 {
		t.Errorf("decisions of b = %+v, %v", other, err)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a", policy.Erase)) })
	if list, _ := s.Determinations(ctx, Grant(t, "a", policy.Access)); len(list) != 0 {
		t.Errorf("decisions survived erasure: %+v", list) // SR-3
	}
}

func sameDecision(a, b portrait.StoredDetermination) bool {
	return a.ID == b.ID && a.Pseudonym == b.Pseudonym && a.UseCase == b.UseCase && a.Model == b.Model && a.ModelVersion == b.ModelVersion &&
		a.Outcome == b.Outcome && a.Score == b.Score && a.InputHash == b.InputHash && bytes.Equal(a.Sealed, b.Sealed) &&
		a.Status == b.Status && a.Created.Equal(b.Created) && a.LogIndex == b.LogIndex
}

// AD-3, RO-7: reviews are upserted and listed by status, oldest first.
func testReviews(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	r1 := portrait.Review{ID: "r1", DeterminationID: "d1", Pseudonym: "a", UseCase: "credit", Kind: "appeal", Sealed: []byte("statement"),
		Status: "open", Created: at(1), Deadline: at(1000)}
	r2 := portrait.Review{ID: "r2", DeterminationID: "d2", Pseudonym: "b", UseCase: "credit", Kind: "refusal", Status: "open", Created: at(0)}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutReview(ctx, r1); err != nil {
			return err
		}
		return tx.PutReview(ctx, r2)
	})
	if open, err := s.Reviews(ctx, "open"); err != nil || len(open) != 2 || open[0].ID != "r2" {
		t.Errorf("open reviews = %+v, %v; want r2 then r1", open, err)
	}
	r1.Status, r1.Reviewer, r1.Outcome, r1.Reason, r1.Closed = "closed", "reviewer:k1", "overturned", "income misread", at(50)
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutReview(ctx, r1) })
	got, err := s.ReviewByID(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r1.ID || got.DeterminationID != r1.DeterminationID || got.Pseudonym != r1.Pseudonym || got.UseCase != r1.UseCase || got.Kind != r1.Kind ||
		!bytes.Equal(got.Sealed, r1.Sealed) || got.Status != r1.Status || got.Reviewer != r1.Reviewer || got.Outcome != r1.Outcome ||
		got.Reason != r1.Reason || !got.Created.Equal(r1.Created) || !got.Deadline.Equal(r1.Deadline) || !got.Closed.Equal(r1.Closed) {
		t.Errorf("review r1 = %+v, want %+v", got, r1)
	}
	if open, _ := s.Reviews(ctx, "open"); len(open) != 1 || open[0].ID != "r2" {
		t.Errorf("open reviews after closing r1 = %+v", open)
	}
	if all, _ := s.Reviews(ctx, ""); len(all) != 2 {
		t.Errorf("all reviews = %+v", all)
	}
	_, err = s.ReviewByID(ctx, "nope")
	wantCode(t, "unknown review", err, portrait.ENOTFOUND)
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutReview(ctx, portrait.Review{ID: "r3"}) })
	wantCode(t, "review without decision", err, portrait.EINVALID)

	// CloseReview stores an outcome only while the review is open.
	r2.Status, r2.Reviewer, r2.Outcome, r2.Reason, r2.Closed = "closed", "reviewer:k1", "upheld", "checked", at(60)
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.CloseReview(ctx, r2) })
	late := r2
	late.Outcome, late.Reviewer = "overturned", "reviewer:k2"
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.CloseReview(ctx, late) })
	wantCode(t, "second outcome", err, portrait.ECONFLICT)
	if got, _ := s.ReviewByID(ctx, "r2"); got.Outcome != "upheld" || got.Reviewer != "reviewer:k1" || !got.Closed.Equal(at(60)) {
		t.Errorf("review r2 after a refused second outcome = %+v", got)
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.CloseReview(ctx, portrait.Review{ID: "nope", Status: "closed", Outcome: "upheld"})
	})
	wantCode(t, "close unknown review", err, portrait.ENOTFOUND)
}

func testItems(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	items := []portrait.Item{
		{ID: "i2", Categories: []string{"sports", "shoes"}, Attributes: map[string]any{"brand": "x", "size": 42.5, "new": true}, Price: 99.5, Updated: at(0)},
		{ID: "i1", Price: 1},
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutItems(ctx, items) })
	items[1].Categories = []string{"books"}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutItems(ctx, items[1:]) })
	got, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "i1" || !reflect.DeepEqual(got[0].Categories, []string{"books"}) || len(got[0].Attributes) != 0 {
		t.Fatalf("items = %+v, want i1 (books) then i2", got)
	}
	g := got[1]
	if !reflect.DeepEqual(g.Categories, items[0].Categories) || !reflect.DeepEqual(g.Attributes, items[0].Attributes) || g.Price != 99.5 || !g.Updated.Equal(at(0)) {
		t.Errorf("item i2 = %+v, want %+v", g, items[0])
	}
	err = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutItems(ctx, []portrait.Item{{ID: "bad", Attributes: map[string]any{"f": func() {}}}})
	})
	wantCode(t, "unencodable attribute", err, portrait.EINVALID)
}

// EnsureSubjects and PutItems write in multi-row statements: batches
// longer than one statement, a subject or item given twice in a batch,
// and a subject already stored (which keeps its first key) come out as
// one-by-one writes would leave them.
func testManyRows(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: "s7", WrappedKey: []byte("first")}})
	})
	var subjects []portrait.SubjectKey
	var names []portrait.Pseudonym
	for i := range 150 {
		p := portrait.Pseudonym(fmt.Sprintf("s%d", i))
		subjects = append(subjects, portrait.SubjectKey{Pseudonym: p, WrappedKey: []byte("k" + p)})
		names = append(names, p)
	}
	subjects = append(subjects, portrait.SubjectKey{Pseudonym: "s3", WrappedKey: []byte("again")})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.EnsureSubjects(ctx, subjects) })
	got, err := s.Subjects(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 150 || string(got["s7"].WrappedKey) != "first" || string(got["s3"].WrappedKey) != "ks3" || string(got["s149"].WrappedKey) != "ks149" {
		t.Errorf("%d subjects stored, s7 %q, s3 %q, s149 %q; want 150, first, ks3, ks149",
			len(got), got["s7"].WrappedKey, got["s3"].WrappedKey, got["s149"].WrappedKey)
	}
	var items []portrait.Item
	for i := range 130 {
		items = append(items, portrait.Item{ID: fmt.Sprintf("i%03d", i), Categories: []string{"c"}, Price: float64(i)})
	}
	items = append(items, portrait.Item{ID: "i005", Categories: []string{"last"}, Price: 5})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.PutItems(ctx, items) })
	stored, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 130 || !reflect.DeepEqual(stored[5].Categories, []string{"last"}) || stored[129].Price != 129 {
		t.Errorf("%d items stored, i005 %+v; want 130, the last version of i005", len(stored), stored[5])
	}
}

// FP-2: protected attributes need a Collect grant to store and a grant
// for the subject to read, and are erased with the subject.
func testProtected(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutProtected(ctx, Grant(t, "a", policy.Collect), []portrait.ProtectedValue{
			{Pseudonym: "a", Attribute: "sex", Sealed: []byte("f")}, {Pseudonym: "a", Attribute: "age_band", Sealed: []byte("30-39")},
		})
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutProtected(ctx, Grant(t, "a", policy.Collect), []portrait.ProtectedValue{{Pseudonym: "a", Attribute: "sex", Sealed: []byte("m")}})
	})
	got, err := s.Protected(ctx, Grant(t, "a", policy.Read))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Attribute != "age_band" || got[1].Pseudonym != "a" || string(got[1].Sealed) != "m" {
		t.Errorf("protected of a = %+v", got)
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error { return tx.Erase(ctx, Grant(t, "a", policy.Erase)) })
	if got, _ := s.Protected(ctx, Grant(t, "a", policy.Read)); len(got) != 0 {
		t.Errorf("protected attributes survived erasure: %+v", got) // SR-3
	}
}

// Invariant 3: Update commits everything or nothing, on error and on panic.
func testUpdateRollsBack(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if _, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, "a", "", 0)}); err != nil {
			return err
		}
		return fmt.Errorf("later step: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Errorf("Update returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if p := recover(); p != "panic in fn" {
				t.Errorf("recovered %v, want fn's panic re-raised", p)
			}
		}()
		s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, "a", "", 1)})
			panic("panic in fn")
		})
	}()
	if n := len(events(t, s, "a")); n != 0 {
		t.Errorf("rolled-back updates left %d events", n)
	}
	// The store is usable after a panic.
	insert(t, s, event(t, "a", "", 2))
	if n := len(events(t, s, "a")); n != 1 {
		t.Errorf("after a panic an update stored %d events, want 1", n)
	}
}

// An Update called with the ctx handed to an Update's function, however
// deep, fails at once with guard.ErrNestedUpdate instead of waiting for
// the transaction it runs in; the outer one decides what to do with the
// error, and commits. An Update on the same store with a ctx that does
// not come from inside one runs, as before.
func testNestedUpdateRefused(t *testing.T, s portrait.Store) {
	outer := context.Background()
	var inner error
	err := s.Update(outer, func(ctx context.Context, tx portrait.Tx) error {
		deeper := context.WithValue(ctx, struct{}{}, "callee")
		inner = s.Update(deeper, func(ctx context.Context, tx portrait.Tx) error {
			return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("inner")})
		})
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("outer")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inner, guard.ErrNestedUpdate) || portrait.ErrorCode(inner) != portrait.EINTERNAL {
		t.Errorf("nested update: %v, want guard.ErrNestedUpdate", inner)
	}
	got, err := s.Subjects(outer, []portrait.Pseudonym{"outer", "inner"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["outer"]; !ok {
		t.Error("the outer update was not committed")
	}
	if _, ok := got["inner"]; ok {
		t.Error("the nested update was committed")
	}
	// The mark does not outlive the function: the ctx outside is clean.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("after")})
	})
}

// Invariant 3 (fail closed): when the audit append fails, the events
// written in the same Update are not stored.
func testFailedLogAppendRollsBack(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if _, err := tx.InsertEvents(ctx, []portrait.StoredEvent{event(t, "a", "k", 0)}); err != nil {
			return err
		}
		// Index 5 of an empty log: the append is refused.
		return tx.AppendLog(ctx, []portrait.LogEntry{{Index: 5, Data: []byte("ingest"), Hashes: make([]byte, 32)}})
	})
	wantCode(t, "append past the end", err, portrait.ECONFLICT)
	if n := len(events(t, s, "a")); n != 0 {
		t.Errorf("events survived a failed audit append: %d", n)
	}
	if got := insert(t, s, event(t, "a", "k", 0)); !got[0] {
		t.Errorf("the rolled-back event's idempotency key was kept")
	}
	if n, _ := s.LogSize(ctx); n != 0 {
		t.Errorf("log size %d after a failed append", n)
	}
}
