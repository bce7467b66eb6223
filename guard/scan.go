package guard

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// ScanEvents reads into the page the events since since of the grants'
// subjects, as EventsFor does: every grant must allow reading its
// subject's data, or nothing is read. The page is Reset to the grants'
// subjects, in grant order, each once; a refused page is left empty.
func (s *Store) ScanEvents(ctx context.Context, grants []policy.Grant, since time.Time, into *portrait.EventPage) error {
	subjects, _, err := page("read events", grants)
	if err != nil {
		into.Reset(nil) // nothing of an earlier read is handed back either
		into.Done()
		return err
	}
	into.Reset(subjects)
	if len(subjects) == 0 {
		into.Done()
		return nil
	}
	return s.Engine.ScanEvents(ctx, into, since)
}
