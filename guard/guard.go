package guard

import (
	"context"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// ReadActions are the actions a grant may carry to read a subject's
// personal values from a store.
var ReadActions = []policy.Action{policy.Read, policy.Derive, policy.Use, policy.Access, policy.Sweep, policy.Correct}

// Engine is a store engine: SQL over one database, keyed by pseudonym,
// with no grant checks. Its methods not listed here have the meaning and
// signature of portrait.Store's.
type Engine interface {
	Update(ctx context.Context, fn func(Tx) error) error

	Generation(ctx context.Context) (int64, error)
	Ping(ctx context.Context) error
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
	States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	StatesRange(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	Suspensions(ctx context.Context) ([]policy.Suspension, error)
	ExpiredEvents(ctx context.Context, now time.Time, limit int) ([]portrait.StoredEvent, error)
	ExpiredProfile(ctx context.Context, now time.Time, limit int) ([]portrait.FieldRef, error)
	LogSize(ctx context.Context) (int64, error)
	LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error)
	LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error)
	LogEntriesAt(ctx context.Context, idxs []int64) ([]portrait.LogEntry, error)
	// LogSubjectIndex reads the index of log records by subject
	// (tables.DB.LogSubjectIndex); Tx.IndexLogSubjects fills it.
	LogSubjectIndex(ctx context.Context, kind string, pseudonym portrait.Pseudonym) ([]int64, int64, error)
	// PartialBuckets and Partials read a monitor run's per-bucket
	// partials (serve --cluster); Tx.PutPartial writes one.
	PartialBuckets(ctx context.Context, run string) ([]int, error)
	Partials(ctx context.Context, run string) (map[int][]byte, error)
	LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	Checkpoint(ctx context.Context) ([]byte, error)
	APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error)
	APIKeys(ctx context.Context) ([]portrait.APIKey, error)
	SessionEnded(ctx context.Context, issued time.Time, ids ...[]byte) (bool, error)
	Cases(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.Case, error)
	DeterminationByID(ctx context.Context, id string) (portrait.StoredDetermination, error)
	Reviews(ctx context.Context, status string) ([]portrait.Review, error)
	ReviewByID(ctx context.Context, id string) (portrait.Review, error)
	Items(ctx context.Context) ([]portrait.Item, error)
	Pseudonyms(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.Pseudonym, error)
	SubjectsAfter(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.SubjectKey, error)
	// Pending and PendingCommitted read the batches waiting for incremental
	// derivation (derive.Queue); Tx.MarkPending and ClearPending write them.
	Pending(ctx context.Context, after int64, limit int) ([]portrait.PendingMark, error)
	PendingCommitted(ctx context.Context, ids []int64) ([]int64, error)
	Close() error

	// The personal reads, keyed by pseudonym. Profile and ProfilesFor
	// return every stored field; the guard keeps those a grant covers.
	ConsentHistory(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.ConsentRecord, error)
	Events(ctx context.Context, pseudonym portrait.Pseudonym, since time.Time) ([]portrait.StoredEvent, error)
	Profile(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.ProfileValue, error)
	Labels(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.LabelValue, error)
	Determinations(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.StoredDetermination, error)
	Protected(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.ProtectedValue, error)
	EventsFor(ctx context.Context, pseudonyms []portrait.Pseudonym, since time.Time) (map[portrait.Pseudonym][]portrait.StoredEvent, error)
	// ScanEvents is EventsFor into the page's reused buffers, for the
	// subjects it was Reset to (sqlite/scan.go, postgres/scan.go).
	ScanEvents(ctx context.Context, page *portrait.EventPage, since time.Time) error
	EventsAfter(ctx context.Context, pseudonyms []portrait.Pseudonym, after map[portrait.Pseudonym]portrait.EventMark) (map[portrait.Pseudonym][]portrait.StoredEvent, int64, error)
	ProfilesFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.ProfileValue, error)
	LabelsFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.LabelValue, error)
	DeterminationsFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.StoredDetermination, error)
	ProtectedFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.ProtectedValue, error)
}

// Tx is an engine's write transaction, keyed by pseudonym. InsertEvents,
// PutLabels and PutDetermination ignore the grants their values carry: the
// guard has checked them.
type Tx interface {
	EnsureSubjects(ctx context.Context, subjects []portrait.SubjectKey) error
	InsertEvents(ctx context.Context, events []portrait.StoredEvent) ([]bool, error)
	PutLabels(ctx context.Context, values []portrait.LabelValue) error
	DeleteLabels(ctx context.Context, pseudonym portrait.Pseudonym, labels []string) error
	// DeleteLabelsOf deletes labels of every one of pseudonyms (batch
	// derivation: derive.labelRemover).
	DeleteLabelsOf(ctx context.Context, pseudonyms []portrait.Pseudonym, labels []string) error
	AppendConsent(ctx context.Context, r portrait.ConsentRecord) error
	SetFlags(ctx context.Context, pseudonym portrait.Pseudonym, f portrait.Flags) error
	Suppress(ctx context.Context, pseudonym portrait.Pseudonym, label string, deleted bool) error
	Unsuppress(ctx context.Context, pseudonym portrait.Pseudonym, label string) error
	Suspend(ctx context.Context, s policy.Suspension) error
	Lift(ctx context.Context, kind, id string) error
	Generation(ctx context.Context) (int64, error)
	// LeaseEpoch reads a subject bucket's lease epoch and holds it until
	// the transaction ends (package cluster fences its writes with it).
	LeaseEpoch(ctx context.Context, bucket int) (int64, error)
	IndexLogSubjects(ctx context.Context, kind string, upto int64, pseudonyms []portrait.Pseudonym, idxs []int64) error
	PutPartial(ctx context.Context, run string, bucket int, node int32, epoch int64, sealed []byte) (bool, error)
	DeletePartials(ctx context.Context, run string) error
	MarkPending(ctx context.Context, pseudonyms []portrait.Pseudonym) (int64, error)
	ClearPending(ctx context.Context, ids []int64) error
	LogSize(ctx context.Context) (int64, error)
	LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	AppendLog(ctx context.Context, entries []portrait.LogEntry) error
	SaveCheckpoint(ctx context.Context, note []byte) error
	PutAPIKey(ctx context.Context, k portrait.APIKey) error
	RevokeAPIKey(ctx context.Context, name string, at time.Time) (portrait.APIKey, error)
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	EndSessions(ctx context.Context, id []byte, issuedBefore, keepUntil time.Time) error
	PutCase(ctx context.Context, c portrait.Case) error
	PutDetermination(ctx context.Context, d portrait.StoredDetermination) error
	SetDeterminationStatus(ctx context.Context, id, status string) error
	PutReview(ctx context.Context, r portrait.Review) error
	States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
	CloseReview(ctx context.Context, r portrait.Review) error
	PutItems(ctx context.Context, items []portrait.Item) error

	// The personal writes, keyed by pseudonym.
	PutProfile(ctx context.Context, pseudonym portrait.Pseudonym, values []portrait.ProfileValue) error
	RewriteEvent(ctx context.Context, pseudonym portrait.Pseudonym, id int64, sealed []byte, expires time.Time) error
	DeleteProfile(ctx context.Context, pseudonym portrait.Pseudonym, fields []string) error
	Erase(ctx context.Context, pseudonym portrait.Pseudonym) error
	PutProtected(ctx context.Context, pseudonym portrait.Pseudonym, values []portrait.ProtectedValue) error
}

// Store is portrait.Store over an Engine, checking every grant.
type Store struct {
	Engine
}

// New returns e guarded.
func New(e Engine) *Store { return &Store{e} }

var (
	_ portrait.Store = (*Store)(nil)
	_ portrait.Tx    = (*guardedTx)(nil)
)

// Refuse is the error a store returns when a grant does not allow what op
// tries: EFORBIDDEN, wrapping err (which wraps policy.ErrNoGrant).
func Refuse(op string, err error) error {
	return &portrait.Error{Code: portrait.EFORBIDDEN, Message: op + ": no policy grant allows this", Err: err}
}

// check refuses (Refuse) unless g allows one of actions for its subject
// and covers every field.
func check(op string, g policy.Grant, fields []string, actions ...policy.Action) error {
	if err := g.Check(g.Pseudonym(), actions...); err != nil {
		return Refuse(op, err)
	}
	for _, f := range fields {
		if !g.Covers(f) {
			return Refuse(op, fmt.Errorf("%w: the grant does not cover field %q", policy.ErrNoGrant, f))
		}
	}
	return nil
}

// page checks every grant of a page read and returns the distinct
// subjects, in first-seen order, with each subject's grants. One failed
// check refuses the whole page before anything is read.
func page(op string, grants []policy.Grant) ([]portrait.Pseudonym, map[portrait.Pseudonym][]policy.Grant, error) {
	held := make(map[portrait.Pseudonym][]policy.Grant, len(grants))
	subjects := make([]portrait.Pseudonym, 0, len(grants))
	for i, g := range grants {
		if err := g.Check(g.Pseudonym(), ReadActions...); err != nil {
			return nil, nil, Refuse(op, fmt.Errorf("grant %d of %d: %w", i+1, len(grants), err))
		}
		if _, ok := held[g.Pseudonym()]; !ok {
			subjects = append(subjects, g.Pseudonym())
		}
		held[g.Pseudonym()] = append(held[g.Pseudonym()], g)
	}
	return subjects, held, nil
}

// Update implements portrait.Store.Update. It hands fn a ctx marked as
// inside this store's Update, and refuses an Update called with a ctx so
// marked: the inner transaction would wait for the outer one, which waits
// for fn (SQLite's one writer, PostgreSQL's log-head lock or a pool of
// one), so it fails at once with ErrNestedUpdate instead. The mark is a
// value of the ctx, so it is found however deep fn's callees pass it, on
// both engines, at the cost of one context per Update.
func (s *Store) Update(ctx context.Context, fn func(context.Context, portrait.Tx) error) error {
	if ctx.Value(updating{s}) != nil {
		return ErrNestedUpdate
	}
	return s.Engine.Update(ctx, func(tx Tx) error {
		return fn(context.WithValue(ctx, updating{s}, true), &guardedTx{tx})
	})
}

// updating is the key of the ctx value that marks a function running
// inside Update on the store it names.
type updating struct{ s *Store }

// ErrNestedUpdate is returned by an Update called with the ctx of a
// function running inside an Update on the same store. Do the work in
// the outer transaction.
var ErrNestedUpdate = &portrait.Error{Code: portrait.EINTERNAL,
	Message: "store: Update called inside an Update function on the same store; the inner transaction would wait for the outer one for ever: use the outer Tx"}

// ConsentHistory implements portrait.Store.ConsentHistory. Erasure reads
// the history too, to report what it withdrew.
func (s *Store) ConsentHistory(ctx context.Context, g policy.Grant) ([]portrait.ConsentRecord, error) {
	if err := check("read consent history", g, nil, append(ReadActions, policy.Erase)...); err != nil {
		return nil, err
	}
	return s.Engine.ConsentHistory(ctx, g.Pseudonym())
}

// Events implements portrait.Store.Events.
func (s *Store) Events(ctx context.Context, g policy.Grant, since time.Time) ([]portrait.StoredEvent, error) {
	if err := check("read events", g, nil, ReadActions...); err != nil {
		return nil, err
	}
	return s.Engine.Events(ctx, g.Pseudonym(), since)
}

// Profile implements portrait.Store.Profile: only the fields g covers.
func (s *Store) Profile(ctx context.Context, g policy.Grant) ([]portrait.ProfileValue, error) {
	if err := check("read profile", g, nil, ReadActions...); err != nil {
		return nil, err
	}
	vs, err := s.Engine.Profile(ctx, g.Pseudonym())
	if err != nil {
		return nil, err
	}
	return covered(vs, []policy.Grant{g}), nil
}

// covered keeps the values one of grants covers, in place.
func covered(vs []portrait.ProfileValue, grants []policy.Grant) []portrait.ProfileValue {
	out := vs[:0]
	for _, v := range vs {
		for _, g := range grants {
			if g.Covers(v.Field) {
				out = append(out, v)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Labels implements portrait.Store.Labels.
func (s *Store) Labels(ctx context.Context, g policy.Grant) ([]portrait.LabelValue, error) {
	if err := check("read labels", g, nil, ReadActions...); err != nil {
		return nil, err
	}
	return s.Engine.Labels(ctx, g.Pseudonym())
}

// Determinations implements portrait.Store.Determinations.
func (s *Store) Determinations(ctx context.Context, g policy.Grant) ([]portrait.StoredDetermination, error) {
	if err := check("read decisions", g, nil, ReadActions...); err != nil {
		return nil, err
	}
	return s.Engine.Determinations(ctx, g.Pseudonym())
}

// Protected implements portrait.Store.Protected.
func (s *Store) Protected(ctx context.Context, g policy.Grant) ([]portrait.ProtectedValue, error) {
	if err := check("read protected attributes", g, nil, ReadActions...); err != nil {
		return nil, err
	}
	return s.Engine.Protected(ctx, g.Pseudonym())
}

// EventsFor implements portrait.Store.EventsFor.
func (s *Store) EventsFor(ctx context.Context, grants []policy.Grant, since time.Time) (map[portrait.Pseudonym][]portrait.StoredEvent, error) {
	subjects, _, err := page("read events", grants)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredEvent{}, nil
	}
	return s.Engine.EventsFor(ctx, subjects, since)
}

// EventsAfter implements portrait.Store.EventsAfter. Only the grants'
// subjects are read: a mark of a subject without a grant is ignored.
func (s *Store) EventsAfter(ctx context.Context, grants []policy.Grant, after map[portrait.Pseudonym]portrait.EventMark) (map[portrait.Pseudonym][]portrait.StoredEvent, int64, error) {
	subjects, _, err := page("read events", grants)
	if err != nil {
		return nil, 0, err
	}
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredEvent{}, 0, nil
	}
	return s.Engine.EventsAfter(ctx, subjects, after)
}

// ProfilesFor implements portrait.Store.ProfilesFor: a field is returned
// when one of its subject's grants covers it.
func (s *Store) ProfilesFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.ProfileValue, error) {
	subjects, held, err := page("read profile", grants)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.ProfileValue{}, nil
	}
	m, err := s.Engine.ProfilesFor(ctx, subjects)
	if err != nil {
		return nil, err
	}
	for p, vs := range m {
		if vs = covered(vs, held[p]); vs == nil {
			delete(m, p)
		} else {
			m[p] = vs
		}
	}
	return m, nil
}

// LabelsFor implements portrait.Store.LabelsFor.
func (s *Store) LabelsFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.LabelValue, error) {
	subjects, _, err := page("read labels", grants)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.LabelValue{}, nil
	}
	return s.Engine.LabelsFor(ctx, subjects)
}

// DeterminationsFor implements portrait.Store.DeterminationsFor.
func (s *Store) DeterminationsFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.StoredDetermination, error) {
	subjects, _, err := page("read decisions", grants)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredDetermination{}, nil
	}
	return s.Engine.DeterminationsFor(ctx, subjects)
}

// ProtectedFor implements portrait.Store.ProtectedFor.
func (s *Store) ProtectedFor(ctx context.Context, grants []policy.Grant) (map[portrait.Pseudonym][]portrait.ProtectedValue, error) {
	subjects, _, err := page("read protected attributes", grants)
	if err != nil {
		return nil, err
	}
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.ProtectedValue{}, nil
	}
	return s.Engine.ProtectedFor(ctx, subjects)
}

// guardedTx is portrait.Tx over an engine's Tx.
type guardedTx struct {
	Tx
}

// InsertEvents implements portrait.Tx.InsertEvents: every grant is checked
// before anything is written.
func (tx *guardedTx) InsertEvents(ctx context.Context, events []portrait.StoredEvent) ([]bool, error) {
	for i := range events {
		e := &events[i]
		if err := e.Grant.Check(e.Pseudonym, policy.Collect); err != nil {
			return nil, Refuse(fmt.Sprintf("insert event %d of subject %s", i, e.Pseudonym), err)
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("insert event %d: %w", i, err)
		}
	}
	return tx.Tx.InsertEvents(ctx, events)
}

// PutProfile implements portrait.Tx.PutProfile: the grant must allow
// Collect or Correct and cover every field written.
func (tx *guardedTx) PutProfile(ctx context.Context, g policy.Grant, values []portrait.ProfileValue) error {
	if err := check("put profile", g, nil, policy.Collect, policy.Correct); err != nil {
		return err
	}
	for _, v := range values {
		if err := check("put profile field "+v.Field, g, []string{v.Field}, policy.Collect, policy.Correct); err != nil {
			return err
		}
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if len(values) == 0 {
		return nil
	}
	return tx.Tx.PutProfile(ctx, g.Pseudonym(), values)
}

// RewriteEvent implements portrait.Tx.RewriteEvent; the grant must allow Sweep.
func (tx *guardedTx) RewriteEvent(ctx context.Context, g policy.Grant, id int64, sealed []byte, expires time.Time) error {
	if err := check(fmt.Sprintf("rewrite event %d", id), g, nil, policy.Sweep); err != nil {
		return err
	}
	return tx.Tx.RewriteEvent(ctx, g.Pseudonym(), id, sealed, expires)
}

// DeleteProfile implements portrait.Tx.DeleteProfile.
func (tx *guardedTx) DeleteProfile(ctx context.Context, g policy.Grant, fields []string) error {
	if err := check("delete profile values", g, fields, policy.Sweep, policy.Correct, policy.Erase); err != nil {
		return err
	}
	return tx.Tx.DeleteProfile(ctx, g.Pseudonym(), fields)
}

// PutLabels implements portrait.Tx.PutLabels; each value's grant must
// allow Derive for its subject, all checked before anything is written.
func (tx *guardedTx) PutLabels(ctx context.Context, values []portrait.LabelValue) error {
	for _, v := range values {
		if err := v.Grant.Check(v.Pseudonym, policy.Derive); err != nil {
			return Refuse(fmt.Sprintf("put label %s of subject %s", v.Label, v.Pseudonym), err)
		}
		if err := v.Validate(); err != nil {
			return err
		}
	}
	if len(values) == 0 {
		return nil
	}
	return tx.Tx.PutLabels(ctx, values)
}

// Erase implements portrait.Tx.Erase; the grant must allow Erase.
func (tx *guardedTx) Erase(ctx context.Context, g policy.Grant) error {
	if err := check("erase", g, nil, policy.Erase); err != nil {
		return err
	}
	return tx.Tx.Erase(ctx, g.Pseudonym())
}

// PutDetermination implements portrait.Tx.PutDetermination; the grant must allow Use
// for the decision's subject. A malformed decision is refused as invalid
// before its grant is looked at, as it always was.
func (tx *guardedTx) PutDetermination(ctx context.Context, d portrait.StoredDetermination) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if err := d.Grant.Check(d.Pseudonym, policy.Use); err != nil {
		return Refuse("put decision "+d.ID, err)
	}
	return tx.Tx.PutDetermination(ctx, d)
}

// PutProtected implements portrait.Tx.PutProtected; the grant must allow
// Collect for the subject of every value.
func (tx *guardedTx) PutProtected(ctx context.Context, g policy.Grant, values []portrait.ProtectedValue) error {
	if err := check("put protected attributes", g, nil, policy.Collect); err != nil {
		return err
	}
	for _, v := range values {
		if v.Pseudonym != g.Pseudonym() {
			return Refuse("put protected attribute "+v.Attribute, fmt.Errorf("%w: the grant is for %s, the value for %s", policy.ErrNoGrant, g.Pseudonym(), v.Pseudonym))
		}
		if v.Attribute == "" || len(v.Sealed) == 0 {
			return portrait.Errorf(portrait.EINVALID, "put protected attribute %q: want an attribute and its sealed value", v.Attribute)
		}
	}
	if len(values) == 0 {
		return nil
	}
	return tx.Tx.PutProtected(ctx, g.Pseudonym(), values)
}
