package tables

import (
	"context"
	"fmt"
	"slices"
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

// unmarkPending removes pseudonym from every mark naming it, and deletes
// the marks it leaves with no subject, in the erasure's transaction: a
// mark holds pseudonyms until a derivation covers it, and an erased
// subject's is never covered by one (it has no subject row to derive), so
// without this it stayed until the queue's next page or a restart. LIKE
// only narrows the rows read (it is case-insensitive on SQLite and "_"
// matches any character); the list is compared word for word in Go.
func (tx Tx) unmarkPending(ctx context.Context, pseudonym portrait.Pseudonym) error {
	type mark struct {
		id   int64
		list string
	}
	like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(string(pseudonym)) + "%"
	marks, err := queryAll(ctx, tx.DB, "read derivation marks", func(r Rows) (m mark, err error) { return m, r.Scan(&m.id, &m.list) },
		`SELECT id, pseudonyms FROM derive_pending WHERE pseudonyms LIKE ? ESCAPE '\'`, like)
	if err != nil {
		return err
	}
	for _, m := range marks {
		names := strings.Fields(m.list)
		left := slices.DeleteFunc(slices.Clone(names), func(p string) bool { return p == string(pseudonym) })
		switch {
		case len(left) == len(names):
			continue // a longer pseudonym containing this one
		case len(left) == 0:
			_, err = tx.exec(ctx, `DELETE FROM derive_pending WHERE id = ?`, m.id)
		default:
			_, err = tx.exec(ctx, `UPDATE derive_pending SET pseudonyms = ? WHERE id = ?`, strings.Join(left, " "), m.id)
		}
		if err != nil {
			return fmt.Errorf("remove an erased subject from derivation mark %d: %w", m.id, err)
		}
	}
	return nil
}
