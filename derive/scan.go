package derive

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// scanned is one worker's read of its run of a batch page: the page of
// events, and what decoding the run's events reuses. The worker's
// subjects hold it until each is opened (subject.openScanned); the last
// gives it back (free) for the next run.
type scanned struct {
	page   portrait.EventPage
	events []label.Event // the run's decoded events, each subject's a slice of it
	which  []int32       // parallel to events: which decoded fields (fieldCache) each has
	plain  []byte        // an event's plaintext, decoded before the next is opened into it
	fields fieldCache
	left   int // subjects still to open
}

// scans keeps the pages of runs done, for the next runs: a batch run has
// two pages of two runs or so in flight (one per CPU). It is a channel
// rather than a sync.Pool, which drops what it holds at every other
// collection, and a batch run collects often.
var scans = make(chan *scanned, 2*runtime.GOMAXPROCS(0))

// take returns a page kept in scans, or a new one.
func take() *scanned {
	select {
	case r := <-scans:
		return r
	default:
		return &scanned{}
	}
}

// free keeps r for a later run, unless enough are kept already.
func (r *scanned) free() {
	r.events, r.which = nil, nil
	select {
	case scans <- r:
	default:
	}
}

// scan reads the events of a batch run's subjects (Store.ScanEvents, the
// one batch read) into a page from scans, and hands each subject its
// events from its own window on (s.since).
func (e *Engine) scan(ctx context.Context, work []*subject, grants []policy.Grant, since time.Time) error {
	r := take()
	if err := e.store.ScanEvents(ctx, grants, since, &r.page); err != nil {
		r.free()
		return err
	}
	// The events are decoded into one slice for the run, not one per
	// subject. It is not reused: the subjects' labels are computed from
	// it while the next run is read.
	r.events = make([]label.Event, 0, r.page.Len())
	r.which = make([]int32, 0, r.page.Len())
	nc := &narrowCache{}
	r.left = 0
	for _, s := range work {
		i, ok := r.page.Index(s.ps)
		if !ok {
			continue // no grant to read its events: it has none here
		}
		evs := r.page.Of(int(i))
		if !s.since.IsZero() {
			// The page was read from its earliest window; this subject's
			// labels look back less far.
			from := s.since.UnixNano()
			evs = evs[sort.Search(len(evs), func(k int) bool { return evs[k].Time >= from }):]
		}
		s.scan, s.scanned, s.narrowed = r, evs, nc
		r.left++
	}
	if r.left == 0 {
		r.free()
	}
	return nil
}

// openScanned decrypts and decodes the events scan handed the subject,
// as open does EventsFor's, and gives the run's page back once the
// run's last subject has been opened.
func (s *subject) openScanned() error {
	r := s.scan
	defer func() {
		s.scan, s.scanned = nil, nil
		if r.left--; r.left == 0 {
			r.free()
		}
	}()
	at, ad := len(r.events), []byte(s.ps)
	for _, ev := range s.scanned {
		plain, err := s.cipher.OpenAppend(r.plain[:0], ev.Sealed, ad)
		if err != nil {
			return fmt.Errorf("open event %d of %s: %w", ev.ID, s.ps, err)
		}
		r.plain = plain // decoding copies what it keeps (label.DecodeFields, fieldCache)
		f, which, err := r.fields.decode(plain)
		if err != nil {
			return fmt.Errorf("decode event %d of %s: %w", ev.ID, s.ps, err)
		}
		r.events = append(r.events, label.Event{Type: ev.Type, Time: time.Unix(0, ev.Time).UTC(), Fields: f})
		r.which = append(r.which, which)
		s.mark.ID = max(s.mark.ID, ev.ID)
	}
	s.events = r.events[at:len(r.events):len(r.events)]
	s.which = r.which[at:len(r.which):len(r.which)]
	return nil
}

// fieldCache decodes event fields (label.DecodeFields) and keeps what it
// decoded by the plaintext it came from: events with the same fields and
// values — a view of one category, a purchase of one amount — share one
// decoded map instead of a map of boxed values each. The maps are only
// read (label.Rule.Eval, the RFM and segment inputs, subject.batchView,
// which narrows into new maps), and live as long as the batch run's
// values computed from them. It keeps at most maxCached plaintexts.
//
// Each decoded map has a number, which no other map the cache made has
// (numbers are not reused when the cache is emptied): narrowCache keeps
// narrowed maps by it.
type fieldCache struct {
	m    map[string]decoded
	next int32
}

type decoded struct {
	f     map[string]any
	which int32
}

const maxCached = 4096

func (c *fieldCache) decode(plain []byte) (map[string]any, int32, error) {
	if d, ok := c.m[string(plain)]; ok { // no allocation for the lookup
		return d.f, d.which, nil
	}
	f, err := label.DecodeFields(plain)
	if err != nil {
		return nil, 0, err
	}
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[string]decoded, 256)
	}
	c.next++
	c.m[string(plain)] = decoded{f, c.next}
	return f, c.next, nil
}

// narrowCache is subject.batchView's narrowed maps for one run of a
// page: the fields of one decoded map (fieldCache) that one grant's
// fields cover, made once per run instead of once per event and label.
// Like the decoded maps, they are only read.
type narrowCache struct {
	sets map[string]int32 // a grant's fields, as fieldsKey spells them → a number
	m    map[[2]int32]map[string]any
}

// fieldsKey spells the fields a grant covers: nil covers every field,
// and is told from a list, even an empty one.
func fieldsKey(g policy.Grant) string {
	fs := g.Fields()
	if fs == nil {
		return "*"
	}
	return "=" + strings.Join(fs, "\x00")
}

// set returns the number of g's fields in c.
func (c *narrowCache) set(g policy.Grant) int32 {
	k := fieldsKey(g)
	n, ok := c.sets[k]
	if !ok {
		if c.sets == nil {
			c.sets, c.m = map[string]int32{}, map[[2]int32]map[string]any{}
		}
		n = int32(len(c.sets))
		c.sets[k] = n
	}
	return n
}

// narrow returns the fields of f (decoded map number which) that g
// (fields number set) covers.
func (c *narrowCache) narrow(f map[string]any, which, set int32, g policy.Grant) map[string]any {
	k := [2]int32{which, set}
	if out, ok := c.m[k]; ok {
		return out
	}
	out := make(map[string]any, len(f))
	for name, v := range f {
		if g.Covers(name) {
			out[name] = v
		}
	}
	c.m[k] = out
	return out
}
