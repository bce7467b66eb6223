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

const eventColumns = `id, pseudonym, type, time, idem, sealed, expires`

func scanEvents(rows pgx.Rows) ([]portrait.StoredEvent, error) {
	defer rows.Close()
	var out []portrait.StoredEvent
	for rows.Next() {
		var e portrait.StoredEvent
		var exp *time.Time
		if err := rows.Scan(&e.ID, &e.Pseudonym, &e.Type, &e.Time, &e.Idem, &e.Sealed, &exp); err != nil {
			return nil, err
		}
		e.Time, e.Expires = e.Time.UTC(), fromTS(exp)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Events implements guard.Engine.Events.
func (db *engine) Events(ctx context.Context, pseudonym portrait.Pseudonym, since time.Time) ([]portrait.StoredEvent, error) {
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
func (db *engine) EventsFor(ctx context.Context, subjects []portrait.Pseudonym, since time.Time) (map[portrait.Pseudonym][]portrait.StoredEvent, error) {
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredEvent{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE pseudonym = ANY($1) AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY pseudonym, time, id`, tables.Strings(subjects), ts(since))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return tables.BySubject(evs, func(e *portrait.StoredEvent) portrait.Pseudonym { return e.Pseudonym }), nil
}

// States implements guard.Engine.States: tables.DB.States inside one
// repeatable-read transaction, so its three queries see one snapshot.
func (db *engine) States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	if len(pseudonyms) == 0 {
		return db.DB.States(ctx, nil) // no query
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	defer tx.Rollback(ctx)
	return shared(tx).States(ctx, pseudonyms)
}
