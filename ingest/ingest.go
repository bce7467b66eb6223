package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Result statuses.
const (
	Accepted  = "accepted"
	Rejected  = "rejected"
	Duplicate = "duplicate"
)

// Result is the outcome of one event.
type Result struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	*Problem
	// Dropped names fields that were not stored because no purpose of
	// theirs had a lawful basis (minimum necessary, CM-1).
	Dropped []DroppedField `json:"dropped_fields,omitempty"`
}

// DroppedField is a field left out of a stored event, with the reason.
type DroppedField struct {
	Field string `json:"field"`
	policy.Reason
}

// Summary counts a batch.
type Summary struct {
	Accepted   int   `json:"accepted"`
	Rejected   int   `json:"rejected"`
	Duplicates int   `json:"duplicates"`
	Dropped    int   `json:"dropped_fields"`
	LogIndex   int64 `json:"log_index"`
}

// Options tune an Ingester.
type Options struct {
	// MaxFuture is how far ahead of now an event time may be (clock skew).
	MaxFuture time.Duration
	// MinorAge is the age under which a subject is a minor (SM-3).
	MinorAge float64
	Now      func() time.Time
	Logger   *slog.Logger
	// OnStored, if set, is called after a batch commits with the
	// pseudonyms whose data changed, for incremental derivation.
	OnStored func(ctx context.Context, pseudonyms []string)
}

// Ingester is the governed intake of events.
type Ingester struct {
	store  portrait.Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	opt    Options
}

// New returns an Ingester.
func New(store portrait.Store, point *policy.Point, ledger *consent.Ledger, kr *keys.Keyring, log *audit.Log, opt Options) *Ingester {
	if opt.MaxFuture == 0 {
		opt.MaxFuture = 24 * time.Hour
	}
	if opt.MinorAge == 0 {
		opt.MinorAge = 14
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Ingester{store: store, point: point, ledger: ledger, keys: kr, log: log, opt: opt}
}

// pending is an event that passed validation, on its way to the store.
type pending struct {
	index     int
	pseudonym string
	id        string
	event     portrait.Event
}

// Ingest validates, minimises, authorises, seals and stores a batch. Every
// item gets a Result; the error is for the batch as a whole (the store or
// the audit log failed, so nothing was stored: invariant 3).
func (in *Ingester) Ingest(ctx context.Context, caller policy.Caller, items []Item) ([]Result, Summary, error) {
	cat := in.point.Catalog()
	now := in.opt.Now().UTC()
	results := make([]Result, len(items))
	var sum Summary
	var todo []pending
	seen := make(map[string]bool)
	var pseudonyms []string
	for i, it := range items {
		results[i].Index = i
		if it.Err != nil {
			results[i].Status, results[i].Problem = Rejected, it.Err
			continue
		}
		if p := in.validate(cat, &it.Event, now); p != nil {
			results[i].Status, results[i].Problem = Rejected, p
			continue
		}
		ps := in.keys.Pseudonym(it.Event.Subject)
		if !seen[ps] {
			seen[ps] = true
			pseudonyms = append(pseudonyms, ps)
		}
		todo = append(todo, pending{index: i, pseudonym: ps, id: it.Event.Subject, event: it.Event})
	}
	if len(todo) == 0 {
		sum.Rejected = len(items)
		return results, sum, nil
	}

	states, err := in.ledger.States(ctx, pseudonyms)
	if err != nil {
		return nil, sum, fmt.Errorf("ingest: load consent states: %w", err)
	}
	stored, err := in.store.Subjects(ctx, pseudonyms)
	if err != nil {
		return nil, sum, fmt.Errorf("ingest: load subjects: %w", err)
	}
	var newSubjects []portrait.Subject
	var minors []string
	ciphers := make(map[string]*keys.Cipher, len(pseudonyms))
	for _, p := range todo {
		if _, ok := ciphers[p.pseudonym]; ok {
			continue
		}
		var c *keys.Cipher
		if s, ok := stored[p.pseudonym]; ok {
			c, err = in.keys.Open(s)
		} else {
			var s portrait.Subject
			s, c, err = in.keys.NewSubject(p.id)
			newSubjects = append(newSubjects, s)
		}
		if err != nil {
			return nil, sum, fmt.Errorf("ingest: subject key: %w", err)
		}
		ciphers[p.pseudonym] = c
	}

	events := make([]portrait.StoredEvent, 0, len(todo))
	eventIdx := make([]int, 0, len(todo))
	var profile map[string][]portrait.ProfileValue
	profileGrant := make(map[string]policy.Grant)
	digest := sha256.New()
	names := make([]string, 0, 8)
	for _, p := range todo {
		st := states[p.pseudonym]
		if age := cat.AgeField(); age != nil && !st.Minor {
			if v, ok := p.event.Fields[age.Name].(float64); ok && v < in.opt.MinorAge {
				// SM-3: a declared age under the minors age makes the subject
				// a minor from this event on; consent-based purposes now
				// need a guardian.
				cp := *st
				cp.Minor = true
				st = &cp
				states[p.pseudonym] = st
				minors = append(minors, p.pseudonym)
			}
		}
		names = names[:0]
		for name := range p.event.Fields {
			names = append(names, name)
		}
		slices.Sort(names)
		grant, dropped, err := in.point.Collect(st, names, caller)
		r := &results[p.index]
		var d *policy.Denied
		if errors.As(err, &d) {
			r.Status = Rejected
			r.Problem = &Problem{Code: d.Reasons[0].Code, Reason: d.Reasons[0].Message, Requirement: d.Reasons[0].Requirement}
			fmt.Fprintf(digest, "%s\t%d\t%s\n", p.pseudonym, p.index, r.Code)
			continue
		} else if err != nil {
			return nil, sum, fmt.Errorf("ingest: decide collection: %w", err)
		}
		for _, name := range names {
			if why, ok := dropped[name]; ok {
				r.Dropped = append(r.Dropped, DroppedField{Field: name, Reason: why})
			}
		}
		if !grant.Valid() {
			r.Status = Rejected
			r.Problem = &Problem{Code: "no_lawful_basis", Requirement: "CM-1",
				Reason: "no field of this event has a purpose with a lawful basis for this subject; nothing was stored"}
			if len(r.Dropped) > 0 {
				r.Problem.Reason += " (" + r.Dropped[0].Message + ")"
			}
			fmt.Fprintf(digest, "%s\t%d\t%s\n", p.pseudonym, p.index, r.Code)
			continue
		}
		kept := make(map[string]any, len(grant.Fields()))
		expires := time.Time{}
		for _, name := range grant.Fields() {
			f := cat.Field(name)
			exp := p.event.Time.Add(time.Duration(f.Retention))
			if !exp.After(now) {
				// Already past its retention: collecting it would break CM-3.
				r.Dropped = append(r.Dropped, DroppedField{Field: name, Reason: policy.Reason{Code: "retention_passed", Requirement: "CM-3",
					Message: fmt.Sprintf("field %q is older than its retention of %s", name, f.Retention)}})
				continue
			}
			kept[name] = p.event.Fields[name]
			if expires.IsZero() || exp.Before(expires) {
				expires = exp
			}
		}
		if len(kept) == 0 {
			r.Status = Rejected
			r.Problem = &Problem{Code: "retention_passed", Requirement: "CM-3", Reason: "every field of this event is older than its retention; nothing was stored"}
			continue
		}
		plain, err := json.Marshal(kept)
		if err != nil {
			return nil, sum, fmt.Errorf("ingest: encode fields: %w", err)
		}
		c := ciphers[p.pseudonym]
		ev := portrait.StoredEvent{
			Grant: grant, Subject: p.pseudonym, Type: p.event.Type, Time: p.event.Time,
			Sealed: c.Seal(plain, keys.EventAD(p.pseudonym)), Expires: expires,
		}
		if p.event.IdempotencyKey != "" {
			ev.Idem = in.keys.IdemHash(p.pseudonym, p.event.IdempotencyKey)
		}
		events = append(events, ev)
		eventIdx = append(eventIdx, p.index)
		for name, v := range kept {
			f := cat.Field(name)
			if !f.Profile {
				continue
			}
			if profile == nil {
				profile = make(map[string][]portrait.ProfileValue)
			}
			b, _ := json.Marshal(v)
			profile[p.pseudonym] = append(profile[p.pseudonym], portrait.ProfileValue{
				Field: name, Sealed: c.Seal(b, keys.ProfileAD(p.pseudonym, name)), Source: "event",
				Updated: p.event.Time, Expires: p.event.Time.Add(time.Duration(f.Retention)),
			})
			profileGrant[p.pseudonym] = grant
		}
		h := sha256.Sum256(plain)
		fmt.Fprintf(digest, "%s\t%d\taccepted\t%x\n", p.pseudonym, p.index, h[:8])
	}

	var inserted []bool
	err = in.store.Update(ctx, func(tx portrait.Tx) error {
		if len(newSubjects) > 0 {
			if err := tx.EnsureSubjects(ctx, newSubjects); err != nil {
				return err
			}
		}
		for _, ps := range minors {
			st := states[ps]
			if err := tx.SetFlags(ctx, ps, flagsOf(st)); err != nil {
				return err
			}
		}
		var err error
		if len(events) > 0 {
			if inserted, err = tx.InsertEvents(ctx, events); err != nil {
				return err
			}
		}
		for ps, vals := range profile {
			if err := tx.PutProfile(ctx, profileGrant[ps], vals); err != nil {
				return err
			}
		}
		for _, ps := range minors {
			if _, err := in.log.Append(ctx, tx, audit.Record{Kind: "flags", Time: now, Actor: actor(caller), Subject: ps,
				Action: "minor", Codes: []string{"SM-3"}}); err != nil {
				return err
			}
		}
		for i, ok := range inserted {
			r := &results[eventIdx[i]]
			if ok {
				r.Status = Accepted
				sum.Accepted++
			} else {
				r.Status = Duplicate
				sum.Duplicates++
			}
			sum.Dropped += len(r.Dropped)
		}
		for _, r := range results {
			if r.Status == Rejected {
				sum.Rejected++
			}
		}
		rec := audit.Record{Kind: "ingest", Time: now, Actor: actor(caller), Action: "collect",
			Digest: hex.EncodeToString(digest.Sum(nil)),
			Detail: map[string]any{"accepted": sum.Accepted, "rejected": sum.Rejected,
				"duplicates": sum.Duplicates, "dropped_fields": sum.Dropped, "subjects": len(pseudonyms)}}
		sum.LogIndex, err = in.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return nil, Summary{}, fmt.Errorf("ingest: store batch of %d events: %w", len(events), err)
	}
	if in.opt.OnStored != nil && sum.Accepted > 0 {
		in.opt.OnStored(ctx, pseudonyms)
	}
	return results, sum, nil
}

func flagsOf(st *policy.State) portrait.Flags {
	return portrait.Flags{Minor: st.Minor, Restricted: st.Restricted, ObjectProfiling: st.ObjectProfiling,
		ObjectMarketing: st.ObjectMarketing, Personalization: st.Personalization}
}

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return "subject"
	}
	return string(c.Role) + ":" + c.ID
}

// validate checks an event against the catalog (invariant 1) and
// normalises its field values to the declared types.
func (in *Ingester) validate(cat *catalog.Catalog, e *portrait.Event, now time.Time) *Problem {
	et := cat.EventType(e.Type)
	if et == nil {
		return &Problem{Code: "undeclared_event_type", Requirement: "CM-1",
			Reason: fmt.Sprintf("event type %q is not declared; declare it under event_types: in the catalog", e.Type)}
	}
	if e.Time.After(now.Add(in.opt.MaxFuture)) {
		return &Problem{Code: "future_time", Reason: fmt.Sprintf("time %s is more than %s in the future; send the time the event happened, in UTC or with its offset",
			e.Time.Format(time.RFC3339), in.opt.MaxFuture)}
	}
	if e.Time.Year() < 1970 {
		return &Problem{Code: "invalid_time", Reason: fmt.Sprintf("time %s is before 1970", e.Time.Format(time.RFC3339))}
	}
	for name, v := range e.Fields {
		if !slices.Contains(et.Fields, name) {
			if cat.Field(name) == nil {
				return &Problem{Code: "undeclared_field", Requirement: "CM-1",
					Reason: fmt.Sprintf("field %q is not declared; declare it under fields: and list it in event type %q", name, e.Type)}
			}
			return &Problem{Code: "field_not_in_event_type", Requirement: "CM-1",
				Reason: fmt.Sprintf("event type %q does not carry field %q; add it to the event type's fields in the catalog", e.Type, name)}
		}
		if f := cat.Field(name); f.Protected {
			// FP-2: protected attributes are kept apart, never in events.
			return &Problem{Code: "protected_field", Requirement: "FP-2",
				Reason: fmt.Sprintf("field %q is an audit-only protected attribute; record it with PUT /v1/subjects/{id}/protected, not in events", name)}
		}
		nv, err := convert(cat.Field(name), v)
		if err != nil {
			return &Problem{Code: "wrong_type", Reason: err.Error()}
		}
		if p := inBounds(cat.Field(name), nv); p != nil {
			return p
		}
		e.Fields[name] = nv
	}
	return nil
}

func convert(f *catalog.Field, v any) (any, error) {
	if v == nil {
		return nil, fmt.Errorf("field %q is null; leave it out instead", f.Name)
	}
	switch f.Type {
	case catalog.TypeNumber:
		switch x := v.(type) {
		case json.Number:
			n, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				return nil, fmt.Errorf("field %q: %s is not a finite number", f.Name, x)
			}
			return n, nil
		case float64:
			return x, nil
		}
		return nil, fmt.Errorf("field %q must be a number, got %s", f.Name, kind(v))
	case catalog.TypeBool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("field %q must be true or false, got %s", f.Name, kind(v))
	case catalog.TypeTime:
		if s, ok := v.(string); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("field %q must be an RFC 3339 time, got %q", f.Name, s)
			}
			return t.UTC().Format(time.RFC3339Nano), nil
		}
		return nil, fmt.Errorf("field %q must be an RFC 3339 time string, got %s", f.Name, kind(v))
	default:
		if s, ok := v.(string); ok {
			if len(s) > 4096 {
				return nil, fmt.Errorf("field %q is longer than 4096 bytes", f.Name)
			}
			return s, nil
		}
		return nil, fmt.Errorf("field %q must be a string, got %s", f.Name, kind(v))
	}
}

// inBounds refuses a number that is not finite or lies outside the field's
// declared min and max (by default |x| ≤ 10¹⁵), so that no aggregate of
// stored values can overflow into a label that cannot be encoded.
func inBounds(f *catalog.Field, v any) *Problem {
	x, ok := v.(float64)
	if !ok {
		return nil
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return &Problem{Code: "not_finite", Requirement: "CM-2", Reason: fmt.Sprintf("field %q must be a finite number", f.Name)}
	}
	lo, hi := f.Bounds()
	if x < lo || x > hi {
		fix := "declare min: and max: on the field in the catalog to allow a wider range"
		if f.Min != nil || f.Max != nil {
			fix = "the catalog declares this range for the field"
		}
		return &Problem{Code: "out_of_range", Requirement: "CM-2", Reason: fmt.Sprintf("field %q is %g, outside [%g, %g]; %s", f.Name, x, lo, hi, fix)}
	}
	return nil
}

func kind(v any) string {
	switch v.(type) {
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
