package rights

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Case types (SR-4).
const (
	TypeAccess          = "access"
	TypeExport          = "export"
	TypeCorrection      = "correction"
	TypeErasure         = "erasure"
	TypeRestriction     = "restriction"
	TypeObjection       = "objection"
	TypeLabel           = "label"
	TypePersonalization = "personalization"
	TypeExplanation     = "explanation"
	TypeWithdrawal      = "withdrawal"
)

// subjectTypes are the case types this service owns; other services keep
// cases of their own (breach notices, violation reports) in the same
// store, and Close must not touch those.
var subjectTypes = []string{TypeAccess, TypeExport, TypeCorrection, TypeErasure, TypeRestriction,
	TypeObjection, TypeLabel, TypePersonalization, TypeExplanation, TypeWithdrawal}

// IsRequest reports whether a case of type typ is a data-subject request
// (and not a breach notice or violation report kept in the same store).
func IsRequest(typ string) bool { return slices.Contains(subjectTypes, typ) }

// Case statuses.
const (
	StatusOpen      = "open"
	StatusFulfilled = "fulfilled"
	StatusRefused   = "refused"
)

// Deadline is how long a jurisdiction allows for answering a request
// (SR-5): a number of working days (Monday to Friday) or of calendar months.
type Deadline struct {
	WorkingDays int
	Months      int
}

// After returns the deadline of a request received at t.
func (d Deadline) After(t time.Time) time.Time {
	if d.Months > 0 {
		return t.AddDate(0, d.Months, 0)
	}
	out := t
	for n := d.WorkingDays; n > 0; {
		out = out.AddDate(0, 0, 1)
		if wd := out.Weekday(); wd != time.Saturday && wd != time.Sunday {
			n--
		}
	}
	return out
}

// Jurisdictions are the built-in deadlines, keyed by the catalog's
// jurisdiction codes (one vocabulary with the catalog and the rule pack):
// PIPL practice and GB/T 35273 8.7 allow 15 working days (CN); GDPR
// Art. 12(3) one month (EU). The law's names, pipl and gdpr, are kept as
// aliases for existing configurations.
var Jurisdictions = map[string]Deadline{
	catalog.JurisdictionCN: {WorkingDays: 15},
	catalog.JurisdictionEU: {Months: 1},
	"pipl":                 {WorkingDays: 15},
	"gdpr":                 {Months: 1},
}

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// Jurisdiction picks the deadline from Jurisdictions; by default the
	// catalog's: EU when it declares only EU, CN otherwise.
	Jurisdiction string
	// Deadline overrides the jurisdiction's deadline when non-zero.
	Deadline Deadline
	// OnCorrected runs after a correction is stored, to recompute the
	// labels and scores built on the field (CM-2). Its error is logged in
	// the case outcome, not returned: the correction itself stands.
	OnCorrected func(ctx context.Context, pseudonym portrait.Pseudonym) error
	// OnErased runs after an erasure, for caches outside the store
	// (recommendations, queued audience exports) (SR-3).
	OnErased func(ctx context.Context, pseudonym portrait.Pseudonym)
	// Delivered lists the destinations that received a subject's data,
	// for the export; nil lists none.
	Delivered func(ctx context.Context, pseudonym portrait.Pseudonym) ([]DeliveredEntry, error)
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Logger receives what fails after a request was already carried out.
	Logger *slog.Logger
}

// Service handles data-subject requests. It is safe for concurrent use.
type Service struct {
	store  Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	opts   Options
	dl     Deadline

	eraseMu sync.Mutex // one erasure at a time, so a double submit sees the first
}

// New returns a Service.
func New(d Deps, opts Options) (*Service, error) {
	store, point, ledger, ks, log := d.Store, d.Point, d.Ledger, d.Keys, d.Log
	if store == nil || point == nil || ledger == nil || ks == nil || log == nil {
		return nil, errors.New("rights: store, decision point, ledger, keyring and audit log are all required")
	}
	if opts.Jurisdiction == "" {
		opts.Jurisdiction = catalog.JurisdictionCN
		if j := point.Catalog().Jurisdictions; len(j) == 1 && j[0] == catalog.JurisdictionEU {
			opts.Jurisdiction = catalog.JurisdictionEU
		}
	}
	dl, ok := Jurisdictions[opts.Jurisdiction]
	if !ok {
		return nil, fmt.Errorf("rights: unknown jurisdiction %q: want CN or EU, or set Options.Deadline", opts.Jurisdiction)
	}
	if opts.Deadline != (Deadline{}) {
		if opts.Deadline.WorkingDays < 0 || opts.Deadline.Months < 0 {
			return nil, fmt.Errorf("rights: negative deadline %+v", opts.Deadline)
		}
		dl = opts.Deadline
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{store: store, point: point, ledger: ledger, keys: ks, log: log, opts: opts, dl: dl}, nil
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// Deadline returns the deadline of a request received at t.
func (s *Service) Deadline(t time.Time) time.Time { return s.dl.After(t) }

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "case_" + hex.EncodeToString(b)
}

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return "subject"
	}
	return string(c.Role) + ":" + c.ID
}

// newCase starts a case received now.
func (s *Service) newCase(pseudonym portrait.Pseudonym, typ string) portrait.Case {
	at := s.now()
	return portrait.Case{ID: newID(), Pseudonym: pseudonym, Type: typ, Status: StatusOpen, Created: at, Deadline: s.dl.After(at)}
}

// fulfil closes c as fulfilled within tx.
func fulfil(c portrait.Case, at time.Time, outcome string, logIndex int64) portrait.Case {
	c.Status, c.Closed, c.Outcome, c.LogIndex = StatusFulfilled, at, outcome, logIndex
	return c
}

// finish records a case that was handled outside a transaction of ours
// (the ledger's): fulfilled when err is nil, refused with err's reason
// otherwise. It returns err unchanged.
func (s *Service) finish(ctx context.Context, c portrait.Case, outcome string, err error) error {
	at := s.now()
	if err == nil {
		c = fulfil(c, at, outcome, 0)
	} else if refusal(err) {
		c.Status, c.Closed, c.Reason = StatusRefused, at, reason(err)
	} else {
		// The store or log failed: nothing happened, and nothing to track.
		return err
	}
	if perr := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutCase(ctx, c) }); perr != nil {
		if err != nil {
			return err
		}
		return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the request was carried out but its case could not be recorded; retry to see it", Err: perr}
	}
	return err
}

// refusal reports whether err is a refusal to record (SR-4) rather than a
// failure of the store.
func refusal(err error) bool {
	var d *policy.Denied
	if errors.As(err, &d) {
		return true
	}
	switch portrait.ErrorCode(err) {
	case portrait.EINVALID, portrait.EDENIED, portrait.ENOTFOUND, portrait.ECONFLICT:
		return true
	}
	return false
}

func reason(err error) string {
	var d *policy.Denied
	if errors.As(err, &d) && len(d.Reasons) > 0 {
		r := d.Reasons[0]
		if r.Requirement != "" {
			return r.Message + " (" + r.Requirement + ")"
		}
		return r.Message
	}
	return portrait.ErrorMessage(err)
}

// subject returns the stored subject, or ENOTFOUND.
func (s *Service) subject(ctx context.Context, pseudonym portrait.Pseudonym) (portrait.SubjectKey, error) {
	got, err := s.store.Subjects(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return portrait.SubjectKey{}, fmt.Errorf("look up subject %s: %w", pseudonym, err)
	}
	sub, ok := got[pseudonym]
	if !ok {
		return portrait.SubjectKey{}, portrait.Errorf(portrait.ENOTFOUND, "no data is stored about subject %s", pseudonym)
	}
	return sub, nil
}

// grant asks the decision point for a rights action on pseudonym.
func (s *Service) grant(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, a policy.Action, fields []string) (policy.Grant, *policy.State, error) {
	st, err := s.ledger.State(ctx, pseudonym)
	if err != nil {
		return policy.Grant{}, nil, err
	}
	d := s.point.Decide(policy.Request{State: st, Action: a, Caller: caller, Fields: fields})
	if err := d.Err(); err != nil {
		return policy.Grant{}, nil, err
	}
	return d.Grant, st, nil
}

// authorize refuses callers who may not act for pseudonym before anything
// is recorded about the request.
func authorize(caller policy.Caller, pseudonym portrait.Pseudonym) error {
	switch caller.Role {
	case policy.Subject:
		if caller.Pseudonym != pseudonym {
			return portrait.Errorf(portrait.EFORBIDDEN, "a subject token reaches only its own subject")
		}
	case policy.Operator, policy.Admin, policy.System:
	default:
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "CM-5", Message: fmt.Sprintf("role %s may not handle subject requests; use an operator key", caller.Role)}
	}
	return nil
}

// Cases lists the cases of pseudonym, or of everyone when it is "".
func (s *Service) Cases(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.Case, error) {
	cs, err := s.store.Cases(ctx, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("list cases: %w", err)
	}
	if cs == nil {
		cs = []portrait.Case{}
	}
	return cs, nil
}

// Overdue lists open cases whose deadline has passed, most overdue first
// (SR-5).
func (s *Service) Overdue(ctx context.Context) ([]portrait.Case, error) {
	all, err := s.Cases(ctx, "")
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []portrait.Case{}
	for _, c := range all {
		if c.Status == StatusOpen && c.Deadline.Before(now) {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Deadline.Before(out[j].Deadline) })
	return out, nil
}

// Request opens a case that staff handle by hand — an explanation, or
// anything the automatic paths do not cover — and queues it (SR-4).
func (s *Service) Request(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, typ string) (portrait.Case, error) {
	if err := authorize(caller, pseudonym); err != nil {
		return portrait.Case{}, err
	}
	switch typ {
	case TypeExplanation, TypeAccess, TypeCorrection, TypeErasure, TypeRestriction, TypeObjection, TypeWithdrawal, TypeExport:
	default:
		return portrait.Case{}, portrait.Errorf(portrait.EINVALID, "request type %q: want explanation, access, export, correction, erasure, restriction, objection or withdrawal", typ)
	}
	if _, err := s.subject(ctx, pseudonym); err != nil {
		return portrait.Case{}, err
	}
	c := s.newCase(pseudonym, typ)
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: "request", Time: c.Created, Actor: actor(caller), Pseudonym: pseudonym,
			Action: typ, Detail: map[string]any{"case": c.ID, "deadline": c.Deadline}})
		if err != nil {
			return err
		}
		c.LogIndex = idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return portrait.Case{}, failClosed("open case", err)
	}
	return c, nil
}

// Close ends an open case by hand with an outcome; a refusal must state
// its reason (SR-4). Only staff who handle requests may.
func (s *Service) Close(ctx context.Context, caller policy.Caller, id string, refused bool, text string) (portrait.Case, error) {
	if caller.Role != policy.Operator && caller.Role != policy.Admin {
		return portrait.Case{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "CM-5", Message: "only operators and admins close cases"}
	}
	if text == "" {
		return portrait.Case{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "SR-4", Message: "closing a case needs an outcome, and a refusal needs its reason"}
	}
	all, err := s.Cases(ctx, "")
	if err != nil {
		return portrait.Case{}, err
	}
	for _, c := range all {
		if c.ID != id {
			continue
		}
		if !slices.Contains(subjectTypes, c.Type) {
			return portrait.Case{}, portrait.Errorf(portrait.EINVALID, "case %s is a %s, not a data-subject request; close it where it was filed", id, c.Type)
		}
		if c.Status != StatusOpen {
			return portrait.Case{}, portrait.Errorf(portrait.ECONFLICT, "case %s is already %s", id, c.Status)
		}
		c.Closed = s.now()
		if refused {
			c.Status, c.Reason = StatusRefused, text
		} else {
			c.Status, c.Outcome = StatusFulfilled, text
		}
		err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			if _, err := s.log.Append(ctx, tx, audit.Record{Kind: "request", Time: c.Closed, Actor: actor(caller), Pseudonym: c.Pseudonym,
				Action: "close", Detail: map[string]any{"case": c.ID, "status": c.Status}}); err != nil {
				return err
			}
			return tx.PutCase(ctx, c)
		})
		if err != nil {
			return portrait.Case{}, failClosed("close case", err)
		}
		return c, nil
	}
	return portrait.Case{}, portrait.Errorf(portrait.ENOTFOUND, "no case %s", id)
}

// failClosed keeps application errors and marks anything else as the
// store or log being unavailable: nothing was changed (invariant 3).
func failClosed(op string, err error) error {
	var pe *portrait.Error
	if errors.As(err, &pe) {
		return err
	}
	var d *policy.Denied
	if errors.As(err, &d) {
		return err
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: op + ": the store or audit log is unavailable, so nothing was changed; retry later", Err: err}
}
