package portrait

import (
	"context"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// Pseudonym is a data subject's keyed pseudonym; the raw external id
// (Event.SubjectID) is a plain string, so the compiler tells them apart.
// The type is declared in package policy, which keys grants by it and
// which this package builds on.
type Pseudonym = policy.Pseudonym

// Event is one behavioural event as a caller sends it.
type Event struct {
	SubjectID      string         `json:"subject"`
	Type           string         `json:"type"`
	Time           time.Time      `json:"time"`
	IdempotencyKey string         `json:"idempotency_key,omitempty"`
	Fields         map[string]any `json:"fields"`
}

// SubjectKey is a data subject as stored: a keyed pseudonym, the subject's
// data key wrapped by the master key, and their id sealed with that key.
// Destroying the row is the erasure primitive (invariant 4).
type SubjectKey struct {
	Pseudonym  Pseudonym
	WrappedKey []byte
	SealedID   []byte
	Created    time.Time
}

// StoredEvent is an event as kept: its values sealed with the subject's
// data key. Grant must allow Collect for Subject.
type StoredEvent struct {
	ID        int64
	Grant     policy.Grant
	Pseudonym Pseudonym
	Type      string
	Time      time.Time
	Idem      []byte // keyed hash of the idempotency key; nil when none was given
	Sealed    []byte // AES-GCM ciphertext of the JSON object of field values
	Expires   time.Time
}

// EventMark is how far a read of one subject's events reached:
// Store.EventsAfter returns the events committed since. ID is the newest
// event id the reader holds; Horizon is what the read that gave it
// returned. Where ids are given in commit order (SQLite: one writer
// reserves them) ID alone says what is new and Horizon is 0. Where
// concurrent transactions take ids out of commit order (PostgreSQL's
// sequence), an id below ID may still commit: Horizon is then the oldest
// transaction still running at that read, and every event written by it
// or a later one comes again.
type EventMark struct {
	ID      int64
	Horizon int64
}

// ProfileValue is the latest value of a profile field (age, city), sealed.
type ProfileValue struct {
	Field   string
	Sealed  []byte
	Source  string // "event", "correction", "import"
	Updated time.Time
	Expires time.Time
}

// FieldRef names one stored profile value without carrying it.
type FieldRef struct {
	Pseudonym Pseudonym
	Field     string
}

// ConsentRecord is one entry in the append-only consent ledger (CN-2).
type ConsentRecord struct {
	Seq           int64         `json:"seq"`
	Pseudonym     Pseudonym     `json:"-"`
	Purpose       string        `json:"purpose"`
	Status        policy.Status `json:"-"`
	NoticeVersion string        `json:"notice_version"`
	Channel       string        `json:"channel"`
	UserAgent     string        `json:"user_agent,omitempty"`
	// SealedUA is UserAgent sealed with the subject's key (keys.ConsentAD),
	// as stored; UserAgent is then empty in the store and filled in by
	// the consent ledger when it opens the record.
	SealedUA   []byte    `json:"-"`
	IP         string    `json:"ip,omitempty"` // truncated: /24 for IPv4, /48 for IPv6
	Guardian   bool      `json:"guardian,omitempty"`
	Categories []string  `json:"categories,omitempty"`
	At         time.Time `json:"at"`
	// ConsentString is the CMP's consent string the record was decided
	// from (TCF or GPP, StringType "tcfv2" or "gpp"), kept as evidence.
	ConsentString string `json:"consent_string,omitempty"`
	StringType    string `json:"consent_string_type,omitempty"`
}

// Flags are a subject's standing choices other than consent.
type Flags struct {
	Minor           bool
	Restricted      bool
	ObjectProfiling bool
	ObjectMarketing bool
	Personalization int // 0..100; new subjects start at 100
}

// LabelValue is one derived label of one subject, with its value and
// provenance sealed with the subject's data key (CM-2, SR-1).
type LabelValue struct {
	Grant     policy.Grant
	Pseudonym Pseudonym
	Label     string
	Version   int
	Sealed    []byte
	Computed  time.Time
	Expires   time.Time
}

// LogEntry is one audit-log record as stored, with the Merkle hashes its
// append produced (see package audit).
type LogEntry struct {
	Index int64
	// Kind is the record's kind, kept in a column for LogEntriesOfKind.
	// No hash covers the column: package audit checks it against the
	// hashed record (Data) before anything is done with the entry.
	Kind   string
	Data   []byte
	Hashes []byte // concatenated 32-byte stored hashes
}

// APIKey is a staff credential: only its SHA-256 hash is kept. It belongs
// to a named person, "team/person" (RO-7); revoked keys stay stored, so
// that a revoked key can never be registered again.
type APIKey struct {
	ID       string // the row's id; callers know a key by Name
	Name     string // "team/person"; "" is taken as ID (older callers)
	Hash     []byte // SHA-256 of the key
	Role     policy.Role
	Created  time.Time
	Expires  time.Time // zero: never (the bootstrap and demo keys)
	Revoked  time.Time // zero: in force
	LastUsed time.Time // updated at most once a minute per key and node
}

// Case is one data-subject request (SR-4, SR-5): access, export,
// correction, erasure, restriction, objection, explanation or withdrawal,
// tracked to an outcome by its deadline. It holds no personal values.
type Case struct {
	ID        string    `json:"id"`
	Pseudonym Pseudonym `json:"subject"`
	Type      string    `json:"type"`
	Status    string    `json:"status"` // open, fulfilled, refused
	Created   time.Time `json:"created"`
	Deadline  time.Time `json:"deadline"`
	Closed    time.Time `json:"closed,omitzero"`
	Outcome   string    `json:"outcome,omitempty"`
	Reason    string    `json:"reason,omitempty"` // stated for every refusal (SR-4)
	LogIndex  int64     `json:"log_index,omitempty"`
}

// StoredDetermination is one automated decision (AD-2, AD-4), stored with the
// model version and a hash of its inputs. Its explanation, contributions
// and counterfactual are personal and sealed with the subject's key.
type StoredDetermination struct {
	Grant        policy.Grant `json:"-"`
	ID           string       `json:"id"`
	Pseudonym    Pseudonym    `json:"subject"`
	UseCase      string       `json:"usecase"`
	Model        string       `json:"model"`
	ModelVersion int          `json:"model_version"`
	Outcome      bool         `json:"outcome"`
	Score        float64      `json:"score"`
	InputHash    string       `json:"input_hash"`
	Sealed       []byte       `json:"-"`
	// Status: automated, pending_review (refused automation or appealed),
	// upheld, overturned.
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	LogIndex int64     `json:"log_index"`
}

// Review is a human review of a decision (AD-2, AD-3, RO-7): an appeal
// with the subject's statement, or a refusal of purely automated
// processing.
type Review struct {
	ID              string    `json:"id"`
	DeterminationID string    `json:"decision"`
	Pseudonym       Pseudonym `json:"subject"`
	UseCase         string    `json:"usecase"`
	Kind            string    `json:"kind"` // appeal, refusal
	Sealed          []byte    `json:"-"`    // the subject's statement, sealed
	Status          string    `json:"status"`
	Reviewer        string    `json:"reviewer,omitempty"`
	Outcome         string    `json:"outcome,omitempty"` // upheld, overturned
	Reason          string    `json:"reason,omitempty"`
	Created         time.Time `json:"created"`
	Deadline        time.Time `json:"deadline"`
	Closed          time.Time `json:"closed,omitzero"`
}

// Item is an entry of the item catalog that recommendations rank. Items
// are not personal data.
type Item struct {
	ID         string         `json:"id"`
	Categories []string       `json:"categories"`
	Attributes map[string]any `json:"attributes,omitempty"`
	Price      float64        `json:"price"`
	Updated    time.Time      `json:"updated"`
}

// ProtectedValue is an audit-only protected attribute of a subject (sex,
// ethnicity, age band …), kept apart from the profile (FP-2): sealed, and
// readable only with a grant the decision point gives to the fairness
// engine and the auditor.
type ProtectedValue struct {
	Pseudonym Pseudonym
	Attribute string
	Sealed    []byte
}

// Store is the persistence contract. The sqlite and postgres packages
// implement it and pass the same conformance suite (storetest;
// invariant 7). Methods that read personal values take a Grant.
type Store interface {
	// Update runs fn in one transaction: either everything fn wrote,
	// including its audit entries, is committed, or nothing is
	// (invariant 3). fn receives ctx marked as inside this store's
	// Update; an Update on the same store with a ctx so marked fails with
	// guard.ErrNestedUpdate instead of waiting for the transaction it
	// runs in. fn does its work in tx, with the ctx it receives.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error

	// Generation returns a counter that every governance change (consent,
	// flags, suppression, suspension, a staff key's revocation) increments,
	// so that caches of governance state and of verified keys on any node
	// can tell they are stale (invariant 5).
	Generation(ctx context.Context) (int64, error)

	// Ping reads the store itself: a health check's probe. Generation
	// may come from memory (SQLite keeps it while no transaction of its
	// process moves it), so it says nothing of whether the store answers.
	Ping(ctx context.Context) error

	// Subjects returns the stored subjects among pseudonyms; absent ones are missing from the map.
	Subjects(ctx context.Context, pseudonyms []Pseudonym) (map[Pseudonym]SubjectKey, error)
	// States returns the governance state of each pseudonym; unknown
	// subjects get a fresh state.
	States(ctx context.Context, pseudonyms []Pseudonym) (map[Pseudonym]*policy.State, error)
	// StatesRange is States of pseudonyms in ascending byte order, read
	// as one range of each table from the first to the last: for a page
	// of consecutive subjects, as SubjectsAfter lists them.
	StatesRange(ctx context.Context, pseudonyms []Pseudonym) (map[Pseudonym]*policy.State, error)
	Suspensions(ctx context.Context) ([]policy.Suspension, error)
	// ConsentHistory returns the grant's subject's consent records, with
	// their evidence (user agent, truncated IP): a read of personal data.
	ConsentHistory(ctx context.Context, g policy.Grant) ([]ConsentRecord, error)

	Events(ctx context.Context, g policy.Grant, since time.Time) ([]StoredEvent, error)
	Profile(ctx context.Context, g policy.Grant) ([]ProfileValue, error)
	Labels(ctx context.Context, g policy.Grant) ([]LabelValue, error)
	// ExpiredEvents lists up to limit events whose earliest retention has passed.
	ExpiredEvents(ctx context.Context, now time.Time, limit int) ([]StoredEvent, error)
	// ExpiredProfile names up to limit profile values whose retention has
	// passed, without their values (CM-3).
	ExpiredProfile(ctx context.Context, now time.Time, limit int) ([]FieldRef, error)

	LogSize(ctx context.Context) (int64, error)
	LogEntries(ctx context.Context, from, to int64) ([]LogEntry, error)
	// LogEntriesOfKind returns the entries in [from, to) whose record is of
	// one of kinds, in order, found by index rather than by reading the log.
	// Read them through audit.Verifier.ReadVerifiedKinds, which checks each
	// against the signed tree; never act on them directly (invariant 8).
	LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]LogEntry, error)
	// LogHashes returns the stored Merkle hashes at the given storage indexes (tlog.StoredHashIndex).
	LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	Checkpoint(ctx context.Context) ([]byte, error)

	// APIKey returns the key with this hash that is not revoked (it may
	// have expired: the caller checks with APIKey.Check); ENOTFOUND if none.
	APIKey(ctx context.Context, hash []byte) (APIKey, error)
	// APIKeys lists every stored key, revoked ones included, by name and
	// creation.
	APIKeys(ctx context.Context) ([]APIKey, error)
	// SessionEnded reports whether a session issued at issued has been
	// ended by an EndSessions under any of ids.
	SessionEnded(ctx context.Context, issued time.Time, ids ...[]byte) (bool, error)

	// Cases lists data-subject requests, of one pseudonym or ("") of all,
	// oldest first.
	Cases(ctx context.Context, pseudonym Pseudonym) ([]Case, error)
	// Determinations returns the subject's decisions (grant for the subject).
	Determinations(ctx context.Context, g policy.Grant) ([]StoredDetermination, error)
	// DeterminationByID returns one decision without its sealed part; ENOTFOUND if absent.
	DeterminationByID(ctx context.Context, id string) (StoredDetermination, error)
	// Reviews lists reviews with the given status ("" for all), oldest first.
	Reviews(ctx context.Context, status string) ([]Review, error)
	ReviewByID(ctx context.Context, id string) (Review, error)
	Items(ctx context.Context) ([]Item, error)
	// Protected returns the protected attributes of the grant's subject.
	Protected(ctx context.Context, g policy.Grant) ([]ProtectedValue, error)
	// Pseudonyms pages through all stored subjects in pseudonym order,
	// for batch derivation.
	Pseudonyms(ctx context.Context, after Pseudonym, limit int) ([]Pseudonym, error)
	// SubjectsAfter is Pseudonyms with each subject's stored key: a page
	// of subjects read as one range of the subjects table, for a batch
	// derivation, instead of Pseudonyms and then Subjects (a seek each).
	SubjectsAfter(ctx context.Context, after Pseudonym, limit int) ([]SubjectKey, error)
	// Pending pages, in id order, through the marks of batches whose
	// subjects' labels wait for incremental derivation (Tx.MarkPending);
	// PendingCommitted returns those of ids a read now sees.
	Pending(ctx context.Context, after int64, limit int) ([]PendingMark, error)
	PendingCommitted(ctx context.Context, ids []int64) ([]int64, error)

	// The …For methods read a page of subjects with one query each, for
	// batch derivation and monitor runs, where a query per subject
	// dominated the run. Each grant must come from the decision point for
	// its own subject with an action the per-subject method accepts; if
	// any grant fails that check, the call returns an error wrapping
	// policy.ErrNoGrant and nothing else (invariant 2). A subject may
	// appear under several grants and is read once. The map holds, per
	// subject, what the per-subject method returns under its grant, in the
	// same order; subjects with nothing stored are absent.

	// EventsFor is Events for every grant's subject.
	EventsFor(ctx context.Context, grants []policy.Grant, since time.Time) (map[Pseudonym][]StoredEvent, error)
	// ScanEvents is EventsFor into a page's reused buffers, the batch
	// read of batch derivation: the page is Reset to the grants'
	// subjects, in grant order, each once, and holds each one's events in
	// time and then id order (EventPage.Of); a refused page is left empty.
	ScanEvents(ctx context.Context, grants []policy.Grant, since time.Time, into *EventPage) error
	// EventsAfter is EventsFor of all time from a mark: for every grant's
	// subject, the events committed since the read that gave the subject's
	// mark in after (every event for a subject not in after), in time
	// order; an event read then may come again. It returns the horizon
	// of this read, to go in the subjects' next marks. Incremental
	// derivation keeps what it read and asks only for what is new.
	EventsAfter(ctx context.Context, grants []policy.Grant, after map[Pseudonym]EventMark) (map[Pseudonym][]StoredEvent, int64, error)
	// ProfilesFor is Profile for every grant's subject: a field is
	// returned when one of the subject's grants covers it.
	ProfilesFor(ctx context.Context, grants []policy.Grant) (map[Pseudonym][]ProfileValue, error)
	// LabelsFor is Labels for every grant's subject.
	LabelsFor(ctx context.Context, grants []policy.Grant) (map[Pseudonym][]LabelValue, error)
	// DeterminationsFor is Decisions for every grant's subject.
	DeterminationsFor(ctx context.Context, grants []policy.Grant) (map[Pseudonym][]StoredDetermination, error)
	// ProtectedFor is Protected for every grant's subject.
	ProtectedFor(ctx context.Context, grants []policy.Grant) (map[Pseudonym][]ProtectedValue, error)

	Close() error
}

// Tx is one write transaction.
type Tx interface {
	// EnsureSubjects inserts the subjects that are not yet stored.
	EnsureSubjects(ctx context.Context, subjects []SubjectKey) error
	// InsertEvents stores events whose grants allow Collect; it returns,
	// per event, false when its idempotency key was already stored.
	InsertEvents(ctx context.Context, events []StoredEvent) ([]bool, error)
	PutProfile(ctx context.Context, g policy.Grant, values []ProfileValue) error
	// RewriteEvent replaces an event's sealed values after a retention
	// sweep; nil Sealed deletes the event.
	RewriteEvent(ctx context.Context, g policy.Grant, id int64, sealed []byte, expires time.Time) error
	// DeleteProfile deletes the grant's subject's values of fields; the
	// grant must allow Sweep, Correct or Erase and cover each field.
	DeleteProfile(ctx context.Context, g policy.Grant, fields []string) error
	PutLabels(ctx context.Context, values []LabelValue) error
	DeleteLabels(ctx context.Context, pseudonym Pseudonym, labels []string) error
	// MarkPending records that pseudonyms' labels wait for incremental
	// derivation, in one mark, and returns its id; ClearPending deletes
	// marks by id.
	MarkPending(ctx context.Context, pseudonyms []Pseudonym) (int64, error)
	ClearPending(ctx context.Context, ids []int64) error

	AppendConsent(ctx context.Context, r ConsentRecord) error
	SetFlags(ctx context.Context, pseudonym Pseudonym, f Flags) error
	Suppress(ctx context.Context, pseudonym Pseudonym, label string, deleted bool) error
	Unsuppress(ctx context.Context, pseudonym Pseudonym, label string) error
	Suspend(ctx context.Context, s policy.Suspension) error
	Lift(ctx context.Context, kind, id string) error

	// Generation returns the governance generation and holds it until the
	// transaction ends: no consent, flag, suppression or suspension change
	// can commit in between. A writer of derived data compares it with the
	// generation it decided under, so a withdrawal that raced the
	// derivation is never overwritten (invariant 5).
	Generation(ctx context.Context) (int64, error)

	// Erase deletes everything about the subject, the wrapped key first.
	Erase(ctx context.Context, g policy.Grant) error

	// LogSize, LogHashes and AppendLog let package audit extend the Merkle
	// log inside the same transaction as the action it records. LogSize
	// locks the log head until the transaction ends.
	LogSize(ctx context.Context) (int64, error)
	LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	AppendLog(ctx context.Context, entries []LogEntry) error
	SaveCheckpoint(ctx context.Context, note []byte) error

	// PutAPIKey stores a new key; ECONFLICT if its hash was ever stored or
	// a key of the same name is in force.
	PutAPIKey(ctx context.Context, k APIKey) error
	// RevokeAPIKey revokes the key in force named name, at; ENOTFOUND if
	// there is none. It returns the key as revoked, and moves the
	// generation, so that every node drops the keys it verified.
	RevokeAPIKey(ctx context.Context, name string, at time.Time) (APIKey, error)
	// TouchAPIKey records that key id was used at; an earlier time never
	// overwrites a later one.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	// EndSessions ends, on every node, the sessions named id that were
	// issued at or before issuedBefore (keys.SessionID names one session,
	// keys.SubjectSessions every session of a subject). keepUntil is when
	// none of them could be valid any more; the record may go after it.
	EndSessions(ctx context.Context, id []byte, issuedBefore, keepUntil time.Time) error
	// PutCase inserts or updates a request case by ID.
	PutCase(ctx context.Context, c Case) error
	// PutDetermination stores a decision; its Grant must allow Use for its subject.
	PutDetermination(ctx context.Context, d StoredDetermination) error
	// SetDeterminationStatus updates the status of a stored decision.
	SetDeterminationStatus(ctx context.Context, id, status string) error
	// PutReview inserts or updates a review by ID.
	PutReview(ctx context.Context, r Review) error
	// States reads subjects' governance states inside the transaction, so
	// that a decision made under its lock sees every change committed
	// before it or made earlier in it.
	States(ctx context.Context, pseudonyms []Pseudonym) (map[Pseudonym]*policy.State, error)
	// Subjects reads stored subjects inside the transaction. A writer that
	// decides again under the transaction's lock reads keys here, never
	// through the Store: on a pool of connections, a read through the
	// Store from inside a transaction that holds the governance lock can
	// wait for ever on a connection whose transaction waits on that lock.
	Subjects(ctx context.Context, pseudonyms []Pseudonym) (map[Pseudonym]SubjectKey, error)
	// CloseReview stores r's outcome (status, reviewer, outcome, reason,
	// closed) only if the stored review is still open, checked in this
	// transaction, so that of two concurrent outcomes exactly one wins; the
	// other gets ECONFLICT (ENOTFOUND if there is no such review).
	CloseReview(ctx context.Context, r Review) error
	// PutItems inserts or replaces items by ID.
	PutItems(ctx context.Context, items []Item) error
	// PutProtected stores protected attributes; the grant must allow Collect.
	PutProtected(ctx context.Context, g policy.Grant, values []ProtectedValue) error
}

// PendingMark is a stored batch's record that its subjects' labels wait
// for incremental derivation (Tx.MarkPending).
type PendingMark struct {
	ID         int64
	Pseudonyms []Pseudonym
}
