package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tables"
)

// scanSQL is EventsFor's query with only the columns a batch derivation
// reads (ScanEvents).
const scanSQL = `SELECT pseudonym, id, type, time, sealed FROM events
	WHERE pseudonym = ANY($1) AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY pseudonym, time, id`

// ScanEvents implements guard.Engine.ScanEvents: EventsFor's read into a
// page's buffers. The pseudonym, type and sealed columns are scanned as
// pgx's own bytes (pgtype.DriverBytes, valid until the next row) and
// copied once into the page, instead of into a fresh StoredEvent per row
// in a growing slice and then a map of slices.
func (db *engine) ScanEvents(ctx context.Context, page *portrait.EventPage, since time.Time) error {
	rows, err := db.pool.Query(ctx, scanSQL, tables.Strings(page.Subjects()), ts(since))
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var ps, typ, sealed pgtype.DriverBytes
	var id int64
	var t time.Time
	for rows.Next() {
		if err := rows.Scan(&ps, &id, &typ, &t, &sealed); err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		i, ok := page.IndexBytes(ps)
		if !ok {
			return fmt.Errorf("read events: event %d of a subject not asked for", id)
		}
		page.Add(i, id, t.UnixNano(), page.Type(typ), sealed)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	page.Done()
	return nil
}

// StatesRange implements guard.Engine.StatesRange: tables.DB.StatesRange
// in one snapshot, as States.
func (db *engine) StatesRange(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	return db.statesIn(ctx, pseudonyms, tables.DB.StatesRange)
}
