package oversight

import (
	"context"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// TypeComplaint is a complaint about the company filed at (or forwarded
// to) its regulator and routed to the company's case queue by the
// engine's poll. The company answers it; only the regulator closes it.
const TypeComplaint = "complaint"

// Complaint statuses of this package beside open.
const (
	statusAwaiting = "answered" // answered, awaiting the regulator
	statusClosed   = "closed"   // closed by the regulator
)

// Regulator is the regulator a joined engine hands complaints to: what
// anyone reports at the engine's /v1/reports is forwarded there, and
// answers go there too.
type Regulator interface {
	// Forward files text as a complaint about this company and returns
	// the regulator's receipt and where to follow it.
	Forward(ctx context.Context, text string) (ReportReceipt, error)
	// Answer sends the company's answer to complaint id.
	Answer(ctx context.Context, id, text string) error
}

// Join makes the service hand complaints to reg (serve --regulator).
func (s *Service) Join(reg Regulator) { s.reg.Store(&reg) }

func (s *Service) regulator() Regulator {
	if r := s.reg.Load(); r != nil {
		return *r
	}
	return nil
}

// Routed records a complaint the regulator routed to the company, as a
// case in its queue, once: a complaint already queued is left alone.
// The text is sealed as a violation report's is; the log holds its digest.
func (s *Service) Routed(ctx context.Context, id, text string, created, deadline time.Time) error {
	if _, err := s.find(ctx, id); err == nil {
		return nil
	}
	sealed, err := s.seal(id, ReportInput{Description: text})
	if err != nil {
		return err
	}
	c := portrait.Case{ID: id, Pseudonym: NoSubject, Type: TypeComplaint, Status: statusOpen, Created: created.UTC(), Deadline: deadline.UTC(), Reason: sealed}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: "report", Time: s.now(), Actor: "regulator", Action: "route", Digest: digest(ReportInput{Description: text}),
			Codes: []string{"RO-8"}, Detail: map[string]any{"case": id, "deadline": c.Deadline}})
		if err != nil {
			return err
		}
		c.LogIndex = idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return failClosed("route complaint", err)
	}
	return nil
}

// Settled records that the regulator closed complaint id.
func (s *Service) Settled(ctx context.Context, id string, closed time.Time) error {
	c, err := s.find(ctx, id)
	if err != nil || c.Status == statusClosed {
		return err
	}
	c.Status, c.Closed = statusClosed, closed.UTC()
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if _, err := s.log.Append(ctx, tx, audit.Record{Kind: "report", Time: s.now(), Actor: "regulator", Action: "close",
			Codes: []string{"RO-8"}, Detail: map[string]any{"case": id}}); err != nil {
			return err
		}
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return failClosed("close complaint", err)
	}
	return nil
}

// answerComplaint sends an admin's answer to the regulator and marks the
// complaint answered; it stays open until the regulator closes it.
func (s *Service) answerComplaint(ctx context.Context, caller policy.Caller, c portrait.Case, answer string) (Report, error) {
	reg := s.regulator()
	if reg == nil {
		return Report{}, portrait.Errorf(portrait.EUNAVAILABLE, "complaint %s came from the regulator, and this engine is not joined to it", c.ID)
	}
	if c.Status != statusOpen {
		return Report{}, portrait.Errorf(portrait.ECONFLICT, "complaint %s is already %s", c.ID, c.Status)
	}
	if err := reg.Answer(ctx, c.ID, answer); err != nil {
		return Report{}, &portrait.Error{Code: portrait.EUNAVAILABLE, Requirement: "RO-8", Message: "the regulator did not take the answer; try again: " + err.Error()}
	}
	c.Status, c.Outcome = statusAwaiting, answer
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if _, err := s.log.Append(ctx, tx, audit.Record{Kind: "report", Time: s.now(), Actor: actor(caller), Action: "answer",
			Digest: digest(answer), Codes: []string{"RO-8"}, Detail: map[string]any{"case": c.ID, "to": "regulator"}}); err != nil {
			return err
		}
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return Report{}, failClosed("answer complaint", err)
	}
	return s.report(c)
}
