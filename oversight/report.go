package oversight

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// ErrRateLimited refuses a report from a client that sent too many; the HTTP
// layer answers 429.
var ErrRateLimited = errors.New("too many reports from this address; try again later")

// ReportInput is a violation report from anyone (RO-8).
type ReportInput struct {
	Description string `json:"description"`
	Contact     string `json:"contact,omitempty"`
}

// Report is a violation report as staff see it.
type Report struct {
	ID string `json:"id"`
	// Type is violation_report, or complaint for one the regulator
	// routed here (open, answered, then closed by the regulator).
	Type        string    `json:"type"`
	Status      string    `json:"status"` // open, fulfilled
	Created     time.Time `json:"created"`
	Deadline    time.Time `json:"deadline"`
	Overdue     bool      `json:"overdue"`
	Closed      time.Time `json:"closed,omitzero"`
	Description string    `json:"description,omitempty"`
	Contact     string    `json:"contact,omitempty"`
	Answer      string    `json:"answer,omitempty"`
	LogIndex    int64     `json:"log_index"`
}

// ReportReceipt is what the reporter gets: the id and the secret that
// together let them follow the report without an account.
type ReportReceipt struct {
	ID       string    `json:"id"`
	Secret   string    `json:"secret"`
	Deadline time.Time `json:"deadline"`
	// Follow is, on an engine joined to a regulator, where the report
	// (forwarded there as a complaint) is followed with its secret.
	Follow string `json:"follow,omitempty"`
}

// Report records a violation report from client (its address, for rate
// limiting only; it is not stored). The text is sealed with a data key of
// its own, and the audit record holds only its digest (RO-8).
func (s *Service) Report(ctx context.Context, client string, in ReportInput) (ReportReceipt, error) {
	in.Description, in.Contact = strings.TrimSpace(in.Description), strings.TrimSpace(in.Contact)
	switch {
	case in.Description == "":
		return ReportReceipt{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-8", Message: "a report needs a \"description\" of the suspected violation"}
	case len(in.Description) > s.opts.ReportMaxText:
		return ReportReceipt{}, &portrait.Error{Code: portrait.ETOOLARGE, Requirement: "RO-8", Message: fmt.Sprintf("the description has %d bytes; the limit is %d", len(in.Description), s.opts.ReportMaxText)}
	case len(in.Contact) > 256:
		return ReportReceipt{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-8", Message: "the contact is longer than 256 bytes"}
	case !utf8.ValidString(in.Description) || !utf8.ValidString(in.Contact):
		return ReportReceipt{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-8", Message: "the report is not valid UTF-8 text"}
	}
	if !s.limiter.Allow(client, s.opts.Now()) {
		return ReportReceipt{}, ErrRateLimited
	}
	if reg := s.regulator(); reg != nil {
		// A joined company does not judge complaints about itself: the
		// report goes to the regulator, which routes it back to the queue.
		text := in.Description
		if in.Contact != "" {
			text += "\n\n联系方式 Contact: " + in.Contact
		}
		rc, err := reg.Forward(ctx, text)
		if err != nil {
			return ReportReceipt{}, &portrait.Error{Code: portrait.EUNAVAILABLE, Requirement: "RO-8", Message: "the report could not be passed to the regulator; try again, or file it at the regulator directly: " + err.Error()}
		}
		return rc, nil
	}
	now := s.now()
	id := newID("rpt_")
	sealed, err := s.seal(id, in)
	if err != nil {
		return ReportReceipt{}, err
	}
	c := portrait.Case{ID: id, Pseudonym: NoSubject, Type: TypeReport, Status: statusOpen, Created: now,
		Deadline: s.opts.ReportDeadline.After(now), Reason: sealed}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: "report", Time: now, Actor: "public", Action: "open", Digest: digest(in),
			Codes: []string{"RO-8"}, Detail: map[string]any{"case": id, "deadline": c.Deadline}})
		if err != nil {
			return err
		}
		c.LogIndex = idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return ReportReceipt{}, failClosed("record report", err)
	}
	return ReportReceipt{ID: id, Secret: s.secret(id), Deadline: c.Deadline}, nil
}

// Reports lists the violation reports with their text, oldest first.
func (s *Service) Reports(ctx context.Context) ([]Report, error) {
	cases, err := s.store.Cases(ctx, NoSubject)
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out := []Report{}
	for _, c := range cases {
		if c.Type != TypeReport && c.Type != TypeComplaint {
			continue
		}
		r, err := s.report(c)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Service) find(ctx context.Context, id string) (portrait.Case, error) {
	cases, err := s.store.Cases(ctx, NoSubject)
	if err != nil {
		return portrait.Case{}, fmt.Errorf("find report: %w", err)
	}
	for _, c := range cases {
		if c.ID == id && (c.Type == TypeReport || c.Type == TypeComplaint) {
			return c, nil
		}
	}
	return portrait.Case{}, portrait.Errorf(portrait.ENOTFOUND, "no report %s", id)
}

func (s *Service) report(c portrait.Case) (Report, error) {
	in, err := s.open(c.ID, c.Reason)
	if err != nil {
		return Report{}, err
	}
	return Report{ID: c.ID, Type: c.Type, Status: c.Status, Created: c.Created, Deadline: c.Deadline, Closed: c.Closed,
		Overdue: c.Status == statusOpen && c.Deadline.Before(s.now()), Description: in.Description, Contact: in.Contact,
		Answer: c.Outcome, LogIndex: c.LogIndex}, nil
}

// Follow returns a report's progress to its reporter, who proves it is theirs
// with the secret from the receipt. It leaves out the contact they gave.
func (s *Service) Follow(ctx context.Context, id, secret string) (Report, error) {
	if !hmac.Equal([]byte(secret), []byte(s.secret(id))) {
		// The same answer as an unknown id: a wrong secret reveals nothing.
		return Report{}, portrait.Errorf(portrait.ENOTFOUND, "no report %s with this secret", id)
	}
	c, err := s.find(ctx, id)
	if err != nil {
		return Report{}, err
	}
	r, err := s.report(c)
	if err != nil {
		return Report{}, err
	}
	r.Contact, r.LogIndex = "", 0
	return r, nil
}

// Answer closes a report with the handler's answer (RO-8). Only an admin may.
func (s *Service) Answer(ctx context.Context, caller policy.Caller, id, answer string) (Report, error) {
	if caller.Role != policy.Admin {
		return Report{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-8", Message: "only an admin answers violation reports"}
	}
	answer = strings.TrimSpace(answer)
	if answer == "" {
		return Report{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-8", Message: "an answer needs an \"answer\" text"}
	}
	c, err := s.find(ctx, id)
	if err != nil {
		return Report{}, err
	}
	if c.Type == TypeComplaint {
		return s.answerComplaint(ctx, caller, c, answer)
	}
	if c.Status != statusOpen {
		return Report{}, portrait.Errorf(portrait.ECONFLICT, "report %s is already answered", id)
	}
	c.Status, c.Outcome, c.Closed = statusAnswered, answer, s.now()
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if _, err := s.log.Append(ctx, tx, audit.Record{Kind: "report", Time: c.Closed, Actor: actor(caller), Action: "answer",
			Digest: digest(answer), Codes: []string{"RO-8"}, Detail: map[string]any{"case": id}}); err != nil {
			return err
		}
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return Report{}, failClosed("answer report", err)
	}
	return s.report(c)
}

// secret is the reporter's secret for id: a MAC under a key derived from
// the receipt key, so nothing needs storing and nobody else can make one.
func (s *Service) secret(id string) string {
	key := sha256.Sum256(append([]byte("portrait/report-secret/v1/"), s.keys.ReceiptKey().Seed()...))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// seal encrypts a report under a fresh data key wrapped by the master key
// (envelope encryption, as for subjects), bound to the report id. The
// result is "v1.<wrapped key>.<ciphertext>", both base64.
func (s *Service) seal(id string, in ReportInput) (string, error) {
	subj, ci, err := s.keys.NewSubject(reportKeyName(id))
	if err != nil {
		return "", fmt.Errorf("seal report: %w", err)
	}
	body, _ := json.Marshal(in)
	enc := base64.StdEncoding
	return "v1." + enc.EncodeToString(subj.WrappedKey) + "." + enc.EncodeToString(ci.Seal(body, []byte("portrait/report/"+id))), nil
}

func (s *Service) open(id, sealed string) (ReportInput, error) {
	parts := strings.Split(sealed, ".")
	bad := fmt.Errorf("report %s: the stored text is not a sealed report", id)
	if len(parts) != 3 || parts[0] != "v1" {
		return ReportInput{}, bad
	}
	wrapped, err1 := base64.StdEncoding.DecodeString(parts[1])
	ct, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return ReportInput{}, bad
	}
	ci, err := s.keys.Open(portrait.SubjectKey{Pseudonym: s.keys.Pseudonym(reportKeyName(id)), WrappedKey: wrapped})
	if err != nil {
		return ReportInput{}, fmt.Errorf("report %s: %w", id, err)
	}
	body, err := ci.Open(ct, []byte("portrait/report/"+id))
	if err != nil {
		return ReportInput{}, fmt.Errorf("report %s: open: %w", id, err)
	}
	var in ReportInput
	if err := json.Unmarshal(body, &in); err != nil {
		return ReportInput{}, fmt.Errorf("report %s: %w", id, err)
	}
	return in, nil
}

func reportKeyName(id string) string { return "portrait/report/" + id }
