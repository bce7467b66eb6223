package oversight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// Case types and statuses of this package. A breach is closed when it is
// notified; a report is open until answered, like a subject request.
const (
	TypeBreach     = "breach"
	TypeReport     = "violation_report"
	statusNotified = "notified"
	statusOpen     = "open"
	statusAnswered = "fulfilled"
)

// BreachInput is what an admin states about a personal-information breach:
// everything PIPL Art. 57 asks a notice to contain (RO-3).
type BreachInput struct {
	// Categories are the fideslang data-category keys involved.
	Categories []string `json:"categories"`
	Cause      string   `json:"cause"`
	Harm       string   `json:"harm"`     // the harm it may cause
	Measures   string   `json:"measures"` // what the handler has done
	Advice     string   `json:"advice"`   // what individuals can do
	Contact    string   `json:"contact"`
}

// Breach is a recorded breach with its generated notice.
type Breach struct {
	ID       string            `json:"id"`
	Reported time.Time         `json:"reported"`
	By       string            `json:"by"`
	LogIndex int64             `json:"log_index"`
	Input    BreachInput       `json:"breach"`
	Notice   map[string]string `json:"notice"` // by language: zh-CN, en
}

// storedBreach is the case outcome of a breach. The notice is company
// text about categories, not about a person, so it is kept in the clear;
// the audit record holds its digest.
type storedBreach struct {
	BreachInput
	By string `json:"by"`
}

// validate names the first missing or malformed part.
func (in BreachInput) validate() error {
	missing := func(name string) error {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-3",
			Message: fmt.Sprintf("a breach notice needs %q: PIPL Art. 57 asks for the categories, cause, possible harm, measures taken, what individuals can do, and a contact", name)}
	}
	if len(in.Categories) == 0 {
		return missing("categories")
	}
	for i, c := range in.Categories {
		if !catalog.KnownCategory(c) {
			return &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-3",
				Message: fmt.Sprintf("categories[%d] %q is not a fideslang data-category key (e.g. user.contact.email)", i, c)}
		}
	}
	for _, f := range []struct{ name, v string }{{"cause", in.Cause}, {"harm", in.Harm}, {"measures", in.Measures}, {"advice", in.Advice}, {"contact", in.Contact}} {
		if strings.TrimSpace(f.v) == "" {
			return missing(f.name)
		}
	}
	return nil
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ReportBreach records a breach and its notice: a case of type breach and
// an audit record with the notice's digest (RO-3). Only an admin may.
func (s *Service) ReportBreach(ctx context.Context, caller policy.Caller, in BreachInput) (Breach, error) {
	if caller.Role != policy.Admin {
		return Breach{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-3", Message: "only an admin records breach notices"}
	}
	if err := in.validate(); err != nil {
		return Breach{}, err
	}
	b := Breach{ID: newID("brc_"), Reported: s.now(), By: actor(caller), Input: in}
	body, err := json.Marshal(storedBreach{BreachInput: in, By: b.By})
	if err != nil {
		return Breach{}, fmt.Errorf("encode breach: %w", err)
	}
	c := portrait.Case{ID: b.ID, Pseudonym: NoSubject, Type: TypeBreach, Status: statusNotified, Created: b.Reported, Closed: b.Reported,
		Deadline: b.Reported, Outcome: string(body)}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: TypeBreach, Time: b.Reported, Actor: b.By, Action: "notify", Digest: digest(b.Input),
			Codes: []string{"RO-3"}, Detail: map[string]any{"case": b.ID, "categories": in.Categories}})
		if err != nil {
			return err
		}
		c.LogIndex, b.LogIndex = idx, idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return Breach{}, failClosed("record breach", err)
	}
	b.Notice = breachNotice(b)
	return b, nil
}

// Breaches lists the recorded breaches, oldest first.
func (s *Service) Breaches(ctx context.Context) ([]Breach, error) {
	cases, err := s.store.Cases(ctx, NoSubject)
	if err != nil {
		return nil, fmt.Errorf("list breaches: %w", err)
	}
	out := []Breach{}
	for _, c := range cases {
		if c.Type != TypeBreach {
			continue
		}
		var st storedBreach
		if err := json.Unmarshal([]byte(c.Outcome), &st); err != nil {
			return nil, fmt.Errorf("breach %s: stored notice: %w", c.ID, err)
		}
		b := Breach{ID: c.ID, Reported: c.Created, By: st.By, LogIndex: c.LogIndex, Input: st.BreachInput}
		b.Notice = breachNotice(b)
		out = append(out, b)
	}
	return out, nil
}

// breachNotice writes the notice to individuals in Chinese and English.
func breachNotice(b Breach) map[string]string {
	in := b.Input
	// People read the categories by name, not by fideslang key (CN-7).
	names := func(lang, sep string) string {
		out := make([]string, len(in.Categories))
		for i, c := range in.Categories {
			out[i] = catalog.CategoryName(c, lang)
		}
		return strings.Join(out, sep)
	}
	return map[string]string{
		"zh-CN": fmt.Sprintf("个人信息安全事件告知\n\n我们于 %s 发现并记录了一起个人信息安全事件（编号 %s）。\n"+
			"涉及的个人信息种类：%s\n事件原因：%s\n可能造成的危害：%s\n我们已采取的补救措施：%s\n您可以采取的减轻危害的措施：%s\n联系方式：%s\n",
			b.Reported.Format("2006-01-02 15:04 MST"), b.ID, names("zh-CN", "、"), in.Cause, in.Harm, in.Measures, in.Advice, in.Contact),
		"en": fmt.Sprintf("Notice of a personal-information breach\n\nOn %s we found and recorded a personal-information breach (reference %s).\n"+
			"Categories of personal information involved: %s\nCause: %s\nPossible harm: %s\nMeasures we have taken: %s\nWhat you can do to reduce the harm: %s\nContact: %s\n",
			b.Reported.Format("2006-01-02 15:04 MST"), b.ID, names("en", ", "), in.Cause, in.Harm, in.Measures, in.Advice, in.Contact),
	}
}
