package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// BenchmarkInsertEvents measures governed ingest: batches of 1,000 events
// of 200 sealed bytes each, one transaction per batch, reported in rows/s:
// with an idempotency key on every event (what a client that retries
// sends), and without (what `portrait load` sends). It closes s.
func BenchmarkInsertEvents(b *testing.B, s portrait.Store) {
	defer s.Close()
	for _, keyed := range []bool{true, false} {
		name := "keyless"
		if keyed {
			name = "keyed"
		}
		b.Run(name, func(b *testing.B) { insertEvents(b, s, keyed) })
	}
}

func insertEvents(b *testing.B, s portrait.Store, keyed bool) {
	ctx := context.Background()
	const batch, subjects = 1000, 100
	grants := make([]policy.Grant, subjects)
	for i := range grants {
		grants[i] = Grant(b, portrait.Pseudonym(fmt.Sprintf("s%03d", i)), policy.Collect)
	}
	sealed := make([]byte, 200)
	rand.Read(sealed)
	evs := make([]portrait.StoredEvent, batch)
	now := time.Now().UTC()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		for i := range evs {
			g := grants[i%subjects]
			evs[i] = portrait.StoredEvent{Grant: g, Pseudonym: g.Pseudonym(), Type: "view", Time: now,
				Sealed: sealed, Expires: now.Add(24 * time.Hour)}
			if keyed {
				evs[i].Idem = fmt.Appendf(nil, "%d-%d", n, i)
			}
		}
		err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			_, err := tx.InsertEvents(ctx, evs)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkStates measures loading the governance state of 1,000
// subjects, each with a subject row, two consents and a suppression.
// It closes s.
func BenchmarkStates(b *testing.B, s portrait.Store) {
	defer s.Close()
	ctx := context.Background()
	ids := make([]portrait.Pseudonym, 1000)
	subs := make([]portrait.SubjectKey, len(ids))
	for i := range ids {
		ids[i] = portrait.Pseudonym(fmt.Sprintf("s%04d", i))
		subs[i] = portrait.SubjectKey{Pseudonym: portrait.Pseudonym(ids[i]), WrappedKey: []byte("key")}
	}
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.EnsureSubjects(ctx, subs); err != nil {
			return err
		}
		for _, p := range ids {
			for _, purpose := range []string{"personalization", "marketing"} {
				if err := tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: portrait.Pseudonym(p), Purpose: purpose, Status: policy.Granted, NoticeVersion: "v1", At: base}); err != nil {
					return err
				}
			}
			if err := tx.Suppress(ctx, portrait.Pseudonym(p), "fan", false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// States seeks each subject (= ANY); StatesRange reads the page's
	// range of each table (a batch derivation's page). The page is
	// every subject, in byte order.
	for _, read := range []struct {
		name string
		fn   func(context.Context, []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	}{{"any", s.States}, {"range", s.StatesRange}} {
		b.Run(read.name, func(b *testing.B) {
			for b.Loop() {
				states, err := read.fn(ctx, ids)
				if err != nil {
					b.Fatal(err)
				}
				if len(states) != len(ids) {
					b.Fatalf("got %d states", len(states))
				}
			}
			b.ReportMetric(float64(b.N*len(ids))/b.Elapsed().Seconds(), "subjects/s")
		})
	}
}
