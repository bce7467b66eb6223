package tables

import (
	"context"
	"fmt"
	"strings"

	portrait "github.com/portrait-dev/portrait"
)

// pendingRowsPerInsert keeps a mark's statement to a few fixed sizes
// (the engines remember every statement text they see).
const pendingRowsPerInsert = 1024

// MarkPending records, in the caller's transaction, that pseudonyms'
// labels wait for incremental derivation (derive.Queue): one new row per
// subject, never an update, so concurrent marks and clears do not wait on
// each other.
func (t Tx) MarkPending(ctx context.Context, pseudonyms []portrait.Pseudonym) error {
	for len(pseudonyms) > 0 {
		n := pendingRowsPerInsert
		for n > len(pseudonyms) {
			n /= 4
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO derive_pending (pseudonym) VALUES `)
		args := make([]any, n)
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?)")
			args[i] = string(pseudonyms[i])
		}
		if _, err := t.exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("mark %d subjects for derivation: %w", n, err)
		}
		pseudonyms = pseudonyms[n:]
	}
	return nil
}

// ClearPending deletes the marks with ids (read by PendingMarks before
// the derivation read the subjects' events), in the transaction that
// writes the derivation.
func (t Tx) ClearPending(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.exec(ctx, `DELETE FROM derive_pending WHERE id = ANY(?)`, t.D.List64(ids)); err != nil {
		return fmt.Errorf("clear %d derivation marks: %w", len(ids), err)
	}
	return nil
}

// PendingMarks returns the ids of the marks of pseudonyms.
func (db DB) PendingMarks(ctx context.Context, pseudonyms []portrait.Pseudonym) ([]int64, error) {
	if len(pseudonyms) == 0 {
		return nil, nil
	}
	rows, err := db.query(ctx, `SELECT id FROM derive_pending WHERE pseudonym = ANY(?)`, db.D.List(Strings(pseudonyms)))
	if err != nil {
		return nil, fmt.Errorf("read derivation marks: %w", err)
	}
	ids, err := collect(rows, func(r Rows) (id int64, err error) { return id, r.Scan(&id) })
	if err != nil {
		return nil, fmt.Errorf("read derivation marks: %w", err)
	}
	return ids, nil
}

// Pending lists, in order, up to limit subjects after after whose labels
// wait for derivation.
func (db DB) Pending(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.Pseudonym, error) {
	rows, err := db.query(ctx, `SELECT DISTINCT pseudonym FROM derive_pending WHERE pseudonym > ? ORDER BY pseudonym LIMIT ?`, string(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read subjects waiting for derivation: %w", err)
	}
	out, err := collect(rows, func(r Rows) (p portrait.Pseudonym, err error) { return p, r.Scan(&p) })
	if err != nil {
		return nil, fmt.Errorf("read subjects waiting for derivation: %w", err)
	}
	return out, nil
}
