package postgres

import (
	"context"
	"fmt"
	"time"
)

// EndSessions implements guard.Tx.EndSessions.
func (tx *txn) EndSessions(ctx context.Context, id []byte, issuedBefore, keepUntil time.Time) error {
	if len(id) == 0 {
		return fmt.Errorf("end sessions: no session id")
	}
	if _, err := tx.tx.Exec(ctx, `DELETE FROM ended_sessions WHERE keep_until < $1`, time.Now().Unix()); err != nil {
		return fmt.Errorf("end sessions: prune: %w", err)
	}
	_, err := tx.tx.Exec(ctx, `INSERT INTO ended_sessions (id, issued_before, keep_until) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET issued_before = greatest(ended_sessions.issued_before, excluded.issued_before),
			keep_until = greatest(ended_sessions.keep_until, excluded.keep_until)`,
		id, issuedBefore.Unix(), keepUntil.Unix())
	if err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// SessionEnded implements guard.Engine.SessionEnded.
func (db *engine) SessionEnded(ctx context.Context, issued time.Time, ids ...[]byte) (bool, error) {
	var ended bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ended_sessions WHERE id = ANY($1) AND issued_before >= $2)`, ids, issued.Unix()).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("read ended sessions: %w", err)
	}
	return ended, nil
}
