package guard

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// EventScanner is the batch read of events an engine may offer
// (sqlite/scan.go, postgres/scan.go): EventsFor's read, into a page's
// reused buffers instead of a fresh map of fresh events.
type EventScanner interface {
	ScanEvents(ctx context.Context, page *portrait.EventPage, since time.Time) error
}

// ScanEvents reads into the page the events since since of the grants'
// subjects, as EventsFor does: every grant must allow reading its
// subject's data, or nothing is read. The page is Reset to the grants'
// subjects, in grant order, each once; a refused page is left empty. An engine without the batch read
// is an error; a caller that may meet one reads through EventsFor.
func (s *Store) ScanEvents(ctx context.Context, grants []policy.Grant, since time.Time, into *portrait.EventPage) error {
	subjects, _, err := page("read events", grants)
	if err != nil {
		into.Reset(nil) // nothing of an earlier read is handed back either
		into.Done()
		return err
	}
	sc, ok := s.Engine.(EventScanner)
	if !ok {
		return portrait.Errorf(portrait.EINTERNAL, "read events: the store has no batch read")
	}
	into.Reset(subjects)
	if len(subjects) == 0 {
		into.Done()
		return nil
	}
	return sc.ScanEvents(ctx, into, since)
}
