package derive_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// scanCounter counts a store's batch reads and EventsFor reads.
type scanCounter struct {
	portrait.Store
	scans, eventsFor atomic.Int64
}

func (s *scanCounter) ScanEvents(ctx context.Context, grants []policy.Grant, since time.Time, into *portrait.EventPage) error {
	s.scans.Add(1)
	return s.Store.ScanEvents(ctx, grants, since, into)
}

func (s *scanCounter) EventsFor(ctx context.Context, grants []policy.Grant, since time.Time) (map[portrait.Pseudonym][]portrait.StoredEvent, error) {
	s.eventsFor.Add(1)
	return s.Store.EventsFor(ctx, grants, since)
}

// A batch run reads its events through the batch read (ScanEvents) on
// both engines, never through EventsFor, and stores and records exactly
// the golden output.
func TestBatchReadsThroughScan(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		c := &scanCounter{Store: e.store}
		e.store = c
		checkGolden(t, goldenRuns(t, e))
		if c.scans.Load() == 0 || c.eventsFor.Load() != 0 {
			t.Errorf("batch runs read %d pages through ScanEvents and %d through EventsFor; want all through ScanEvents", c.scans.Load(), c.eventsFor.Load())
		}
	})
}
