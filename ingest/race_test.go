package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

// Invariant 4: two requests that both bring a subject the store does not
// have yet each make a data key; the store keeps the first, so the other
// request's events must be sealed with that key, not its own, or they
// could never be read. Each round races two requests for a new subject
// and opens every stored event with the stored key (about one round in
// five lost an event before the commit re-read new subjects).
func TestNewSubjectRace(t *testing.T) {
	onEachEngine(t, newSubjectRace)
}

func newSubjectRace(t *testing.T, e *env) {
	ctx := context.Background()
	bad := 0
	for round := range 100 {
		subject := fmt.Sprintf("new-%d", round)
		var wg sync.WaitGroup
		for w := range 2 {
			wg.Go(func() {
				items := []ingest.Item{{Event: portrait.Event{SubjectID: subject, Type: "view", Time: e.now.Add(-time.Duration(w) * time.Second),
					Fields: map[string]any{"item": "a", "category": "sports"}}}}
				if _, _, err := e.in.Ingest(ctx, operator, items); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		ps := e.keys.Pseudonym(subject)
		d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
		evs, _ := e.st.Events(ctx, d.Grant, time.Time{})
		subs, _ := e.st.Subjects(ctx, []portrait.Pseudonym{ps})
		c, err := e.keys.Open(subs[ps])
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if _, err := c.Open(ev.Sealed, []byte(ps)); err != nil {
				bad++
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d stored events cannot be opened with their subject's stored key", bad)
	}
}
