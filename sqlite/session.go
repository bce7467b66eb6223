package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// EndSessions implements guard.Tx.EndSessions. Sign-outs and erasures
// are rare next to the write path, so its statements are not among the
// ones prepared at Open.
func (tx *txn) EndSessions(ctx context.Context, id []byte, issuedBefore, keepUntil time.Time) error {
	if len(id) == 0 {
		return fmt.Errorf("end sessions: no session id")
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM ended_sessions WHERE keep_until < ?`, time.Now().Unix()); err != nil {
		return fmt.Errorf("end sessions: prune: %w", err)
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO ended_sessions (id, issued_before, keep_until) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET issued_before = max(issued_before, excluded.issued_before), keep_until = max(keep_until, excluded.keep_until)`,
		id, issuedBefore.Unix(), keepUntil.Unix())
	if err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// SessionEnded implements guard.Engine.SessionEnded, in one query.
func (db *engine) SessionEnded(ctx context.Context, issued time.Time, ids ...[]byte) (bool, error) {
	if len(ids) == 0 {
		return false, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, issued.Unix())
	for _, id := range ids {
		args = append(args, id)
	}
	q := `SELECT EXISTS (SELECT 1 FROM ended_sessions WHERE issued_before >= ? AND id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `))`
	var ended bool
	if err := db.queryRow(ctx, q, args...).Scan(&ended); err != nil {
		return false, fmt.Errorf("read ended sessions: %w", err)
	}
	return ended, nil
}
