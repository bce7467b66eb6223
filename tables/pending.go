package tables

import (
	"context"
	"fmt"
	"strings"

	portrait "github.com/portrait-dev/portrait"
)

// MarkPending records, in the caller's transaction, that pseudonyms'
// labels wait for incremental derivation (derive.Queue), and returns the
// mark's id: one row for the whole batch.
func (t Tx) MarkPending(ctx context.Context, pseudonyms []portrait.Pseudonym) (int64, error) {
	var b strings.Builder
	for i, p := range pseudonyms {
		if strings.ContainsAny(string(p), " \t\n") || p == "" {
			return 0, fmt.Errorf("mark subjects for derivation: pseudonym %q cannot be listed", p)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(string(p))
	}
	var id int64
	if err := t.queryRow(ctx, `INSERT INTO derive_pending (pseudonyms) VALUES (?) RETURNING id`, b.String()).Scan(&id); err != nil {
		return 0, fmt.Errorf("mark %d subjects for derivation: %w", len(pseudonyms), err)
	}
	return id, nil
}

// ClearPending deletes the marks ids, in the transaction that writes the
// derivation that covered the last of their subjects.
func (t Tx) ClearPending(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM derive_pending WHERE id = ANY(?)`, t.D.List64(ids)); err != nil {
		return fmt.Errorf("clear %d derivation marks: %w", len(ids), err)
	}
	return nil
}

// PendingCommitted returns those of ids that are marks a read now sees:
// committed, and not cleared.
func (db DB) PendingCommitted(ctx context.Context, ids []int64) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return queryAll(ctx, db, "read derivation marks", func(r Rows) (id int64, err error) { return id, r.Scan(&id) },
		`SELECT id FROM derive_pending WHERE id = ANY(?)`, db.D.List64(ids))
}

// Pending returns, in id order, up to limit marks with ids above after,
// each with the subjects it names.
func (db DB) Pending(ctx context.Context, after int64, limit int) ([]portrait.PendingMark, error) {
	return queryAll(ctx, db, "read subjects waiting for derivation", func(r Rows) (m portrait.PendingMark, err error) {
		var list string
		if err := r.Scan(&m.ID, &list); err != nil {
			return m, err
		}
		for _, p := range strings.Fields(list) {
			m.Pseudonyms = append(m.Pseudonyms, portrait.Pseudonym(p))
		}
		return m, nil
	}, `SELECT id, pseudonyms FROM derive_pending WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
}
