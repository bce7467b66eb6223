package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tables"
)

// States implements guard.Engine.States. Three queries serve any number
// of pseudonyms, inside one repeatable-read transaction so they see one
// snapshot.
func (db *engine) States(ctx context.Context, pseudonyms []string) (map[string]*policy.State, error) {
	out := make(map[string]*policy.State, len(pseudonyms))
	for _, p := range pseudonyms {
		out[p] = &policy.State{Subject: p, Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	}
	if len(pseudonyms) == 0 {
		return out, nil
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	defer tx.Rollback(ctx)
	return readStates(ctx, tx, pseudonyms, out)
}

// States implements guard.Tx.States: the same reads inside the write
// transaction.
func (tx *txn) States(ctx context.Context, pseudonyms []string) (map[string]*policy.State, error) {
	out := make(map[string]*policy.State, len(pseudonyms))
	for _, p := range pseudonyms {
		out[p] = &policy.State{Subject: p, Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	}
	if len(pseudonyms) == 0 {
		return out, nil
	}
	return readStates(ctx, tx.tx, pseudonyms, out)
}

func readStates(ctx context.Context, tx pgx.Tx, pseudonyms []string, out map[string]*policy.State) (map[string]*policy.State, error) {
	rows, err := tx.Query(ctx, `SELECT pseudonym, minor, restricted, object_profiling, object_marketing, personalization
		FROM subjects WHERE pseudonym = ANY($1)`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	for rows.Next() {
		var p string
		var f portrait.Flags
		if err := rows.Scan(&p, &f.Minor, &f.Restricted, &f.ObjectProfiling, &f.ObjectMarketing, &f.Personalization); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: %w", err)
		}
		st := out[p]
		st.Minor, st.Restricted, st.ObjectProfiling, st.ObjectMarketing, st.Personalization =
			f.Minor, f.Restricted, f.ObjectProfiling, f.ObjectMarketing, f.Personalization
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("read states: %w", rows.Err())
	}

	rows, err = tx.Query(ctx, `SELECT DISTINCT ON (pseudonym, purpose) pseudonym, purpose, status, notice_version, guardian, at
		FROM consents WHERE pseudonym = ANY($1) ORDER BY pseudonym, purpose, seq DESC`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	for rows.Next() {
		var p, purpose, status string
		var c policy.Consent
		if err := rows.Scan(&p, &purpose, &status, &c.NoticeVersion, &c.Guardian, &c.At); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: %w", err)
		}
		if c.Status, err = policy.ParseStatus(status); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: consent of %s to %s: %w", p, purpose, err)
		}
		c.At = c.At.UTC()
		out[p].Consents[purpose] = c
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("read states: %w", rows.Err())
	}

	rows, err = tx.Query(ctx, `SELECT pseudonym, label, deleted FROM suppressions WHERE pseudonym = ANY($1)`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	for rows.Next() {
		var p, label string
		var deleted bool
		if err := rows.Scan(&p, &label, &deleted); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: %w", err)
		}
		out[p].Suppressed[label] = deleted
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("read states: %w", rows.Err())
	}
	return out, nil
}

const eventColumns = `id, pseudonym, type, time, idem, sealed, expires`

func scanEvents(rows pgx.Rows) ([]portrait.StoredEvent, error) {
	defer rows.Close()
	var out []portrait.StoredEvent
	for rows.Next() {
		var e portrait.StoredEvent
		var exp *time.Time
		if err := rows.Scan(&e.ID, &e.Subject, &e.Type, &e.Time, &e.Idem, &e.Sealed, &exp); err != nil {
			return nil, err
		}
		e.Time, e.Expires = e.Time.UTC(), fromTS(exp)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Events implements guard.Engine.Events.
func (db *engine) Events(ctx context.Context, pseudonym string, since time.Time) ([]portrait.StoredEvent, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE pseudonym = $1 AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY time, id`,
		pseudonym, ts(since))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// ExpiredEvents implements guard.Engine.ExpiredEvents.
func (db *engine) ExpiredEvents(ctx context.Context, now time.Time, limit int) ([]portrait.StoredEvent, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "expired events: limit %d must be positive", limit)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires, id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("read expired events: %w", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read expired events: %w", err)
	}
	return out, nil
}

// EventsFor implements guard.Engine.EventsFor.
func (db *engine) EventsFor(ctx context.Context, subjects []string, since time.Time) (map[string][]portrait.StoredEvent, error) {
	if len(subjects) == 0 {
		return map[string][]portrait.StoredEvent{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE pseudonym = ANY($1) AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY pseudonym, time, id`, subjects, ts(since))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return tables.BySubject(evs, func(e *portrait.StoredEvent) string { return e.Subject }), nil
}
