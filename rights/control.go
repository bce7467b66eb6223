package rights

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// checkValue type-checks a corrected value against the field declaration.
func checkValue(f *catalog.Field, v any) (any, error) {
	typ := f.Type
	if typ == "" {
		typ = catalog.TypeString
	}
	bad := func() error {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "CM-2",
			Message: fmt.Sprintf("field %q is declared with type %s; the value %v is a %s", f.Name, typ, v, kind(v))}
	}
	switch typ {
	case catalog.TypeString:
		if s, ok := v.(string); ok && s != "" {
			return s, nil
		}
	case catalog.TypeNumber:
		if n, ok := v.(float64); ok && !math.IsNaN(n) && !math.IsInf(n, 0) {
			return n, nil
		}
	case catalog.TypeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case catalog.TypeTime:
		if s, ok := v.(string); ok {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return nil, &portrait.Error{Code: portrait.EINVALID, Requirement: "CM-2",
					Message: fmt.Sprintf("field %q is declared with type time; %q is not an RFC 3339 time such as 2025-01-02T15:04:05Z", f.Name, s)}
			}
			return t.UTC().Format(time.RFC3339), nil
		}
	}
	return nil, bad()
}

func kind(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if x == "" {
			return "empty string"
		}
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Correct replaces a profile field's value with the subject's correction
// (CM-2): the field must be declared with profile: true and the value of
// its declared type. The value is sealed with the subject's key, stored
// with source "correction", and OnCorrected runs to recompute what was
// built on it.
func (s *Service) Correct(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, field string, value any) error {
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	c := s.newCase(pseudonym, TypeCorrection)
	f := s.point.Catalog().Field(field)
	var err error
	switch {
	case f == nil:
		err = &portrait.Error{Code: portrait.EINVALID, Requirement: "CM-1",
			Message: fmt.Sprintf("field %q is not declared in the catalog; only declared profile fields (fields: with profile: true) can be corrected", field)}
	case f.Protected:
		err = &portrait.Error{Code: portrait.EINVALID, Requirement: "FP-2",
			Message: fmt.Sprintf("field %q is an audit-only protected attribute, kept apart from the profile; it is recorded through the protected-attributes store, not corrected here", field)}
	case !f.Profile:
		err = &portrait.Error{Code: portrait.EINVALID, Requirement: "CM-2",
			Message: fmt.Sprintf("field %q is declared without profile: true, so no standing value is kept to correct; correct events by asking for their erasure", field)}
	default:
		value, err = checkValue(f, value)
	}
	if err != nil {
		if _, serr := s.subject(ctx, pseudonym); serr != nil {
			return err
		}
		return s.finish(ctx, c, "", err)
	}
	sub, err := s.subject(ctx, pseudonym)
	if err != nil {
		return err
	}
	g, _, err := s.grant(ctx, caller, pseudonym, policy.Correct, []string{field})
	if err != nil {
		return s.finish(ctx, c, "", err)
	}
	ci, err := s.keys.Open(sub)
	if err != nil {
		return err
	}
	b, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("encode correction of %s: %w", field, err)
	}
	at := s.now()
	pv := portrait.ProfileValue{Field: field, Sealed: ci.Seal(b, keys.ProfileAD(pseudonym, field)), Source: "correction",
		Updated: at, Expires: at.Add(time.Duration(f.Retention))}
	c = fulfil(c, at, "corrected field "+field, 0)
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.PutProfile(ctx, g, []portrait.ProfileValue{pv}); err != nil {
			return err
		}
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: "correction", Time: at, Actor: actor(caller), Pseudonym: pseudonym,
			Action: "correct", Detail: map[string]any{"field": field, "case": c.ID}})
		if err != nil {
			return err
		}
		c.LogIndex = idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return failClosed("correct "+field, err)
	}
	if s.opts.OnCorrected != nil {
		if err := s.opts.OnCorrected(ctx, pseudonym); err != nil {
			s.opts.Logger.Error("recompute after correction", "subject", pseudonym, "field", field, "err", err)
		}
	}
	return nil
}

func flagsOf(st *policy.State) portrait.Flags {
	return portrait.Flags{Minor: st.Minor, Restricted: st.Restricted, ObjectProfiling: st.ObjectProfiling,
		ObjectMarketing: st.ObjectMarketing, Personalization: st.Personalization}
}

// setFlag reads the subject's flags, changes one with change, and stores
// them through the ledger, tracked as a case of typ.
func (s *Service) setFlag(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, typ, kind, outcome string, change func(*portrait.Flags)) error {
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	if _, err := s.subject(ctx, pseudonym); err != nil {
		return err
	}
	c := s.newCase(pseudonym, typ)
	st, err := s.ledger.State(ctx, pseudonym)
	if err != nil {
		return err
	}
	f := flagsOf(st)
	change(&f)
	return s.finish(ctx, c, outcome, s.ledger.SetFlags(ctx, caller, pseudonym, f, kind))
}

// Restrict makes the subject's data storage-only: every other use is
// refused until Unrestrict (SR-7, CM-4).
func (s *Service) Restrict(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) error {
	return s.setFlag(ctx, caller, pseudonym, TypeRestriction, consent.KindRestriction, "processing restricted: storage only",
		func(f *portrait.Flags) { f.Restricted = true })
}

// Unrestrict lifts a restriction.
func (s *Service) Unrestrict(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) error {
	return s.setFlag(ctx, caller, pseudonym, TypeRestriction, consent.KindRestriction, "restriction lifted",
		func(f *portrait.Flags) { f.Restricted = false })
}

// Objection kinds (SR-7).
const (
	ObjectProfiling = "profiling"
	ObjectMarketing = "marketing"
)

// Object records an objection to profiling or to direct marketing, which
// takes effect on the next request everywhere (SR-7); withdraw undoes it.
func (s *Service) Object(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, kind string, withdraw bool) error {
	var set func(*portrait.Flags)
	switch kind {
	case ObjectProfiling:
		set = func(f *portrait.Flags) { f.ObjectProfiling = !withdraw }
	case ObjectMarketing:
		set = func(f *portrait.Flags) { f.ObjectMarketing = !withdraw }
	default:
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "SR-7", Message: fmt.Sprintf("objection kind %q: want profiling or marketing", kind)}
	}
	outcome := "objection to " + kind + " recorded"
	if withdraw {
		outcome = "objection to " + kind + " withdrawn"
	}
	return s.setFlag(ctx, caller, pseudonym, TypeObjection, consent.KindObjection, outcome, set)
}

// SetPersonalization sets the dial: 0 is non-personalised, 100 fully
// personalised, in steps of 1 (LP-4, LP-5).
func (s *Service) SetPersonalization(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, level int) error {
	if level < 0 || level > 100 {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-5", Message: fmt.Sprintf("personalization level %d: want a whole number from 0 (none) to 100 (full)", level)}
	}
	return s.setFlag(ctx, caller, pseudonym, TypePersonalization, consent.KindPersonalization, fmt.Sprintf("personalization set to %d", level),
		func(f *portrait.Flags) { f.Personalization = level })
}

// Label control modes (LP-3).
const (
	ModeDeselect = "deselect" // stop using, keep
	ModeDelete   = "delete"   // remove, and never derive again until restored
)

// SuppressLabel deselects or deletes one of the subject's labels (LP-3).
func (s *Service) SuppressLabel(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, lbl, mode string) error {
	if mode != ModeDeselect && mode != ModeDelete {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-3", Message: fmt.Sprintf("mode %q: want deselect or delete", mode)}
	}
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	if _, err := s.subject(ctx, pseudonym); err != nil {
		return err
	}
	c := s.newCase(pseudonym, TypeLabel)
	return s.finish(ctx, c, mode+" label "+lbl, s.ledger.Suppress(ctx, caller, pseudonym, lbl, mode == ModeDelete))
}

// RestoreLabel undoes a deselection or deletion (LP-3).
func (s *Service) RestoreLabel(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, lbl string) error {
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	if _, err := s.subject(ctx, pseudonym); err != nil {
		return err
	}
	c := s.newCase(pseudonym, TypeLabel)
	st, err := s.ledger.State(ctx, pseudonym)
	if err != nil {
		return err
	}
	if _, ok := st.Suppressed[lbl]; !ok {
		return s.finish(ctx, c, "", &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-3",
			Message: fmt.Sprintf("label %q is neither deselected nor deleted; there is nothing to restore", lbl)})
	}
	return s.finish(ctx, c, "restored label "+lbl, s.ledger.Unsuppress(ctx, caller, pseudonym, lbl))
}
