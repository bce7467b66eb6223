package sqlite

import (
	"context"
	"fmt"
)

// The retention sweep's way into the clustered table (migration 0070).
// The table has no index on expires: that index cost every moved event
// an insert (a fifth of the move). event_expiry keeps instead, for each
// subject with an expiring clustered event, the earliest such expiry,
// exactly:
//
//   - the move lowers a subject's row to the earliest expiry it moves in
//     (and writes nothing when the row is already lower, the common case:
//     later events expire later);
//   - RewriteEvent marks the subject of a clustered event it rewrites or
//     deletes, and the row is recomputed from the subject's clustered
//     events once, when the transaction member's function returns, inside
//     its savepoint (settleExpiry), so a sweep page that deletes 500 of a
//     subject's events scans the subject once, not 500 times;
//   - erasure deletes the row with the subject's events (EventDeletes).
//
// ExpiredEvents then reads the events of the subjects with the earliest
// rows, at most limit of them: since each row is its subject's earliest
// expiry, the limit earliest expired events of the clustered table belong
// to those subjects.

// moveExpirySQL lowers the rows of the subjects of runs up to ?1 to the
// earliest expiry among their events in those runs; a slice of a move
// puts its own condition between moveExpiryInto and moveExpiryGroup.
// The inner GROUP BY run, pseudonym follows events_new's key, so it
// needs no sort, and leaves one row per subject and run for the outer
// GROUP BY to sort: as many as the events when every run holds a subject
// once (HTTP load's shape), a tenth of them with ingest's benchmark
// shape, where it replaced a sort of every moved event (issue 14,
// session 9).
const (
	moveExpiryInto = `INSERT INTO event_expiry (pseudonym, expires)
	SELECT pseudonym, min(e) FROM (SELECT pseudonym, min(expires) AS e FROM events_new WHERE `
	moveExpiryGroup = ` AND expires IS NOT NULL GROUP BY run, pseudonym) GROUP BY pseudonym
	ON CONFLICT (pseudonym) DO UPDATE SET expires = excluded.expires WHERE excluded.expires < event_expiry.expires`
	moveExpirySQL = moveExpiryInto + `run <= ?1` + moveExpiryGroup
)

// Recomputing one subject's row: the earliest expiry of its clustered
// events, or no row if none expires.
const (
	dropExpirySQL   = `DELETE FROM event_expiry WHERE pseudonym = ?1`
	settleExpirySQL = `INSERT INTO event_expiry (pseudonym, expires)
	SELECT ?1, min(expires) FROM events WHERE pseudonym = ?1 AND expires IS NOT NULL HAVING min(expires) IS NOT NULL`
)

// touchExpiry marks a subject (its eventKey) whose clustered events the
// member rewrote or deleted.
func (tx *txn) touchExpiry(key any) {
	if tx.expiry == nil {
		tx.expiry = map[string]any{}
	}
	k := ""
	switch key := key.(type) {
	case []byte:
		k = "b" + string(key)
	case string:
		k = "s" + key
	}
	tx.expiry[k] = key
}

// settleExpiry recomputes the rows of the subjects touchExpiry marked.
func (tx *txn) settleExpiry(ctx context.Context) error {
	for _, key := range tx.expiry {
		if _, err := tx.tx.ExecContext(ctx, dropExpirySQL, key); err != nil {
			return fmt.Errorf("settle event expiry: %w", err)
		}
		if _, err := tx.tx.ExecContext(ctx, settleExpirySQL, key); err != nil {
			return fmt.Errorf("settle event expiry: %w", err)
		}
	}
	tx.expiry = nil
	return nil
}
