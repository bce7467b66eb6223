package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// testEndSessions: a session ended under its id, or under its subject's
// id, is ended for sessions issued up to the given time and for no
// other; ending again never shortens an earlier end; a record past its
// keep time is pruned by the next EndSessions.
func testEndSessions(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	one, subj, other, old := []byte("session-one"), []byte("subject-a"), []byte("session-two"), []byte("session-old")
	ended := func(issued time.Time, ids ...[]byte) bool {
		t.Helper()
		ok, err := s.SessionEnded(ctx, issued, ids...)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if ended(now, one, subj) {
		t.Fatal("a session is ended before anything was ended")
	}
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EndSessions(ctx, one, now.Add(time.Hour), now.Add(time.Hour))
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EndSessions(ctx, subj, now, now.Add(24*time.Hour))
	})
	// Ending subj again with an earlier time keeps the later one.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EndSessions(ctx, subj, now.Add(-time.Hour), now)
	})
	for _, tc := range []struct {
		name   string
		issued time.Time
		ids    [][]byte
		want   bool
	}{
		{"the ended session", now, [][]byte{one}, true},
		{"the ended session, among others", now, [][]byte{other, one}, true},
		{"another session", now, [][]byte{other}, false},
		{"the subject's session issued before the end", now.Add(-time.Minute), [][]byte{other, subj}, true},
		{"the subject's session issued at the end", now, [][]byte{other, subj}, true},
		{"the subject's session issued after the end", now.Add(time.Second), [][]byte{other, subj}, false},
	} {
		if got := ended(tc.issued, tc.ids...); got != tc.want {
			t.Errorf("%s: ended = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A record whose keep time has passed goes at the next EndSessions;
	// nothing it ended could still be valid.
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EndSessions(ctx, old, now, now.Add(-time.Hour))
	})
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EndSessions(ctx, other, now, now.Add(time.Hour))
	})
	if ended(now.Add(-2*time.Hour), old) {
		t.Error("an ended-session record past its keep time was not pruned")
	}
	if !ended(now, one) {
		t.Error("pruning removed a record still in force")
	}
}

// testTextRefused: text a PostgreSQL text column cannot hold (a NUL byte,
// bytes that are not UTF-8) is refused by both engines alike, with
// EINVALID, and nothing is written.
func testTextRefused(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	update(t, s, func(ctx context.Context, tx portrait.Tx) error {
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{subject("a")})
	})
	consent := portrait.ConsentRecord{Pseudonym: "a", Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1", Channel: "web", At: base}
	bad := func(r portrait.ConsentRecord, f func(*portrait.ConsentRecord)) portrait.ConsentRecord {
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context, tx portrait.Tx) error
	}{
		{"consent channel NUL", func(ctx context.Context, tx portrait.Tx) error {
			return tx.AppendConsent(ctx, bad(consent, func(r *portrait.ConsentRecord) { r.Channel = "a\x00b" }))
		}},
		{"consent user agent NUL", func(ctx context.Context, tx portrait.Tx) error {
			return tx.AppendConsent(ctx, bad(consent, func(r *portrait.ConsentRecord) { r.UserAgent = "a\x00b" }))
		}},
		{"consent channel not UTF-8", func(ctx context.Context, tx portrait.Tx) error {
			return tx.AppendConsent(ctx, bad(consent, func(r *portrait.ConsentRecord) { r.Channel = "a\xffb" }))
		}},
		{"item id", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutItems(ctx, []portrait.Item{{ID: "a\x00b", Categories: []string{"x"}, Updated: base}})
		}},
		{"item attribute", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutItems(ctx, []portrait.Item{{ID: "i", Categories: []string{"x"}, Attributes: map[string]any{"k": []any{"a\x00"}}, Updated: base}})
		}},
		{"suspension reason", func(ctx context.Context, tx portrait.Tx) error {
			return tx.Suspend(ctx, policy.Suspension{Kind: "usecase", ID: "u", Reason: "a\x00b", By: "x", At: base})
		}},
		{"case reason", func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutCase(ctx, portrait.Case{ID: "c", Pseudonym: "a", Type: "erasure", Status: "refused", Reason: "a\x00b", Created: base, Deadline: base})
		}},
	} {
		err := s.Update(ctx, tc.fn)
		if portrait.ErrorCode(err) != portrait.EINVALID {
			t.Errorf("%s: %v, want EINVALID", tc.name, err)
		}
	}
	if items, err := s.Items(ctx); err != nil || len(items) != 0 {
		t.Errorf("items after refusals: %v %v", items, err)
	}
	if sus, err := s.Suspensions(ctx); err != nil || len(sus) != 0 {
		t.Errorf("suspensions after refusals: %v %v", sus, err)
	}
	if cs, err := s.Cases(ctx, ""); err != nil || len(cs) != 0 {
		t.Errorf("cases after refusals: %v %v", cs, err)
	}
}

// BenchmarkSessionEnded measures the check every request with a session
// now makes: two ids (the session and its subject) against a table of
// 10,000 ended sessions, none of which matches. It closes s.
func BenchmarkSessionEnded(b *testing.B, s portrait.Store) {
	defer s.Close()
	ctx := context.Background()
	now := time.Now()
	err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		for i := range 10_000 {
			if err := tx.EndSessions(ctx, []byte(fmt.Sprintf("ended-%05d", i)), now, now.Add(time.Hour)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	session, subject := []byte("live-session"), []byte("live-subject")
	for b.Loop() {
		if ended, err := s.SessionEnded(ctx, now, session, subject); err != nil || ended {
			b.Fatal(ended, err)
		}
	}
}
