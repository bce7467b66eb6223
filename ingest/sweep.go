package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Sweep deletes field values whose retention has passed (CM-3): an event
// keeps the fields still within retention, and goes when none are left;
// an expired profile value goes. It returns the number of events rewritten
// or deleted plus the profile values deleted.
func (in *Ingester) Sweep(ctx context.Context, now time.Time) (int, error) {
	n, err := in.sweepEvents(ctx, now)
	if err != nil {
		return n, err
	}
	p, err := in.sweepProfile(ctx, now)
	return n + p, err
}

// sweepProfile deletes expired profile values, a page at a time, each
// subject's under a sweep grant of its own, with one audit record a page.
func (in *Ingester) sweepProfile(ctx context.Context, now time.Time) (int, error) {
	system := policy.Caller{Role: policy.System, ID: "sweeper"}
	total := 0
	for {
		expired, err := in.store.ExpiredProfile(ctx, now, 500)
		if err != nil {
			return total, fmt.Errorf("sweep: list expired profile values: %w", err)
		}
		if len(expired) == 0 {
			return total, nil
		}
		bySubject := map[portrait.Pseudonym][]string{}
		var order []portrait.Pseudonym
		for _, r := range expired {
			if bySubject[r.Pseudonym] == nil {
				order = append(order, r.Pseudonym)
			}
			bySubject[r.Pseudonym] = append(bySubject[r.Pseudonym], r.Field)
		}
		err = in.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			for _, ps := range order {
				d := in.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Sweep, Caller: system})
				if !d.Allow {
					return d.Err()
				}
				if err := tx.DeleteProfile(ctx, d.Grant, bySubject[ps]); err != nil {
					return err
				}
			}
			_, err := in.log.Append(ctx, tx, audit.Record{Kind: "retention", Time: now, Actor: "system:sweeper", Action: "sweep",
				Codes: []string{"CM-3"}, Detail: map[string]any{"profile_values": len(expired), "subjects": len(order)}})
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sweep profile values: %w", err)
		}
		total += len(expired)
	}
}

func (in *Ingester) sweepEvents(ctx context.Context, now time.Time) (int, error) {
	cat := in.point.Catalog()
	system := policy.Caller{Role: policy.System, ID: "sweeper"}
	total := 0
	for {
		expired, err := in.store.ExpiredEvents(ctx, now, 500)
		if err != nil {
			return total, fmt.Errorf("sweep: list expired events: %w", err)
		}
		if len(expired) == 0 {
			return total, nil
		}
		var ps []portrait.Pseudonym
		for _, e := range expired {
			ps = append(ps, e.Pseudonym)
		}
		subjects, err := in.store.Subjects(ctx, ps)
		if err != nil {
			return total, fmt.Errorf("sweep: load subjects: %w", err)
		}
		type rewrite struct {
			g       policy.Grant
			id      int64
			sealed  []byte
			expires time.Time
		}
		var todo []rewrite
		deleted, removedFields := 0, 0
		for _, e := range expired {
			d := in.point.Decide(policy.Request{State: &policy.State{Pseudonym: e.Pseudonym}, Action: policy.Sweep, Caller: system})
			if !d.Allow {
				return total, d.Err()
			}
			s, ok := subjects[e.Pseudonym]
			if !ok {
				// The key is gone (erased): the ciphertext is unreadable
				// already; drop the row too.
				todo = append(todo, rewrite{g: d.Grant, id: e.ID})
				deleted++
				continue
			}
			c, err := in.keys.Open(s)
			if err != nil {
				return total, fmt.Errorf("sweep: subject key: %w", err)
			}
			plain, err := c.Open(e.Sealed, keys.EventAD(e.Pseudonym))
			if err != nil {
				return total, fmt.Errorf("sweep: open event %d: %w", e.ID, err)
			}
			var fields map[string]any
			if err := json.Unmarshal(plain, &fields); err != nil {
				return total, fmt.Errorf("sweep: decode event %d: %w", e.ID, err)
			}
			var next time.Time
			for name := range fields {
				f := cat.Field(name)
				exp := e.Time
				if f != nil {
					exp = e.Time.Add(time.Duration(f.Retention))
				}
				if !exp.After(now) {
					delete(fields, name)
					removedFields++
					continue
				}
				if next.IsZero() || exp.Before(next) {
					next = exp
				}
			}
			r := rewrite{g: d.Grant, id: e.ID, expires: next}
			if len(fields) > 0 {
				b, _ := json.Marshal(fields)
				r.sealed = c.Seal(b, keys.EventAD(e.Pseudonym))
			} else {
				deleted++
			}
			todo = append(todo, r)
		}
		err = in.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			for _, r := range todo {
				if err := tx.RewriteEvent(ctx, r.g, r.id, r.sealed, r.expires); err != nil {
					return err
				}
			}
			_, err := in.log.Append(ctx, tx, audit.Record{Kind: "retention", Time: now, Actor: "system:sweeper", Action: "sweep",
				Codes: []string{"CM-3"}, Detail: map[string]any{"events": len(todo), "deleted": deleted, "fields_removed": removedFields}})
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sweep: %w", err)
		}
		total += len(todo)
	}
}
