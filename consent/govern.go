package consent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// Flag-change kinds, as recorded in the audit log.
const (
	KindRestriction     = "restriction"     // SR-7, CM-4
	KindObjection       = "objection"       // SR-7
	KindPersonalization = "personalization" // LP-4, LP-5
	KindMinor           = "minor"           // SM-3
)

var flagKinds = []string{KindRestriction, KindObjection, KindPersonalization, KindMinor}

// change runs write and its audit record in one transaction (invariant 3).
func (l *Ledger) change(ctx context.Context, op string, rec audit.Record, write func(context.Context, portrait.Tx) error) error {
	err := l.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := write(ctx, tx); err != nil {
			return err
		}
		_, err := l.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return failClosed(op, err)
	}
	return nil
}

// stored refuses pseudonyms the store does not hold: choices are recorded
// only for known subjects.
func (l *Ledger) stored(ctx context.Context, pseudonym portrait.Pseudonym) error {
	got, err := l.store.Subjects(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return failClosed("look up subject", err)
	}
	if _, ok := got[pseudonym]; !ok {
		return portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", pseudonym)
	}
	return nil
}

func digestJSON(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SetFlags replaces the subject's standing flags — restriction,
// objections, the personalisation dial, the minors flag — recording kind
// (one of the Kind constants) in the audit log. The flags are logged as a
// digest; a restriction or objection also logs the three choices it sets
// (see Choices), so that restoring a backup taken before it can apply it
// again from the log (invariant 8). The minors flag and the dial are not
// logged: the first is derived from a birth date, and neither is a right
// a restore must re-apply.
func (l *Ledger) SetFlags(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, f portrait.Flags, kind string) error {
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	found := false
	for _, k := range flagKinds {
		found = found || k == kind
	}
	if !found {
		return portrait.Errorf(portrait.EINVALID, "flag change kind %q: want one of %s", kind, strings.Join(flagKinds, ", "))
	}
	if f.Personalization < 0 || f.Personalization > 100 {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-5", Message: fmt.Sprintf("personalization level %d: want 0 (none) to 100 (full)", f.Personalization)}
	}
	if err := l.stored(ctx, pseudonym); err != nil {
		return err
	}
	rec := audit.Record{Kind: "flags", Time: l.now(), Actor: actor(caller), Pseudonym: pseudonym, Action: kind, Digest: digestJSON(f)}
	if kind == KindRestriction || kind == KindObjection {
		rec.Detail = map[string]any{"restricted": f.Restricted, "object_profiling": f.ObjectProfiling, "object_marketing": f.ObjectMarketing}
	}
	return l.change(ctx, "set "+kind, rec, func(ctx context.Context, tx portrait.Tx) error {
		return tx.SetFlags(ctx, pseudonym, f)
	})
}

// Suppress deselects (deleted false) or deletes (deleted true) one of the
// subject's labels: the next request no longer uses it, and a deleted label
// is not derived again until restored (LP-3).
func (l *Ledger) Suppress(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, label string, deleted bool) error {
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	if l.point.Catalog().Label(label) == nil {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-1", Message: fmt.Sprintf("label %q is not declared in the catalog", label)}
	}
	if err := l.stored(ctx, pseudonym); err != nil {
		return err
	}
	action := "deselect"
	if deleted {
		action = "delete"
	}
	rec := audit.Record{Kind: "suppression", Time: l.now(), Actor: actor(caller), Pseudonym: pseudonym, Action: action,
		Detail: map[string]any{"label": label}}
	return l.change(ctx, action+" label", rec, func(ctx context.Context, tx portrait.Tx) error {
		if err := tx.Suppress(ctx, pseudonym, label, deleted); err != nil {
			return err
		}
		if deleted {
			return tx.DeleteLabels(ctx, pseudonym, []string{label})
		}
		return nil
	})
}

// Unsuppress restores a deselected or deleted label (LP-3).
func (l *Ledger) Unsuppress(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, label string) error {
	if err := authorize(caller, pseudonym); err != nil {
		return err
	}
	if err := l.stored(ctx, pseudonym); err != nil {
		return err
	}
	rec := audit.Record{Kind: "suppression", Time: l.now(), Actor: actor(caller), Pseudonym: pseudonym, Action: "restore",
		Detail: map[string]any{"label": label}}
	return l.change(ctx, "restore label", rec, func(ctx context.Context, tx portrait.Tx) error {
		return tx.Unsuppress(ctx, pseudonym, label)
	})
}

func regulatorOnly(caller policy.Caller, verb string) error {
	if caller.Role != policy.Regulator {
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-6",
			Message: fmt.Sprintf("only the regulator may %s a suspension; role %q may not", verb, caller.Role)}
	}
	return nil
}

// declared refuses a suspension target the catalog does not declare.
func (l *Ledger) declared(kind, id string) error {
	if err := l.point.Target(kind, id); err != nil {
		return portrait.Errorf(portrait.EINVALID, "%v; nothing to suspend", err)
	}
	return nil
}

// Suspend stops a purpose, field, label, model or use-case on every node
// until the regulator lifts it (RO-6). Only the regulator role may. The
// suspension takes effect on this node at once and on the others at their
// next State call.
func (l *Ledger) Suspend(ctx context.Context, caller policy.Caller, s policy.Suspension) error {
	if err := regulatorOnly(caller, "impose"); err != nil {
		return err
	}
	if err := l.declared(s.Kind, s.ID); err != nil {
		return err
	}
	if strings.TrimSpace(s.Reason) == "" {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-6", Message: "a suspension needs a reason, which every refusal it causes will quote"}
	}
	s.By, s.At = actor(caller), l.now()
	rec := audit.Record{Kind: "suspension", Time: s.At, Actor: s.By, Action: "suspend",
		Detail: map[string]any{"kind": s.Kind, "id": s.ID, "reason": s.Reason}}
	if err := l.change(ctx, "suspend", rec, func(ctx context.Context, tx portrait.Tx) error { return tx.Suspend(ctx, s) }); err != nil {
		return err
	}
	return l.reloadSuspensions(ctx)
}

// Lift ends a suspension (RO-6). Only the regulator role may.
func (l *Ledger) Lift(ctx context.Context, caller policy.Caller, kind, id string) error {
	if err := regulatorOnly(caller, "lift"); err != nil {
		return err
	}
	// Only the regulator's own kinds: an overseer's halt (AD-7) is lifted
	// by the overseer, not here.
	if err := l.declared(kind, id); err != nil {
		return err
	}
	list, err := l.store.Suspensions(ctx)
	if err != nil {
		return failClosed("read suspensions", err)
	}
	found := false
	for _, s := range list {
		found = found || (s.Kind == kind && s.ID == id)
	}
	if !found {
		return portrait.Errorf(portrait.ENOTFOUND, "%s %q is not suspended", kind, id)
	}
	rec := audit.Record{Kind: "suspension", Time: l.now(), Actor: actor(caller), Action: "lift",
		Detail: map[string]any{"kind": kind, "id": id}}
	if err := l.change(ctx, "lift suspension", rec, func(ctx context.Context, tx portrait.Tx) error { return tx.Lift(ctx, kind, id) }); err != nil {
		return err
	}
	return l.reloadSuspensions(ctx)
}

func (l *Ledger) reloadSuspensions(ctx context.Context) error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	list, err := l.store.Suspensions(ctx)
	if err != nil {
		return failClosed("reload suspensions", err)
	}
	l.point.SetSuspensions(list)
	return nil
}

// Choices reads back the restriction and objections a "flags" record of
// kind restriction or objection logged, and applies them to f; ok is false
// for any other record, and for records logged before the choices were
// (which hold only a digest).
func Choices(r audit.Record, f *portrait.Flags) (ok bool) {
	if r.Kind != "flags" || (r.Action != KindRestriction && r.Action != KindObjection) {
		return false
	}
	restricted, ok1 := r.Detail["restricted"].(bool)
	profiling, ok2 := r.Detail["object_profiling"].(bool)
	marketing, ok3 := r.Detail["object_marketing"].(bool)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	f.Restricted, f.ObjectProfiling, f.ObjectMarketing = restricted, profiling, marketing
	return true
}
