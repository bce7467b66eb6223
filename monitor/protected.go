package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// engine is the caller the fairness engine asks the decision point as.
var engine = policy.Caller{Role: policy.System, ID: "fairness"}

// protectedAD binds a sealed protected value to its subject and attribute,
// so a ciphertext cannot be moved to another subject or attribute.
func protectedAD(pseudonym portrait.Pseudonym, attr string) []byte {
	return keys.ProtectedAD(pseudonym, attr)
}

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return "subject"
	}
	return string(c.Role) + ":" + c.ID
}

// ProtectedFields returns the names of the catalog's protected fields, sorted.
func ProtectedFields(cat *catalog.Catalog) []string {
	var out []string
	for _, f := range cat.Fields {
		if f.Protected {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

// mayWriteProtected: staff who handle subjects' data, and Portrait itself.
func mayWriteProtected(r policy.Role) bool {
	return r == policy.Admin || r == policy.Operator || r == policy.System
}

// mayReadProtected: the auditor, and the fairness engine (FP-2). Not admin,
// operator or reviewer, who take or handle the decisions being audited.
func mayReadProtected(c policy.Caller) bool {
	return c.Role == policy.Auditor || c.Role == policy.System && c.ID == engine.ID
}

// PutProtected records protected attributes of subject subjectID (FP-2).
// Every name must be a catalog field declared protected: true; anything
// else is refused with the declaration to add. The values are sealed with
// the subject's data key and the write is logged (kind "protected_write",
// names only) in the same transaction.
func (m *Monitor) PutProtected(ctx context.Context, caller policy.Caller, subjectID string, attrs map[string]string) error {
	if !mayWriteProtected(caller.Role) {
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "FP-2", Message: fmt.Sprintf("role %s may not record protected attributes; use an operator key", caller.Role)}
	}
	if strings.TrimSpace(subjectID) == "" {
		return portrait.Errorf(portrait.EINVALID, "protected attributes need a subject id")
	}
	if len(attrs) == 0 {
		return portrait.Errorf(portrait.EINVALID, `no protected attribute given; send an object such as {"gender": "F"} naming fields declared protected: true`)
	}
	cat := m.deps.Point.Catalog()
	names := make([]string, 0, len(attrs))
	for name, v := range attrs {
		f := cat.Field(name)
		switch {
		case f == nil:
			return &portrait.Error{Code: portrait.EINVALID, Requirement: "FP-2", Message: fmt.Sprintf("attribute %q is not declared; declare it under fields: with protected: true", name)}
		case !f.Protected:
			return &portrait.Error{Code: portrait.EINVALID, Requirement: "FP-2", Message: fmt.Sprintf("field %q is not declared protected: true; only protected attributes are kept in this store (add protected: true to its declaration if it is one)", name)}
		case strings.TrimSpace(v) == "":
			return portrait.Errorf(portrait.EINVALID, "attribute %q has an empty value", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	ps := m.deps.Keys.Pseudonym(subjectID)
	states, err := m.deps.Store.States(ctx, []portrait.Pseudonym{ps})
	if err != nil {
		return fmt.Errorf("protected attributes: load state: %w", err)
	}
	g, dropped, err := m.deps.Point.Collect(states[ps], names, caller)
	if err != nil {
		return err
	}
	if len(dropped) > 0 || !g.Valid() {
		for _, n := range names {
			if why, ok := dropped[n]; ok {
				return &policy.Denied{Reasons: []policy.Reason{why}}
			}
		}
		return portrait.Errorf(portrait.EINVALID, "protected attributes: no lawful basis to store them")
	}
	stored, err := m.deps.Store.Subjects(ctx, []portrait.Pseudonym{ps})
	if err != nil {
		return fmt.Errorf("protected attributes: load subject: %w", err)
	}
	var c *keys.Cipher
	var fresh []portrait.SubjectKey
	if s, ok := stored[ps]; ok {
		c, err = m.deps.Keys.Open(s)
	} else {
		var s portrait.SubjectKey
		s, c, err = m.deps.Keys.NewSubject(subjectID)
		fresh = append(fresh, s)
	}
	if err != nil {
		return fmt.Errorf("protected attributes: subject key: %w", err)
	}
	vals := make([]portrait.ProtectedValue, len(names))
	for i, n := range names {
		b, _ := json.Marshal(attrs[n])
		vals[i] = portrait.ProtectedValue{Pseudonym: ps, Attribute: n, Sealed: c.Seal(b, protectedAD(ps, n))}
	}
	return m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if len(fresh) > 0 {
			if err := tx.EnsureSubjects(ctx, fresh); err != nil {
				return err
			}
		}
		if err := tx.PutProtected(ctx, g, vals); err != nil {
			return err
		}
		_, err := m.deps.Log.Append(ctx, tx, audit.Record{Kind: "protected_write", Time: m.now(), Actor: actor(caller), Pseudonym: ps,
			Action: "collect", Codes: []string{"FP-2"}, Detail: map[string]any{"attributes": names}})
		return err
	})
}

// ReadProtected returns the protected attributes of subject subjectID, for
// the auditor or the fairness engine only (FP-2). The access is logged
// (kind "protected_access", names only) before the values are returned.
func (m *Monitor) ReadProtected(ctx context.Context, caller policy.Caller, subjectID string) (map[string]string, error) {
	if !mayReadProtected(caller) {
		return nil, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "FP-2", Message: fmt.Sprintf("role %s may not read protected attributes; only the auditor and the fairness engine may", caller.Role)}
	}
	ps := m.deps.Keys.Pseudonym(subjectID)
	stored, err := m.deps.Store.Subjects(ctx, []portrait.Pseudonym{ps})
	if err != nil {
		return nil, fmt.Errorf("protected attributes: load subject: %w", err)
	}
	s, ok := stored[ps]
	if !ok {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", ps)
	}
	st, err := m.deps.Store.States(ctx, []portrait.Pseudonym{ps})
	if err != nil {
		return nil, fmt.Errorf("protected attributes: load state: %w", err)
	}
	vals, err := m.readProtected(ctx, s, st[ps])
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	err = m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := m.deps.Log.Append(ctx, tx, audit.Record{Kind: "protected_access", Time: m.now(), Actor: actor(caller), Pseudonym: ps,
			Action: "read", Codes: []string{"FP-2"}, Detail: map[string]any{"attributes": names}})
		return err
	})
	if err != nil {
		return nil, err
	}
	return vals, nil
}

// readProtected opens one subject's protected values under an Access
// grant the decision point gives the fairness engine. The caller logs.
func (m *Monitor) readProtected(ctx context.Context, s portrait.SubjectKey, st *policy.State) (map[string]string, error) {
	d := m.deps.Point.Decide(policy.Request{State: st, Action: policy.Access, Caller: engine})
	if err := d.Err(); err != nil {
		return nil, err
	}
	pv, err := m.deps.Store.Protected(ctx, d.Grant)
	if err != nil {
		return nil, fmt.Errorf("protected attributes of %s: %w", s.Pseudonym, err)
	}
	if len(pv) == 0 {
		return map[string]string{}, nil
	}
	c, err := m.deps.Keys.Open(s)
	if err != nil {
		return nil, err
	}
	return openProtected(c, s.Pseudonym, pv)
}

// openProtected decrypts the protected values pv of subject ps.
func openProtected(c *keys.Cipher, ps portrait.Pseudonym, pv []portrait.ProtectedValue) (map[string]string, error) {
	out := make(map[string]string, len(pv))
	for _, v := range pv {
		b, err := c.Open(v.Sealed, protectedAD(ps, v.Attribute))
		if err != nil {
			return nil, fmt.Errorf("protected attribute %q of %s does not open: %w", v.Attribute, ps, err)
		}
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return nil, fmt.Errorf("protected attribute %q of %s: %w", v.Attribute, ps, err)
		}
		out[v.Attribute] = str
	}
	return out, nil
}

func (m *Monitor) now() time.Time { return m.opts.Now().UTC() }
