package postgres

import (
	"context"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// Cases implements guard.Engine.Cases.
func (db *engine) Cases(ctx context.Context, pseudonym string) ([]portrait.Case, error) {
	q := `SELECT id, pseudonym, type, status, created, deadline, closed, outcome, reason, log_index FROM cases`
	var args []any
	if pseudonym != "" {
		q += ` WHERE pseudonym = $1`
		args = append(args, pseudonym)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	defer rows.Close()
	var out []portrait.Case
	for rows.Next() {
		var c portrait.Case
		var deadline, closed *time.Time
		if err := rows.Scan(&c.ID, &c.Subject, &c.Type, &c.Status, &c.Created, &deadline, &closed, &c.Outcome, &c.Reason, &c.LogIndex); err != nil {
			return nil, fmt.Errorf("read cases: %w", err)
		}
		c.Created, c.Deadline, c.Closed = c.Created.UTC(), fromTS(deadline), fromTS(closed)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	return out, nil
}

// Pseudonyms implements guard.Engine.Pseudonyms, in byte order (the
// column's collation is "C").
func (db *engine) Pseudonyms(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "pseudonyms: limit %d must be positive", limit)
	}
	rows, err := db.pool.Query(ctx, `SELECT pseudonym FROM subjects WHERE pseudonym > $1 ORDER BY pseudonym LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read pseudonyms: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("read pseudonyms: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pseudonyms: %w", err)
	}
	return out, nil
}

// PutCase implements guard.Tx.PutCase.
func (tx *txn) PutCase(ctx context.Context, c portrait.Case) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.ID == "" || c.Subject == "" || c.Type == "" || c.Status == "" {
		return portrait.Errorf(portrait.EINVALID, "put case %q: a case needs an id, a subject, a type and a status", c.ID)
	}
	created := c.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.tx.Exec(ctx, `INSERT INTO cases (id, pseudonym, type, status, created, deadline, closed, outcome, reason, log_index)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET pseudonym = excluded.pseudonym, type = excluded.type, status = excluded.status, created = excluded.created,
			deadline = excluded.deadline, closed = excluded.closed, outcome = excluded.outcome, reason = excluded.reason, log_index = excluded.log_index`,
		c.ID, c.Subject, c.Type, c.Status, created, ts(c.Deadline), ts(c.Closed), c.Outcome, c.Reason, c.LogIndex)
	if err != nil {
		return fmt.Errorf("put case %s: %w", c.ID, err)
	}
	return nil
}
