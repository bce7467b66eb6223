package derive

import (
	"context"
	"fmt"
	"slices"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// View is one stored label value as shown to staff or the subject: the
// value with its provenance (CM-2, SR-1) and a one-sentence explanation
// in Chinese and English (invariant 6).
type View struct {
	Stored
	Name        catalog.Text `json:"name"`
	Current     bool         `json:"current"` // computed with the declared version
	Explanation catalog.Text `json:"explanation"`
}

// Withheld is a stored label not shown, with the reasons.
type Withheld struct {
	Label   string          `json:"label"`
	Reasons []policy.Reason `json:"reasons"`
}

// Portrait returns the subject's stored labels that action (Read for
// staff, Use for an application) may see for purpose: labels declared for
// the purpose whose decision, with the label named, allows. The others
// are listed as withheld with the decision's reasons (a suppressed label:
// LP-3). When the purpose itself is refused for the subject, the error is
// the *policy.Denied.
func (e *Engine) Portrait(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, purpose string, action policy.Action) ([]View, []Withheld, error) {
	cat := e.point.Catalog()
	st, err := e.ledger.State(ctx, pseudonym)
	if err != nil {
		return nil, nil, err
	}
	d := e.point.Decide(policy.Request{State: st, Purpose: purpose, Action: action, Caller: caller})
	if !d.Allow {
		return nil, nil, d.Err()
	}
	subs, err := e.store.Subjects(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return nil, nil, fmt.Errorf("read portrait: %w", err)
	}
	subj, ok := subs[pseudonym]
	if !ok {
		return nil, nil, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", pseudonym)
	}
	lvs, err := e.store.Labels(ctx, d.Grant)
	if err != nil {
		return nil, nil, fmt.Errorf("read portrait: %w", err)
	}
	cipher, err := e.keys.Open(subj)
	if err != nil {
		return nil, nil, fmt.Errorf("read portrait: key: %w", err)
	}
	views := []View{}
	var withheld []Withheld
	for _, lv := range lvs {
		l := cat.Label(lv.Label)
		if l == nil {
			withheld = append(withheld, Withheld{Label: lv.Label, Reasons: []policy.Reason{{Code: "undeclared_label", Requirement: "LP-1",
				Message: fmt.Sprintf("label %q is no longer declared in the catalog", lv.Label)}}})
			continue
		}
		if !slices.Contains(l.Purposes, purpose) {
			continue // another purpose's label: not part of this view
		}
		ld := e.point.Decide(policy.Request{State: st, Purpose: purpose, Labels: []string{l.ID}, Action: action, Caller: caller})
		if !ld.Allow {
			withheld = append(withheld, Withheld{Label: l.ID, Reasons: ld.Reasons})
			continue
		}
		v, err := Open(cipher, lv)
		if err != nil {
			return nil, nil, err
		}
		views = append(views, View{Stored: v, Name: l.Name, Current: v.Version == l.Version,
			Explanation: catalog.Text{"zh-CN": v.Explain("zh-CN", l), "en": v.Explain("en", l)}})
	}
	return views, withheld, nil
}
