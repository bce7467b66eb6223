package derive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// PageSize is how many subjects one read page and one store
	// transaction (with its audit record) hold; 500 by default.
	PageSize int
	Logger   *slog.Logger
}

// Summary counts what a derivation did.
type Summary struct {
	Subjects  int `json:"subjects"`
	Events    int `json:"events"`
	Written   int `json:"written"`   // label values stored
	Removed   int `json:"removed"`   // labels without a lawful basis, suppressed or no longer computable: deleted if stored
	Unchanged int `json:"unchanged"` // incremental: inputs unchanged, value kept
	Failed    int `json:"failed"`    // a value that could not be computed for one subject (e.g. a missing feature)
	// Failures says why, for the first MaxFailures failed values: one
	// subject's failure is counted and reported here, and the run goes on.
	Failures []string      `json:"failures,omitempty"`
	Errors   []string      `json:"errors,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	// Compute is the time spent reading states and inputs, evaluating and
	// sealing; Store the time in write transactions (values, deletions and
	// the audit record, committed). They tell apart where a slow
	// derivation spends its time.
	Compute time.Duration `json:"compute_ns"`
	Store   time.Duration `json:"store_ns"`
}

func (s *Summary) add(o Summary) {
	s.Subjects += o.Subjects
	s.Events += o.Events
	s.Written += o.Written
	s.Removed += o.Removed
	s.Unchanged += o.Unchanged
	s.Failed += o.Failed
	s.addFailures(o.Failures...)
	s.Errors = append(s.Errors, o.Errors...)
	s.Elapsed += o.Elapsed
	s.Compute += o.Compute
	s.Store += o.Store
}

// MaxFailures bounds the reasons a Summary keeps; Failed counts them all.
const MaxFailures = 20

func (s *Summary) addFailures(f ...string) {
	s.Failures = append(s.Failures, f[:min(len(f), max(0, MaxFailures-len(s.Failures)))]...)
}

// Status is what the engine has done since it started, for the API.
type Status struct {
	Labels       int       `json:"labels"` // declared labels
	BatchRuns    int       `json:"batch_runs"`
	LastBatchAt  time.Time `json:"last_batch_at,omitzero"`
	LastBatch    *Summary  `json:"last_batch,omitempty"`
	Incremental  Summary   `json:"incremental"` // cumulative
	Calls        int       `json:"incremental_calls"`
	PopulationAt time.Time `json:"population_model_at,omitzero"` // when RFM and segment models were last fitted
}

// Stored is a label value as sealed in the store: the label.Value with
// its provenance, the RFM scores of an RFM label, and the newest event id
// it has read, which tells an incremental update what is new.
type Stored struct {
	label.Value
	RFM  *label.RFMScore `json:"rfm,omitempty"`
	Seen int64           `json:"seen_event,omitempty"`
}

// AD is the additional data a label value of subject pseudonym is sealed with.
func AD(pseudonym portrait.Pseudonym, labelID string) []byte { return keys.LabelAD(pseudonym, labelID) }

// Open decrypts one stored label value with the subject's cipher.
func Open(c *keys.Cipher, v portrait.LabelValue) (Stored, error) {
	var s Stored
	plain, err := c.Open(v.Sealed, AD(v.Pseudonym, v.Label))
	if err != nil {
		return s, fmt.Errorf("open label %s of %s: %w", v.Label, v.Pseudonym, err)
	}
	if err := json.Unmarshal(plain, &s); err != nil {
		return s, fmt.Errorf("decode label %s of %s: %w", v.Label, v.Pseudonym, err)
	}
	return s, nil
}

// Engine derives and stores labels. It is safe for concurrent use.
type Engine struct {
	store  Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	opts   Options
	caller policy.Caller

	compMu sync.Mutex
	comp   atomic.Pointer[compiled]
	pop    atomic.Pointer[population]

	mu     sync.Mutex
	status Status

	mem    memos       // incremental: what each subject's last derivation read
	opened keys.Opened // incremental: subjects' opened keys, per generation

	batchFence atomic.Pointer[Fence] // FenceBatch
}

// New returns an Engine over store. The catalog is the point's, read at
// each call, so a reloaded catalog (a new label version) takes effect on
// the next derivation.
func New(d Deps, opts Options) (*Engine, error) {
	store, point, ledger, ks, log := d.Store, d.Point, d.Ledger, d.Keys, d.Log
	if store == nil || point == nil || ledger == nil || ks == nil || log == nil {
		return nil, errors.New("derive: store, decision point, ledger, keyring and audit log are all required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Engine{store: store, point: point, ledger: ledger, keys: ks, log: log, opts: opts,
		caller: policy.Caller{Role: policy.System, ID: "derive"}}, nil
}

func (e *Engine) now() time.Time { return e.opts.Now().UTC().Truncate(time.Microsecond) }

// Status returns the engine's counters.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	if c, err := e.compiled(); err == nil {
		s.Labels = len(c.entries)
	}
	if p := e.pop.Load(); p != nil {
		s.PopulationAt = p.at
	}
	return s
}

// entry is one declared label, compiled, with what it reads.
type entry struct {
	l       *catalog.Label
	rule    *label.Rule // rule and score labels
	fields  []string    // declared fields it reads: the fields its grant asks for
	profile []string    // profile fields it reads as values
	types   []string    // event types it reads; "*" is any
	window  time.Duration
	// RFM labels: the purchase event type and the amount field.
	rfmType, rfmAmount string
}

func (en *entry) population() bool {
	return en.l.Kind == catalog.KindRFM || en.l.Kind == catalog.KindSegment || en.l.Kind == catalog.KindBGNBD
}

func (en *entry) readsEvents() bool { return len(en.types) > 0 }

// reads reports whether an event of type typ with fields could change the label.
func (en *entry) reads(typ string, fields map[string]any) bool {
	if slices.Contains(en.types, "*") || slices.Contains(en.types, typ) {
		return true
	}
	for _, f := range en.profile {
		if _, ok := fields[f]; ok {
			return true
		}
	}
	return false
}

// compiled is a catalog's labels, compiled once (label.Compile).
type compiled struct {
	cat     *catalog.Catalog
	entries []*entry
	err     error
}

func (e *Engine) compiled() (*compiled, error) {
	cat := e.point.Catalog()
	if c := e.comp.Load(); c != nil && c.cat == cat {
		return c, c.err
	}
	e.compMu.Lock()
	defer e.compMu.Unlock()
	if c := e.comp.Load(); c != nil && c.cat == cat {
		return c, c.err
	}
	c := compileCatalog(cat)
	e.comp.Store(c)
	return c, c.err
}

func compileCatalog(cat *catalog.Catalog) *compiled {
	c := &compiled{cat: cat}
	var errs []error
	for i := range cat.Labels {
		l := &cat.Labels[i]
		en := &entry{l: l, window: time.Duration(l.Window)}
		for _, name := range l.Fields() {
			if cat.Field(name) != nil {
				en.fields = append(en.fields, name)
			}
		}
		switch l.Kind {
		case catalog.KindRFM:
			if err := en.rfmInputs(cat); err != nil {
				errs = append(errs, err)
				continue
			}
		case catalog.KindBGNBD:
			if cat.EventType(l.Event) == nil || l.Horizon <= 0 {
				errs = append(errs, &label.CheckError{Label: l.ID, Requirement: "LP-1", Msg: "a forecast needs a declared purchase event type and a horizon"})
				continue
			}
			en.types = []string{l.Event}
		case catalog.KindSegment:
			if len(l.Features) == 0 || l.K < 2 {
				errs = append(errs, &label.CheckError{Label: l.ID, Requirement: "LP-1", Msg: "a segment needs declared numeric features and k >= 2"})
				continue
			}
			for _, f := range l.Features {
				if fd := cat.Field(f); fd != nil && fd.Profile {
					en.profile = append(en.profile, f)
				}
			}
			en.types = eventTypesWith(cat, l.Features)
		default:
			r, err := label.Compile(cat, l)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			en.rule = r
			en.profile, en.types = r.Inputs()
		}
		c.entries = append(c.entries, en)
	}
	c.err = errors.Join(errs...)
	return c
}

// rfmInputs finds an RFM label's purchase event type (an event type named
// in its inputs, or the one event type carrying its amount field, or
// "purchase") and its amount field (its first number input).
func (en *entry) rfmInputs(cat *catalog.Catalog) error {
	l := en.l
	for _, in := range l.Inputs {
		if f := cat.Field(in); f != nil && f.Type == catalog.TypeNumber && en.rfmAmount == "" {
			en.rfmAmount = in
		} else if cat.EventType(in) != nil && en.rfmType == "" {
			en.rfmType = in
		}
	}
	if en.rfmAmount == "" {
		return &label.CheckError{Label: l.ID, Requirement: "LP-1", Msg: "an RFM label needs a number input holding the purchase amount, e.g. inputs: [amount]"}
	}
	if en.rfmType == "" {
		types := eventTypesWith(cat, []string{en.rfmAmount})
		switch {
		case len(types) == 1:
			en.rfmType = types[0]
		case slices.Contains(types, "purchase"):
			en.rfmType = "purchase"
		default:
			return &label.CheckError{Label: l.ID, Requirement: "LP-1",
				Msg: fmt.Sprintf("cannot tell which event type is the purchase (%v carry %q); name it in inputs", types, en.rfmAmount)}
		}
	}
	en.types = []string{en.rfmType}
	return nil
}

// eventTypesWith lists the event types that carry any of fields.
func eventTypesWith(cat *catalog.Catalog, fields []string) []string {
	var out []string
	for _, et := range cat.EventTypes {
		for _, f := range fields {
			if slices.Contains(et.Fields, f) {
				out = append(out, et.ID)
				break
			}
		}
	}
	return out
}

// decide returns a Derive grant for the label from the first of its
// purposes that allows it, or the reasons every purpose refused. The label
// is named in the request so that a suppressed label is refused (LP-3).
func (e *Engine) decide(st *policy.State, en *entry) (policy.Grant, []policy.Reason) {
	var why []policy.Reason
	for _, p := range en.l.Purposes {
		d := e.point.Decide(policy.Request{State: st, Purpose: p, Fields: en.fields, Labels: []string{en.l.ID},
			Action: policy.Derive, Caller: e.caller})
		if d.Allow {
			return d.Grant, nil
		}
		why = append(why, d.Reasons...)
	}
	return policy.Grant{}, why
}

// subject is one subject's derivation in progress.
type subject struct {
	ps                portrait.Pseudonym
	subj              portrait.SubjectKey
	cipher            *keys.Cipher
	grants            map[*entry]policy.Grant
	remove            []string
	events            []label.Event
	ids               []int64 // event ids, parallel to events
	since             time.Time
	rawEvents         []portrait.StoredEvent // as fetched, until open
	rawProfile        []portrait.ProfileValue
	rawLabels         []portrait.LabelValue
	seen              int64
	profile           map[string]any
	updated           map[string]time.Time // profile field → last update
	stored            map[string]Stored
	values            []portrait.LabelValue
	fresh             []Stored // the values sealed into values, for the memo
	memo              *memo    // incremental: what the last derivation read, at the current generation
	horizon           int64    // incremental: the events read's horizon (Store.EventsAfter)
	mark              portrait.EventMark
	expires           time.Time            // the earliest expiry of the events held
	added             []int64              // incremental with a memo: ids of the events read now, not held before
	arrived           []label.Event        // those events, parallel to added
	tail              []label.Event        // incremental: events not yet merged into events, in arrival order (fold.go)
	tailIDs           []int64              // their ids, parallel
	rewritten         []int64              // the ids of added that replaced an event held (indexes drop the old one)
	views             map[*entry]*narrowed // incremental: the labels' narrowed events, for the memo
	gen               int64                // the governance generation the subject's states were read at
	ungranted         int                  // the first ungranted of remove are labels without a lawful basis
	incremental       bool
	failed, unchanged int
	failures          []string
	pop               []popIn              // batch: population-label inputs, for the collector (collector.addPage)
	run               *keys.Run            // batch: the page's opened keys (pending.run)
	scratch           []label.Event        // batch: batchView's narrowed events, reused label after label
	scan              *scanned             // batch: the run's page of events (scan.go), until open
	scanned           []portrait.PageEvent // batch: the subject's events in it
	which             []int32              // batch, scanned: which decoded fields each event has, parallel to events
	narrowed          *narrowCache         // batch, scanned: the run's narrowed fields
}

// fail records that label (all labels if "") could not be derived for the
// subject, and why; the run goes on with the other subjects.
func (s *subject) fail(label string, err error) {
	s.failed++
	if len(s.failures) < MaxFailures {
		what := "all labels"
		if label != "" {
			what = "label " + label
		}
		s.failures = append(s.failures, fmt.Sprintf("subject %s, %s: %v", s.ps, what, err))
	}
}

// reads returns the grant a subject's events are read through and the
// earliest time any of its labels looks back to, zero for all time:
// events outside every label's window are not read at all.
func (s *subject) reads(now time.Time, incremental bool) (policy.Grant, time.Time) {
	var evGrant policy.Grant
	var since time.Time
	all := false
	for en, g := range s.grants {
		if !en.readsEvents() && len(en.profile) == 0 {
			continue
		}
		evGrant = g
		if en.window <= 0 {
			all = true
		} else if from := now.Add(-en.window); since.IsZero() || from.Before(since) {
			since = from
		}
	}
	if incremental {
		// Profile fields read as values change through events too, and a
		// new event must be seen whatever its type.
		for _, g := range s.grants {
			evGrant = g
			all = true
			break
		}
	}
	if all {
		since = time.Time{}
	}
	return evGrant, since
}

// fetch reads the stored inputs of a run of subjects with one query per
// kind (events, profile values and, when incremental, stored labels): a
// query per subject and kind was most of a batch run's time. Each subject
// is read through grants its own labels were given, as it was one by
// one; only the fetching is shared. The rows are decrypted by open.
func (e *Engine) fetch(ctx context.Context, work []*subject, now time.Time, incremental bool) error {
	var evGrants, profGrants, labelGrants []policy.Grant
	var since time.Time
	all := false
	for _, s := range work {
		if len(s.grants) == 0 {
			continue
		}
		g, from := s.reads(now, incremental)
		if g.Valid() {
			evGrants = append(evGrants, g)
			s.since = from
			if from.IsZero() {
				all = true
			} else if since.IsZero() || from.Before(since) {
				since = from
			}
		}
		// Profile values, read through the grant of every label that reads
		// them: a field comes back when one of those grants covers it.
		for en, g := range s.grants {
			if len(en.profile) > 0 {
				profGrants = append(profGrants, g)
			}
		}
		if incremental && s.memo == nil {
			for _, g := range s.grants {
				labelGrants = append(labelGrants, g)
				break
			}
		}
	}
	if all {
		since = time.Time{}
	}
	var evs map[portrait.Pseudonym][]portrait.StoredEvent
	var profs map[portrait.Pseudonym][]portrait.ProfileValue
	var lvs map[portrait.Pseudonym][]portrait.LabelValue
	var err error
	var horizon int64
	if len(evGrants) > 0 {
		if incremental {
			evs, horizon, err = e.eventsAfter(ctx, work, evGrants)
		} else {
			err = e.scan(ctx, work, evGrants, since) // batch: into a reused page (scan.go)
		}
		if err != nil {
			return fmt.Errorf("read events of %d subjects: %w", len(evGrants), err)
		}
	}
	if len(profGrants) > 0 {
		if profs, err = e.store.ProfilesFor(ctx, profGrants); err != nil {
			return fmt.Errorf("read profiles of %d subjects: %w", len(work), err)
		}
	}
	if len(labelGrants) > 0 {
		if lvs, err = e.store.LabelsFor(ctx, labelGrants); err != nil {
			return fmt.Errorf("read labels of %d subjects: %w", len(labelGrants), err)
		}
	}
	for _, s := range work {
		s.rawEvents, s.rawProfile, s.rawLabels = evs[s.ps], profs[s.ps], lvs[s.ps]
		s.horizon = horizon
		if !s.since.IsZero() {
			// The page was read from its earliest window; this subject's
			// labels look back less far.
			i := sort.Search(len(s.rawEvents), func(i int) bool { return !s.rawEvents[i].Time.Before(s.since) })
			s.rawEvents = s.rawEvents[i:]
		}
	}
	return nil
}

// eventsAfter reads, for an incremental page, each subject's events
// committed since its memo's mark, and all of them for a subject without
// a memo.
func (e *Engine) eventsAfter(ctx context.Context, work []*subject, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.StoredEvent, int64, error) {
	var after map[portrait.Pseudonym]portrait.EventMark
	for _, s := range work {
		if s.memo != nil {
			if after == nil {
				after = make(map[portrait.Pseudonym]portrait.EventMark, len(work))
			}
			after[s.ps] = s.memo.mark
		}
	}
	return e.store.EventsAfter(ctx, grants, after)
}

// open decrypts and decodes what fetch read of the subject. With a memo,
// what fetch read is what is new since it (an event read before may come
// again: it replaces the one held if it changed, as after the retention
// sweep), merged into the events it holds.
func (s *subject) open() error {
	if s.scan != nil {
		if err := s.openScanned(); err != nil {
			return err
		}
	} else if s.memo != nil {
		s.mark, s.expires = s.memo.mark, s.memo.expires
		s.events, s.ids = s.memo.events, s.memo.ids
		s.tail, s.tailIDs = s.memo.tail, s.memo.tailIDs
		if s.appendsOnly() {
			return s.openTail()
		}
		if !s.materialize() && len(s.rawEvents) > 0 {
			// The memo's slices are shared: change copies, made once
			// with room for what is read now.
			s.events, s.ids = withRoom(s.events, len(s.rawEvents)), withRoom(s.ids, len(s.rawEvents))
		}
	} else {
		s.events = make([]label.Event, 0, len(s.rawEvents))
		s.ids = make([]int64, 0, len(s.rawEvents))
	}
	for _, ev := range s.rawEvents {
		le, err := s.openEvent(ev)
		if err != nil {
			return err
		}
		if s.memo == nil {
			s.events, s.ids = append(s.events, le), append(s.ids, ev.ID) // read in time order
			continue
		}
		if i := slices.Index(s.ids, ev.ID); i >= 0 {
			if s.events[i].Type == le.Type && s.events[i].Time.Equal(le.Time) && reflect.DeepEqual(s.events[i].Fields, le.Fields) {
				continue // read again (PostgreSQL), unchanged
			}
			s.events, s.ids = slices.Delete(s.events, i, i+1), slices.Delete(s.ids, i, i+1) // rewritten: replaced
			s.rewritten = append(s.rewritten, ev.ID)
		}
		s.added, s.arrived = append(s.added, ev.ID), append(s.arrived, le)
		i := sort.Search(len(s.events), func(i int) bool {
			return s.events[i].Time.After(le.Time) || s.events[i].Time.Equal(le.Time) && s.ids[i] > ev.ID
		})
		s.events, s.ids = slices.Insert(s.events, i, le), slices.Insert(s.ids, i, ev.ID)
	}
	return s.openRest()
}

// openEvent decrypts and decodes one event read, and moves the subject's
// mark and expiry past it.
func (s *subject) openEvent(ev portrait.StoredEvent) (label.Event, error) {
	plain, err := s.cipher.Open(ev.Sealed, []byte(s.ps))
	if err != nil {
		return label.Event{}, fmt.Errorf("open event %d of %s: %w", ev.ID, s.ps, err)
	}
	f, err := label.DecodeFields(plain)
	if err != nil {
		return label.Event{}, fmt.Errorf("decode event %d of %s: %w", ev.ID, s.ps, err)
	}
	if !ev.Expires.IsZero() && (s.expires.IsZero() || ev.Expires.Before(s.expires)) {
		s.expires = ev.Expires
	}
	s.mark.ID = max(s.mark.ID, ev.ID)
	return label.Event{Type: ev.Type, Time: ev.Time, Fields: f}, nil
}

// openRest is open after the events: the mark's horizon, the profile
// values and the stored labels.
func (s *subject) openRest() error {
	s.mark.Horizon = s.horizon
	s.seen = s.mark.ID
	for _, v := range s.rawProfile {
		plain, err := s.cipher.Open(v.Sealed, keys.ProfileAD(s.ps, v.Field))
		if err != nil {
			return fmt.Errorf("open profile field %s of %s: %w", v.Field, s.ps, err)
		}
		var x any
		if err := json.Unmarshal(plain, &x); err != nil {
			return fmt.Errorf("decode profile field %s of %s: %w", v.Field, s.ps, err)
		}
		if s.profile == nil {
			s.profile, s.updated = map[string]any{}, map[string]time.Time{}
		}
		s.profile[v.Field], s.updated[v.Field] = x, v.Updated
	}
	if s.memo != nil {
		s.stored = s.memo.stored // never changed: keep makes a new map
	}
	if s.rawLabels != nil {
		s.stored = make(map[string]Stored, len(s.rawLabels))
	}
	for _, lv := range s.rawLabels {
		v, err := Open(s.cipher, lv)
		if err != nil {
			// An unreadable value is recomputed, not fatal.
			continue
		}
		s.stored[lv.Label] = v
	}
	// Decoded: the sealed rows are not needed any more.
	s.rawEvents, s.rawProfile, s.rawLabels = nil, nil, nil
	return nil
}

// profileFor returns the subject's profile fields the grant covers, nil
// if none.
func (s *subject) profileFor(g policy.Grant) map[string]any {
	var prof map[string]any
	for k, v := range s.profile {
		if g.Covers(k) {
			if prof == nil {
				prof = make(map[string]any, len(s.profile))
			}
			prof[k] = v
		}
	}
	return prof
}

// view returns the subject's events and profile restricted to the fields
// the grant covers: a label never sees a field it was not granted.
func (s *subject) view(en *entry, g policy.Grant) (map[string]any, []label.Event) {
	s.materialize()
	prof := s.profileFor(g)
	if held := s.held(en, g); held != nil && held.ix == nil {
		return prof, s.narrow(en, g, held)
	}
	events := s.events
	narrowed := false
	for i := range s.events {
		for k := range s.events[i].Fields {
			if !g.Covers(k) {
				narrowed = true
				break
			}
		}
		if narrowed {
			break
		}
	}
	if narrowed {
		events = s.narrow(en, g, nil)
	}
	return prof, events
}

// narrowed is one label's view of a subject's events (subject.view): the
// events, parallel to the memo's, with only the fields of the grant it
// was made under. A memo keeps it, so that the next derivation narrows
// only the events that are new, not every event of the subject again.
type narrowed struct {
	fields []string // the grant's fields (policy.Grant.Fields)
	events []label.Event
	ix     *label.Index // instead of events, for a rule an index serves (fold.go)
}

// held returns the memo's view of the label's events if it was narrowed
// under the same fields.
func (s *subject) held(en *entry, g policy.Grant) *narrowed {
	if s.memo == nil {
		return nil
	}
	if n := s.memo.views[en]; n != nil && slices.Equal(n.fields, g.Fields()) && (n.fields == nil) == (g.Fields() == nil) &&
		(n.ix != nil || len(s.memo.tail) == 0) { // a list of events is parallel to the memo's merged events
		return n
	}
	return nil
}

// narrow returns the subject's events with only the fields g covers,
// taking those the memo's view held already from it, and keeps the
// result for the memo. The memo's events are, in order, the subject's
// events less those read again now (added), so one pass pairs them.
func (s *subject) narrow(en *entry, g policy.Grant, held *narrowed) []label.Event {
	out := make([]label.Event, len(s.events))
	j := 0
	for i, id := range s.ids {
		if held != nil {
			for j < len(s.memo.ids) && len(s.added) > 0 && slices.Contains(s.added, s.memo.ids[j]) {
				j++ // read again: the one held may be stale
			}
			if j < len(s.memo.ids) && s.memo.ids[j] == id {
				out[i] = held.events[j]
				j++
				continue
			}
		}
		ev := s.events[i]
		f := make(map[string]any, len(ev.Fields))
		for k, v := range ev.Fields {
			if g.Covers(k) {
				f[k] = v
			}
		}
		out[i] = label.Event{Type: ev.Type, Time: ev.Time, Fields: f}
	}
	if s.incremental {
		if s.views == nil {
			s.views = map[*entry]*narrowed{}
		}
		s.views[en] = &narrowed{fields: g.Fields(), events: out}
	}
	return out
}

// dirty reports whether an incremental update must recompute the label.
func (s *subject) dirty(en *entry, now time.Time) bool {
	old, ok := s.stored[en.l.ID]
	if !ok || old.Version != en.l.Version || (!old.Expires.IsZero() && !now.Before(old.Expires)) {
		return true
	}
	for _, part := range [2]struct {
		events []label.Event
		ids    []int64
	}{{s.events, s.ids}, {s.tail, s.tailIDs}} {
		for i := range part.events {
			// An event read now for the first time is new to the label
			// even with an older id: PostgreSQL may commit ids out of order.
			if (part.ids[i] > old.Seen || len(s.added) > 0 && slices.Contains(s.added, part.ids[i])) && en.reads(part.events[i].Type, part.events[i].Fields) {
				return true
			}
		}
	}
	for _, f := range en.profile {
		if t, ok := s.updated[f]; ok && t.After(old.Computed) {
			return true // a correction (CM-2)
		}
	}
	return false
}

// seal stores v for the subject under grant g.
func (s *subject) seal(g policy.Grant, v Stored) error {
	v.Seen = s.seen
	sealed, err := sealStored(s.cipher, &v, AD(s.ps, v.Label))
	if err != nil {
		return fmt.Errorf("encode label %s: %w", v.Label, err)
	}
	if sealed == nil {
		return fmt.Errorf("label %s: %w", v.Label, keys.ErrDestroyed)
	}
	if s.incremental {
		s.fresh = append(s.fresh, v) // for the memo, which a batch run does not keep
	}
	if s.values == nil {
		// Room for every granted label at once: grown from one, a
		// subject's values were a tenth of a batch run's allocated bytes.
		s.values = make([]portrait.LabelValue, 0, max(len(s.grants), len(s.pop), 1))
	}
	s.values = append(s.values, portrait.LabelValue{Grant: g, Pseudonym: s.ps, Label: v.Label, Version: v.Version,
		Sealed: sealed, Computed: v.Computed, Expires: v.Expires})
	return nil
}

// Subjects recomputes, for each pseudonym, the labels whose inputs could
// have changed since their stored value was computed: labels without a
// stored value or with an older version, labels reading an event type (or
// a profile field) that a newer event carries, labels whose profile inputs
// were updated (a correction, CM-2) and expired values. Labels that lost
// their lawful basis are deleted. RFM and segment labels are placed
// against the population model of the last batch run, if there was one.
func (e *Engine) Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (Summary, error) {
	start := time.Now()
	c, err := e.compiled()
	var sum Summary
	if err != nil && len(c.entries) == 0 {
		return sum, err
	}
	for page := range slices.Chunk(pseudonyms, e.opts.PageSize) {
		s, err := e.page(ctx, c, page)
		sum.add(s)
		if err != nil {
			return sum, err
		}
	}
	sum.Elapsed = time.Since(start)
	e.mu.Lock()
	e.status.Incremental.add(sum)
	e.status.Calls++
	e.mu.Unlock()
	return sum, nil
}

// page derives one page of subjects incrementally in one transaction.
// Subjects are read and evaluated on every CPU; the page is written in
// one transaction.
func (e *Engine) page(ctx context.Context, c *compiled, pseudonyms []portrait.Pseudonym) (Summary, error) {
	p, err := e.compute(ctx, c, pseudonyms, nil, nil)
	if err != nil {
		return p.sum, err
	}
	return p.flush(ctx, e)
}

// pending is a computed page waiting for its write transaction.
type pending struct {
	work        []*subject
	written     map[string]bool
	sum         Summary
	now         time.Time
	incremental bool
	gen         int64 // the governance generation the page was decided under
	// run holds a batch page's opened keys, where erasure's Forget
	// reaches them, until the page is written (keys.Run); nil for an
	// incremental page, which opens keys through the Keyring's cache.
	run *keys.Run
}

// flush writes the page and returns its summary.
func (p *pending) flush(ctx context.Context, e *Engine) (Summary, error) {
	err := e.write(ctx, p.work, p.written, &p.sum, p.now, p.incremental, p.gen)
	return p.sum, err
}

// compute decides and derives one page of subjects, without writing. l
// is a batch page's listing (All), nil for an incremental page. In a
// batch run population labels are not computed here: their inputs go to
// col, and All computes them over the whole population.
func (e *Engine) compute(ctx context.Context, c *compiled, pseudonyms []portrait.Pseudonym, l *listed, col *collector) (*pending, error) {
	incremental := l == nil
	p := &pending{incremental: incremental}
	if !incremental {
		p.run = e.keys.Run(len(pseudonyms))
	}
	sum := &p.sum
	start := time.Now()
	now := e.now()
	p.now = now
	// The generation is read before the states, so that the write can
	// tell whether any governance change committed since (invariant 5).
	// A batch page's states were read with its listing, after the
	// generation it read: they serve while the generation has not moved.
	var states map[portrait.Pseudonym]*policy.State
	var gen int64
	var err error
	if l != nil {
		if gen, err = e.store.Generation(ctx); err != nil {
			return p, fmt.Errorf("derive: read governance generation: %w", err)
		}
		if gen == l.gen {
			states = l.states
		}
	}
	if states == nil {
		if states, gen, err = e.ledger.StatesAt(ctx, pseudonyms); err != nil {
			return p, fmt.Errorf("derive: %w", err)
		}
	}
	p.gen = gen
	var mems map[portrait.Pseudonym]*memo
	if incremental {
		mems = e.mem.at(gen, c, pseudonyms)
		for ps, m := range mems {
			if !m.usable(now) {
				delete(mems, ps) // an event due for the retention sweep: read in full
			}
		}
	}
	var opened map[portrait.Pseudonym]*keys.Cipher
	var stored map[portrait.Pseudonym]portrait.SubjectKey
	if l != nil && l.gen == gen {
		stored = l.keys // read with the listing, and nothing governed changed since
	} else if opened, stored, err = e.subjectKeys(ctx, gen, pseudonyms, mems, incremental); err != nil {
		return p, err
	}
	pop := e.pop.Load()
	var work []*subject
	for _, ps := range pseudonyms {
		subj, ok := stored[ps]
		key := opened[ps]
		if !ok && key == nil && (mems[ps] == nil || !mems[ps].bare) {
			continue // erased or never stored: nothing to derive
		}
		s := &subject{ps: ps, subj: subj, cipher: key, gen: gen, grants: map[*entry]policy.Grant{}, memo: mems[ps], incremental: incremental}
		s.run = p.run
		for _, en := range c.entries {
			g, _ := e.decide(states[ps], en)
			if !g.Valid() {
				s.remove = append(s.remove, en.l.ID)
				s.ungranted++
				continue
			}
			if incremental && en.population() && pop.model(en.l) == nil {
				continue // no population model yet: the next batch run computes it
			}
			s.grants[en] = g
		}
		s.checkMemo()
		work = append(work, s)
	}
	if incremental {
		if work, err = e.rows(ctx, work); err != nil {
			return p, err
		}
	}
	sum.Subjects = len(work)
	// Each worker fetches a run of the page with one query per kind, so
	// the reads, too, proceed on every CPU.
	workers := min(runtime.GOMAXPROCS(0), max(1, len(work)/8))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w, run := range chunks(work, workers) {
		do := func() {
			if errs[w] = e.fetch(ctx, run, now, incremental); errs[w] != nil {
				errs[w] = fmt.Errorf("derive: %w", errs[w])
				return
			}
			for _, s := range run {
				if errs[w] = e.derive(c, s, pop, now, incremental, col); errs[w] != nil {
					return
				}
			}
		}
		if w == workers-1 {
			// The last run in this goroutine: a page of one subject (a
			// lone incremental call) starts no goroutine and waits for
			// no wake-up.
			do()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			do()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return p, err
	}
	if col != nil {
		col.addPage(work, gen)
	}
	written := map[string]bool{}
	for _, s := range work {
		sum.Events += len(s.events) + len(s.tail)
		sum.Failed += s.failed
		sum.addFailures(s.failures...)
		sum.Unchanged += s.unchanged
		for _, v := range s.values {
			written[v.Label] = true
		}
	}
	sum.Compute = time.Since(start)
	p.work, p.written = work, written
	return p, nil
}

// chunks splits work into n runs of nearly equal length, in order.
func chunks(work []*subject, n int) [][]*subject {
	out := make([][]*subject, n)
	for i := range n {
		out[i] = work[i*len(work)/n : (i+1)*len(work)/n]
	}
	return out
}

// derive decrypts one subject's fetched inputs and computes its labels.
func (e *Engine) derive(c *compiled, s *subject, pop *population, now time.Time, incremental bool, col *collector) error {
	if len(s.grants) == 0 {
		return nil
	}
	if s.cipher == nil {
		open := e.keys.Open
		if s.run != nil {
			open = s.run.Open
		}
		c, err := open(s.subj)
		if err != nil {
			s.fail("", err)
			return nil
		}
		s.cipher = c
		if incremental {
			e.opened.Put(s.gen, s.ps, c)
		}
	}
	if err := s.open(); err != nil {
		// This subject's stored data cannot be read: its labels are left
		// as they are and reported; the other subjects go on.
		s.fail("", err)
		return nil
	}
	for _, en := range c.entries {
		g, ok := s.grants[en]
		if !ok {
			continue
		}
		if incremental && !s.dirty(en, now) {
			s.unchanged++
			s.carry(en, g)
			continue
		}
		if en.population() && !incremental {
			col.add(s, en, g, now) // reads only what g covers: no narrowed copy
			continue
		}
		if incremental && en.rule != nil && en.rule.Indexed() {
			if v, err := s.evalIndexed(en, g, now); !errors.Is(err, label.ErrNoIndex) {
				s.settle(en, g, v, err)
				continue
			}
		}
		var prof map[string]any
		var events []label.Event
		if incremental {
			prof, events = s.view(en, g)
		} else {
			prof, events = s.batchView(en, g)
		}
		var v Stored
		var err error
		switch {
		case en.l.Kind == catalog.KindRFM:
			v = pop.model(en.l).(*rfmModel).value(en, events, now)
		case en.l.Kind == catalog.KindSegment:
			v, err = pop.model(en.l).(*segModel).value(en, prof, events, now)
		case en.l.Kind == catalog.KindBGNBD:
			var ok bool
			if v, ok, err = pop.model(en.l).(*bgModel).value(en, events, now); err == nil && !ok {
				s.remove = append(s.remove, en.l.ID) // no purchase: nothing to forecast
				continue
			}
		default:
			v.Value, err = en.rule.Eval(now, prof, events)
		}
		s.settle(en, g, v, err)
	}
	return nil
}

// settle seals v as the subject's value of en's label, computed with
// err. A label that cannot be computed or sealed for this subject (say,
// a model feature has no value) is reported and its old value removed:
// it would be stale.
func (s *subject) settle(en *entry, g policy.Grant, v Stored, err error) {
	if err == nil {
		err = s.seal(g, v)
	}
	if err != nil {
		s.fail(en.l.ID, err)
		s.remove = append(s.remove, en.l.ID)
	}
}

// write stores the values and deletions of a page with one audit record.
//
// gen is the governance generation the page was decided under. The write
// transaction reads the generation under the lock that keeps every
// governance change out until it commits; if it moved, some consent,
// flag, suppression or suspension changed while the page was derived, so
// each value is decided again against the subjects' states as they are
// now, and what is no longer allowed is removed instead of written. A
// derived value therefore never overwrites a withdrawal that raced it
// (CN-4, invariant 5), and constant consent traffic elsewhere costs a
// re-check, not a retry.
func (e *Engine) write(ctx context.Context, work []*subject, written map[string]bool, sum *Summary, now time.Time, incremental bool, gen int64) error {
	var nvalues, nremoved, ndeleted int
	start := time.Now()
	defer func() { sum.Store += time.Since(start) }()
	if incremental && nothingToWrite(work) && marksFrom(ctx) == nil {
		// Nothing to store or delete: no transaction, no audit record.
		e.mem.keep(gen, e.comp.Load(), work)
		for _, s := range work {
			sum.Removed += len(s.remove)
		}
		return nil
	}
	rechecked := false
	err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if f := fenceFrom(ctx); f != nil {
			pss := make([]portrait.Pseudonym, len(work))
			for i, s := range work {
				pss[i] = s.ps
			}
			if err := f.Check(ctx, tx, pss); err != nil {
				return err
			}
		}
		if err := clearMarks(ctx, tx); err != nil {
			return err
		}
		g, err := tx.Generation(ctx)
		if err != nil {
			return err
		}
		if g != gen {
			rechecked = true
			if err := e.recheck(ctx, work); err != nil {
				return err
			}
		}
		n := 0
		for _, s := range work {
			n += len(s.values)
		}
		values := make([]portrait.LabelValue, 0, n)
		removedIDs := map[string]bool{}
		nremoved, ndeleted = 0, 0
		for _, s := range work {
			values = append(values, s.values...)
			for _, id := range s.remove {
				removedIDs[id] = true
			}
			nremoved += len(s.remove)
		}
		if ndeleted, err = deleteRemoved(ctx, tx, work, incremental); err != nil {
			return err
		}
		nvalues = len(values)
		if nvalues == 0 && ndeleted == 0 {
			return nil
		}
		if len(values) > 0 {
			if err := tx.PutLabels(ctx, values); err != nil {
				return err
			}
		}
		action := "batch"
		if incremental {
			action = "incremental"
		}
		_, err = e.log.Append(ctx, tx, audit.Record{Kind: "derive", Time: now, Actor: "system:derive", Action: action,
			Detail: map[string]any{"subjects": len(work), "written": nvalues, "removed": nremoved,
				"labels": slices.Sorted(maps.Keys(written)), "removed_labels": slices.Sorted(maps.Keys(removedIDs))}})
		return err
	})
	if incremental {
		if c, _ := e.compiled(); err == nil && !rechecked {
			e.mem.keep(gen, c, work)
		} else {
			e.mem.drop(work)
		}
	}
	if err != nil {
		return fmt.Errorf("derive: store %d label values: %w", nvalues, err)
	}
	sum.Written += nvalues
	sum.Removed += nremoved
	return nil
}

// recheck decides every value of the page again with the subjects' states
// read now. It runs inside the write transaction, after Tx.Generation has
// shut governance changes out, so what it reads stays true until commit.
// Values of subjects erased meanwhile are dropped.
func (e *Engine) recheck(ctx context.Context, work []*subject) error {
	c, _ := e.compiled()
	byID := make(map[string]*entry, len(c.entries))
	for _, en := range c.entries {
		byID[en.l.ID] = en
	}
	pss := make([]portrait.Pseudonym, len(work))
	for i, s := range work {
		pss[i] = s.ps
	}
	states, err := e.store.States(ctx, pss)
	if err != nil {
		return fmt.Errorf("recheck states: %w", err)
	}
	subs, err := e.store.Subjects(ctx, pss)
	if err != nil {
		return fmt.Errorf("recheck subjects: %w", err)
	}
	for _, s := range work {
		_, alive := subs[s.ps]
		kept := s.values[:0]
		for _, v := range s.values {
			if en := byID[v.Label]; alive && en != nil {
				if g, _ := e.decide(states[s.ps], en); g.Valid() {
					kept = append(kept, v)
					continue
				}
			}
			if alive {
				s.remove = append(s.remove, v.Label)
			}
		}
		s.values = kept
	}
	return nil
}

// Labels lists the catalog's label declarations with their version, kind
// and purposes, and any label that cannot be compiled.
func (e *Engine) Labels() ([]catalog.Label, error) {
	cat := e.point.Catalog()
	_, err := e.compiled()
	out := slices.Clone(cat.Labels)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}
