package tables

import (
	"context"
	"fmt"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// States implements guard.Tx.States, and guard.Engine.States once the
// engine has opened a snapshot to run it in: three queries serve any
// number of pseudonyms. A pseudonym with nothing stored has no consent and
// full personalization.
func (db DB) States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	out := make(map[portrait.Pseudonym]*policy.State, len(pseudonyms))
	for _, p := range pseudonyms {
		out[p] = &policy.State{Pseudonym: p, Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	}
	if len(pseudonyms) == 0 {
		return out, nil
	}
	ids := db.D.List(Strings(pseudonyms))

	rows, err := db.query(ctx, `SELECT pseudonym, minor, restricted, object_profiling, object_marketing, personalization
		FROM subjects WHERE pseudonym = ANY(?)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	_, err = collect(rows, func(r Rows) (struct{}, error) {
		var p portrait.Pseudonym
		var f portrait.Flags
		if err := r.Scan(&p, &f.Minor, &f.Restricted, &f.ObjectProfiling, &f.ObjectMarketing, &f.Personalization); err != nil {
			return struct{}{}, err
		}
		st := out[p]
		st.Minor, st.Restricted, st.ObjectProfiling, st.ObjectMarketing, st.Personalization =
			f.Minor, f.Restricted, f.ObjectProfiling, f.ObjectMarketing, f.Personalization
		return struct{}{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}

	// The newest record of each (subject, purpose), through the index on
	// (pseudonym, purpose, seq) on both engines.
	rows, err = db.query(ctx, `SELECT pseudonym, purpose, status, notice_version, guardian, at FROM consents
		WHERE seq IN (SELECT max(seq) FROM consents WHERE pseudonym = ANY(?) GROUP BY pseudonym, purpose)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	_, err = collect(rows, func(r Rows) (struct{}, error) {
		var p portrait.Pseudonym
		var purpose, status string
		var c policy.Consent
		if err := r.Scan(&p, &purpose, &status, &c.NoticeVersion, &c.Guardian, Time(&c.At)); err != nil {
			return struct{}{}, err
		}
		var err error
		if c.Status, err = policy.ParseStatus(status); err != nil {
			return struct{}{}, fmt.Errorf("consent of %s to %s: %w", p, purpose, err)
		}
		out[p].Consents[purpose] = c
		return struct{}{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}

	rows, err = db.query(ctx, `SELECT pseudonym, label, deleted FROM suppressions WHERE pseudonym = ANY(?)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	_, err = collect(rows, func(r Rows) (struct{}, error) {
		var p portrait.Pseudonym
		var label string
		var deleted bool
		if err := r.Scan(&p, &label, &deleted); err != nil {
			return struct{}{}, err
		}
		out[p].Suppressed[label] = deleted
		return struct{}{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	return out, nil
}
