package tables

import (
	"context"
	"fmt"
	"slices"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// States implements guard.Tx.States, and guard.Engine.States once the
// engine has opened a snapshot to run it in: three queries serve any
// number of pseudonyms. A pseudonym with nothing stored has no consent and
// full personalization.
func (db DB) States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	if len(pseudonyms) == 0 {
		return db.states(ctx, pseudonyms, statesSQL{})
	}
	return db.states(ctx, pseudonyms, statesAny, db.D.List(Strings(pseudonyms)))
}

// statesSQL are the three statements that read states: the subjects'
// flags, the newest consent per (subject, purpose) through the index on
// (pseudonym, purpose, seq) on both engines, and the suppressions. Each
// is written out whole, so that the check for Citus (postgres's
// TestDistributedQueriesNameTheKey) reads how it selects subjects.
type statesSQL struct{ flags, consents, suppressions string }

var statesAny = statesSQL{
	flags: `SELECT pseudonym, minor, restricted, object_profiling, object_marketing, personalization
		FROM subjects WHERE pseudonym = ANY(?)`,
	consents: `SELECT pseudonym, purpose, status, notice_version, guardian, at FROM consents
		WHERE seq IN (SELECT max(seq) FROM consents WHERE pseudonym = ANY(?) GROUP BY pseudonym, purpose)`,
	suppressions: `SELECT pseudonym, label, deleted FROM suppressions WHERE pseudonym = ANY(?)`,
}

// statesRange is statesAny over a range of pseudonyms, first and last.
var statesRange = statesSQL{
	flags: `SELECT pseudonym, minor, restricted, object_profiling, object_marketing, personalization
		FROM subjects WHERE pseudonym BETWEEN ? AND ?`,
	consents: `SELECT pseudonym, purpose, status, notice_version, guardian, at FROM consents
		WHERE seq IN (SELECT max(seq) FROM consents WHERE pseudonym BETWEEN ? AND ? GROUP BY pseudonym, purpose)`,
	suppressions: `SELECT pseudonym, label, deleted FROM suppressions WHERE pseudonym BETWEEN ? AND ?`,
}

// StatesRange implements guard.Engine.StatesRange: States of pseudonyms
// in ascending byte order, each table read as one range of its key from
// the first to the last, rather than a seek per pseudonym. For a page of
// consecutive subjects (a batch derivation's page, listed with
// SubjectsAfter) the range holds no one else; rows of subjects in the
// range but not among pseudonyms are read and left out.
func (db DB) StatesRange(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	if !slices.IsSorted(pseudonyms) {
		return nil, portrait.Errorf(portrait.EINVALID, "states: pseudonyms are not in ascending order")
	}
	if len(pseudonyms) == 0 {
		return db.states(ctx, pseudonyms, statesSQL{})
	}
	return db.states(ctx, pseudonyms, statesRange, pseudonyms[0], pseudonyms[len(pseudonyms)-1])
}

// states reads the states of pseudonyms with q's statements (and args):
// rows of other pseudonyms are skipped.
func (db DB) states(ctx context.Context, pseudonyms []portrait.Pseudonym, q statesSQL, args ...any) (map[portrait.Pseudonym]*policy.State, error) {
	out := make(map[portrait.Pseudonym]*policy.State, len(pseudonyms))
	for _, p := range pseudonyms {
		out[p] = &policy.State{Pseudonym: p, Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	}
	if len(pseudonyms) == 0 {
		return out, nil
	}

	rows, err := db.query(ctx, q.flags, args...)
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
		if st == nil {
			return struct{}{}, nil // in the range, not asked for
		}
		st.Minor, st.Restricted, st.ObjectProfiling, st.ObjectMarketing, st.Personalization =
			f.Minor, f.Restricted, f.ObjectProfiling, f.ObjectMarketing, f.Personalization
		return struct{}{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}

	rows, err = db.query(ctx, q.consents, args...)
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
		st := out[p]
		if st == nil {
			return struct{}{}, nil
		}
		var err error
		if c.Status, err = policy.ParseStatus(status); err != nil {
			return struct{}{}, fmt.Errorf("consent of %s to %s: %w", p, purpose, err)
		}
		st.Consents[purpose] = c
		return struct{}{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}

	rows, err = db.query(ctx, q.suppressions, args...)
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
		if st := out[p]; st != nil {
			st.Suppressed[label] = deleted
		}
		return struct{}{}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	return out, nil
}
