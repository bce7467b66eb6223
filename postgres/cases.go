package postgres

import (
	"context"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

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
