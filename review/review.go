package review

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Review kinds and statuses.
const (
	KindAppeal  = "appeal"
	KindRefusal = "refusal"

	StatusOpen   = "open"
	StatusClosed = "closed"
)

// Limits on what people write.
const (
	MaxStatement = 4000
	MaxReason    = 2000
)

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// Deadline is how long a review may take (default
	// apply.DefaultReviewDeadline).
	Deadline time.Duration
	Now      func() time.Time
}

// Service runs human review.
type Service struct {
	store  Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	opts   Options
}

// New returns a review Service.
func New(d Deps, opts Options) (*Service, error) {
	store, point, ledger, ks, log := d.Store, d.Point, d.Ledger, d.Keys, d.Log
	if store == nil || point == nil || ledger == nil || ks == nil || log == nil {
		return nil, errors.New("review: store, decision point, ledger, keyring and audit log are all required")
	}
	if opts.Deadline == 0 {
		opts.Deadline = apply.DefaultReviewDeadline
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, point: point, ledger: ledger, keys: ks, log: log, opts: opts}, nil
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "rev_" + hex.EncodeToString(b)
}

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return string("subject:" + c.Pseudonym)
	}
	return string(c.Role) + ":" + c.ID
}

func failClosed(op string, err error) error {
	var pe *portrait.Error
	var d *policy.Denied
	if errors.As(err, &pe) || errors.As(err, &d) {
		return err
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: op + ": the store or audit log is unavailable; nothing was changed", Err: err}
}

func statementAD(p portrait.Pseudonym, id string) []byte { return keys.StatementAD(p, id) }

// cipher opens the data key of a stored subject.
func (s *Service) cipher(ctx context.Context, p portrait.Pseudonym) (*keys.Cipher, error) {
	subs, err := s.store.Subjects(ctx, []portrait.Pseudonym{p})
	if err != nil {
		return nil, failClosed("read subject", err)
	}
	sub, ok := subs[p]
	if !ok {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", p)
	}
	return s.keys.Open(sub)
}

// ownDecision returns the caller's own decision; any other is reported as
// absent, so that a subject cannot probe others' decision ids (AD-3).
func (s *Service) ownDecision(ctx context.Context, caller policy.Caller, id string) (portrait.StoredDetermination, error) {
	if caller.Role != policy.Subject {
		return portrait.StoredDetermination{}, portrait.Errorf(portrait.EFORBIDDEN, "only the subject of a decision may appeal it or refuse its automation")
	}
	d, err := s.store.DeterminationByID(ctx, id)
	if err != nil {
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return d, portrait.Errorf(portrait.ENOTFOUND, "you have no decision %q", id)
		}
		return d, failClosed("read decision", err)
	}
	if d.Pseudonym != caller.Pseudonym {
		return portrait.StoredDetermination{}, portrait.Errorf(portrait.ENOTFOUND, "you have no decision %q", id)
	}
	return d, nil
}

// Appeal opens a human review of the caller's own decision with their
// statement (AD-3); the decision is pending review until a reviewer closes
// it. Kind is KindAppeal (statement required) or KindRefusal (the subject
// refuses the purely automated decision, AD-2).
func (s *Service) Appeal(ctx context.Context, caller policy.Caller, decision, kind, statement string) (portrait.Review, error) {
	if kind != KindAppeal && kind != KindRefusal {
		return portrait.Review{}, portrait.Errorf(portrait.EINVALID, "review kind %q: want appeal or refusal", kind)
	}
	statement = strings.TrimSpace(statement)
	if kind == KindAppeal && statement == "" {
		return portrait.Review{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "AD-3", Message: "an appeal needs a statement: say in your own words why the decision is wrong"}
	}
	if len(statement) > MaxStatement {
		return portrait.Review{}, portrait.Errorf(portrait.EINVALID, "the statement is %d bytes; keep it under %d", len(statement), MaxStatement)
	}
	d, err := s.ownDecision(ctx, caller, decision)
	if err != nil {
		return portrait.Review{}, err
	}
	open, err := s.store.Reviews(ctx, StatusOpen)
	if err != nil {
		return portrait.Review{}, failClosed("read reviews", err)
	}
	for _, r := range open {
		if r.DeterminationID == d.ID {
			return portrait.Review{}, portrait.Errorf(portrait.ECONFLICT, "decision %s is already under review (%s, due %s)", d.ID, r.ID, r.Deadline.Format("2006-01-02"))
		}
	}
	c, err := s.cipher(ctx, d.Pseudonym)
	if err != nil {
		return portrait.Review{}, err
	}
	now := s.now()
	r := portrait.Review{ID: newID(), DeterminationID: d.ID, Pseudonym: d.Pseudonym, UseCase: d.UseCase, Kind: kind, Status: StatusOpen,
		Created: now, Deadline: now.Add(s.opts.Deadline)}
	if statement != "" {
		r.Sealed = c.Seal([]byte(statement), statementAD(d.Pseudonym, r.ID))
	}
	rec := audit.Record{Kind: "review", Time: now, Actor: actor(caller), Pseudonym: d.Pseudonym, Action: kind,
		Detail: map[string]any{"review": r.ID, "decision": d.ID, "usecase": d.UseCase, "deadline": r.Deadline.Format(time.RFC3339)}}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutReview(ctx, r); err != nil {
			return err
		}
		if err := tx.SetDeterminationStatus(ctx, d.ID, apply.StatusPendingReview); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return portrait.Review{}, failClosed("open review", err)
	}
	return r, nil
}

func reviewerOnly(c policy.Caller) error {
	if c.Role != policy.Reviewer {
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-7", Message: fmt.Sprintf("only a reviewer may work the review queue; role %q may not", c.Role)}
	}
	return nil
}

// Queue lists the open reviews, oldest first.
func (s *Service) Queue(ctx context.Context, caller policy.Caller) ([]portrait.Review, error) {
	if err := reviewerOnly(caller); err != nil {
		return nil, err
	}
	out, err := s.store.Reviews(ctx, StatusOpen)
	if err != nil {
		return nil, failClosed("read reviews", err)
	}
	return out, nil
}

// Overdue lists the open reviews past their deadline (AD-5 complaint
// channel, RO-7 reporting).
func (s *Service) Overdue(ctx context.Context, caller policy.Caller) ([]portrait.Review, error) {
	if caller.Role != policy.Reviewer && caller.Role != policy.Admin && caller.Role != policy.Auditor && caller.Role != policy.Regulator {
		return nil, portrait.Errorf(portrait.EFORBIDDEN, "role %q may not read the overdue report", caller.Role)
	}
	open, err := s.store.Reviews(ctx, StatusOpen)
	if err != nil {
		return nil, failClosed("read reviews", err)
	}
	now := s.now()
	out := []portrait.Review{}
	for _, r := range open {
		if now.After(r.Deadline) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Case is what a reviewer sees.
type Case struct {
	Review    portrait.Review              `json:"review"`
	Decision  portrait.StoredDetermination `json:"decision"`
	Detail    *apply.Detail                `json:"detail,omitempty"`
	Statement string                       `json:"statement,omitempty"`
	// Conflict says why this reviewer may not decide the case (RO-7).
	Conflict string `json:"conflict,omitempty"`
}

// Case returns one review with its decision, explanation and statement.
// The view is audited.
func (s *Service) Case(ctx context.Context, caller policy.Caller, id string) (Case, error) {
	if err := reviewerOnly(caller); err != nil {
		return Case{}, err
	}
	r, err := s.store.ReviewByID(ctx, id)
	if err != nil {
		return Case{}, failClosed("read review", err)
	}
	d, detail, err := s.decision(ctx, caller, r)
	if err != nil {
		return Case{}, err
	}
	out := Case{Review: r, Decision: d, Detail: &detail}
	if len(r.Sealed) > 0 {
		c, err := s.cipher(ctx, r.Pseudonym)
		if err != nil {
			return Case{}, err
		}
		b, err := c.Open(r.Sealed, statementAD(r.Pseudonym, r.ID))
		if err != nil {
			return Case{}, fmt.Errorf("open statement of review %s: %w", r.ID, err)
		}
		out.Statement = string(b)
	}
	if err := s.conflict(caller, r); err != nil {
		out.Conflict = portrait.ErrorMessage(err)
	}
	rec := audit.Record{Kind: "review", Time: s.now(), Actor: actor(caller), Pseudonym: r.Pseudonym, Action: "view",
		Detail: map[string]any{"review": r.ID, "decision": r.DeterminationID}}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { _, err := s.log.Append(ctx, tx, rec); return err })
	if err != nil {
		return Case{}, failClosed("record case view", err)
	}
	return out, nil
}

// decision reads the reviewed decision with its sealed detail, through an
// Access grant on the subject's behalf: the subject asked for this review.
func (s *Service) decision(ctx context.Context, caller policy.Caller, r portrait.Review) (portrait.StoredDetermination, apply.Detail, error) {
	st, err := s.ledger.State(ctx, r.Pseudonym)
	if err != nil {
		return portrait.StoredDetermination{}, apply.Detail{}, err
	}
	dec := s.point.Decide(policy.Request{State: st, Action: policy.Access, Caller: policy.Caller{Role: policy.System, ID: "review/" + caller.ID}})
	if !dec.Allow {
		return portrait.StoredDetermination{}, apply.Detail{}, dec.Err()
	}
	list, err := s.store.Determinations(ctx, dec.Grant)
	if err != nil {
		return portrait.StoredDetermination{}, apply.Detail{}, failClosed("read decisions", err)
	}
	c, err := s.cipher(ctx, r.Pseudonym)
	if err != nil {
		return portrait.StoredDetermination{}, apply.Detail{}, err
	}
	for _, d := range list {
		if d.ID == r.DeterminationID {
			detail, err := apply.OpenDecision(c, d)
			d.Sealed = nil
			return d, detail, err
		}
	}
	return portrait.StoredDetermination{}, apply.Detail{}, portrait.Errorf(portrait.ENOTFOUND, "decision %s of review %s is no longer stored (erased?)", r.DeterminationID, r.ID)
}

// team and person split a staff key id "team/person".
func team(id string) string {
	t, _, _ := strings.Cut(id, "/")
	return t
}

// conflict refuses a reviewer who owns the use-case or its model, or who
// is the appellant (RO-7).
func (s *Service) conflict(caller policy.Caller, r portrait.Review) error {
	cat := s.point.Catalog()
	var owners []string
	if uc := cat.UseCase(r.UseCase); uc != nil {
		owners = append(owners, uc.Owner)
		if l := cat.Label(uc.Model); l != nil {
			owners = append(owners, l.Owner)
		}
	}
	for _, o := range owners {
		// Case folded: a catalog owner "Risk-Models" is the team of the
		// key named risk-models/omar.
		if o != "" && (strings.EqualFold(caller.ID, o) || strings.EqualFold(team(caller.ID), o)) {
			return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-7",
				Message: fmt.Sprintf("reviewer %s belongs to %s, which owns use-case %s or its model; someone independent must review it", caller.ID, o, r.UseCase)}
		}
	}
	_, person, _ := strings.Cut(caller.ID, "/")
	for _, id := range []string{caller.ID, person} {
		if id != "" && s.keys.Pseudonym(id) == r.Pseudonym {
			return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-7", Message: "nobody may review their own appeal"}
		}
	}
	return nil
}

// Outcomes of a review.
const (
	Upheld     = "upheld"
	Overturned = "overturned"
	// Modified keeps the decision's direction but changes its terms (a
	// lower limit, a shorter period); the reason says how. PIPL Art. 24
	// and the algorithm rules ask that a person can accept, correct or
	// reverse an automated decision (采纳、修正或者推翻).
	Modified = "modified"
)

// Conclude closes a review: the reviewer upholds or overturns the decision
// with a reason, which the subject then sees (AD-3, AD-7). Separation of
// duties is enforced (RO-7).
func (s *Service) Conclude(ctx context.Context, caller policy.Caller, id, outcome, reason string) (portrait.Review, error) {
	if err := reviewerOnly(caller); err != nil {
		return portrait.Review{}, err
	}
	if outcome != Upheld && outcome != Overturned && outcome != Modified {
		return portrait.Review{}, portrait.Errorf(portrait.EINVALID, "outcome %q: want upheld, modified or overturned", outcome)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > MaxReason {
		return portrait.Review{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "AD-3", Message: fmt.Sprintf("a review outcome needs a reason the subject can read, of 1 to %d bytes", MaxReason)}
	}
	r, err := s.store.ReviewByID(ctx, id)
	if err != nil {
		return portrait.Review{}, failClosed("read review", err)
	}
	if r.Status != StatusOpen {
		return portrait.Review{}, portrait.Errorf(portrait.ECONFLICT, "review %s is already %s (%s)", r.ID, r.Status, r.Outcome)
	}
	if err := s.conflict(caller, r); err != nil {
		return portrait.Review{}, err
	}
	now := s.now()
	r.Status, r.Reviewer, r.Outcome, r.Reason, r.Closed = StatusClosed, caller.ID, outcome, reason, now
	sum := sha256.Sum256([]byte(reason))
	rec := audit.Record{Kind: "review", Time: now, Actor: actor(caller), Pseudonym: r.Pseudonym, Action: outcome, Digest: hex.EncodeToString(sum[:]),
		Detail: map[string]any{"review": r.ID, "decision": r.DeterminationID, "usecase": r.UseCase, "late": now.After(r.Deadline)}}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		// The status read above may be stale by now: CloseReview checks it
		// again inside this transaction, so of two concurrent outcomes
		// exactly one is stored and logged; the other gets ECONFLICT.
		if err := tx.CloseReview(ctx, r); err != nil {
			return err
		}
		if err := tx.SetDeterminationStatus(ctx, r.DeterminationID, outcome); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return portrait.Review{}, failClosed("close review", err)
	}
	return r, nil
}

// Mine is one of a subject's decisions as they see it. While a human
// decides after the subject refused automation, the automated outcome,
// score and explanation are not shown (AD-2).
type Mine struct {
	ID           string        `json:"id"`
	UseCase      string        `json:"usecase"`
	Model        string        `json:"model"`
	ModelVersion int           `json:"model_version"`
	Status       string        `json:"status"`
	Created      time.Time     `json:"created"`
	InputHash    string        `json:"input_hash"`
	LogIndex     int64         `json:"log_index"`
	Outcome      *bool         `json:"outcome,omitempty"`
	Score        *float64      `json:"score,omitempty"`
	Detail       *apply.Detail `json:"detail,omitempty"`
	// Final is the outcome that stands: the automated one, or its reverse
	// once a reviewer overturned it; nil while a human decides.
	Final   *bool             `json:"final_outcome,omitempty"`
	Reviews []portrait.Review `json:"reviews"`
}

// Decisions lists the subject's own decisions with their explanations and
// the outcome of every review (AD-3).
func (s *Service) Decisions(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) ([]Mine, error) {
	st, err := s.ledger.State(ctx, pseudonym)
	if err != nil {
		return nil, err
	}
	dec := s.point.Decide(policy.Request{State: st, Action: policy.Access, Caller: caller})
	if !dec.Allow {
		return nil, dec.Err()
	}
	list, err := s.store.Determinations(ctx, dec.Grant)
	if err != nil {
		return nil, failClosed("read decisions", err)
	}
	out := []Mine{}
	if len(list) == 0 {
		return out, nil
	}
	c, err := s.cipher(ctx, pseudonym)
	if err != nil {
		return nil, err
	}
	all, err := s.store.Reviews(ctx, "")
	if err != nil {
		return nil, failClosed("read reviews", err)
	}
	for _, d := range list {
		m := Mine{ID: d.ID, UseCase: d.UseCase, Model: d.Model, ModelVersion: d.ModelVersion, Status: d.Status,
			Created: d.Created, InputHash: d.InputHash, LogIndex: d.LogIndex, Reviews: []portrait.Review{}}
		refusedOnly := d.Status == apply.StatusPendingReview
		for _, r := range all {
			if r.DeterminationID == d.ID {
				r.Sealed = nil
				m.Reviews = append(m.Reviews, r)
				refusedOnly = refusedOnly && r.Kind == KindRefusal
			}
		}
		if !refusedOnly {
			detail, err := apply.OpenDecision(c, d)
			if err != nil {
				return nil, err
			}
			outcome, score := d.Outcome, d.Score
			m.Outcome, m.Score, m.Detail = &outcome, &score, &detail
		}
		switch d.Status {
		case apply.StatusAutomated, apply.StatusUpheld, apply.StatusModified:
			f := d.Outcome
			m.Final = &f
		case apply.StatusOverturned:
			f := !d.Outcome
			m.Final = &f
		}
		out = append(out, m)
	}
	return out, nil
}
