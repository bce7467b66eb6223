package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tables"
)

// scanSQL is eventsForSQL for a batch derivation's page (ScanEvents):
// the same tables, read the same way — a subject's moved events are one
// range of the clustered table events (pseudonym, id), those not yet
// moved one range of each run of events_new listed in event_runs, all in
// one statement and so one snapshot, in which the mover has moved an
// event or not — but with only the columns derivation reads, and each
// row naming its subject by its index in the JSON array ?1 (json_each's
// key) instead of by its pseudonym. The array is decoded, and each
// pseudonym made into its stored key, once (the MATERIALIZED m, as
// eventsAfterSQL does), not once per table and run; m drives the
// joins (CROSS JOIN keeps it outside), so each subject is a seek per
// table and run; and there is no ORDER BY: the page groups and orders
// the rows (EventPage.Done), which saves SQLite sorting rows that carry
// their sealed bytes.
var scanSQL = func() string {
	key := strings.ReplaceAll(eventKeySQL, "value", "j.value")
	return `WITH m(i, p) AS MATERIALIZED (SELECT j.key, ` + key + ` FROM json_each(?1) AS j)
	SELECT m.i, e.id, e.type, e.time, e.sealed FROM m CROSS JOIN events AS e
		WHERE e.pseudonym = m.p AND e.time >= ?2
	UNION ALL SELECT m.i, e.id, e.type, e.time, e.sealed FROM m CROSS JOIN event_runs AS r CROSS JOIN events_new AS e
		WHERE e.run = r.run AND e.pseudonym = m.p AND e.time >= ?2`
}()

// ScanEvents implements guard.Engine.ScanEvents: EventsFor's read into a
// page's buffers. It steps the driver's rows itself (one connection of
// the read pool, through database/sql's Conn.Raw): database/sql's Scan
// made a boxed value and a copy per column and row, and EventsFor a
// StoredEvent per row in a growing slice, then a map of slices; here a
// row costs the driver's own values and nothing else.
func (db *engine) ScanEvents(ctx context.Context, page *portrait.EventPage, since time.Time) error {
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	n := len(page.Subjects())
	conn, err := db.read.Conn(ctx)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare with a context", dc)
		}
		st, err := prep.PrepareContext(ctx, scanSQL)
		if err != nil {
			return err
		}
		defer st.Close()
		q, ok := st.(driver.StmtQueryContext)
		if !ok {
			return fmt.Errorf("driver statement %T cannot query with a context", st)
		}
		rows, err := q.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: list(page.Subjects())}, {Ordinal: 2, Value: from}})
		if err != nil {
			return err
		}
		defer rows.Close()
		row := make([]driver.Value, 5)
		for {
			if err := rows.Next(row); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return err
			}
			i, ok1 := row[0].(int64)
			id, ok2 := row[1].(int64)
			typ, ok3 := row[2].(string)
			t, ok4 := row[3].(int64)
			sealed, ok5 := row[4].([]byte)
			ok5 = ok5 || row[4] == nil // an empty blob; opening it fails for its subject alone, as EventsFor's
			if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || i < 0 || i >= int64(n) {
				return fmt.Errorf("event row (%T, %T, %T, %T, %T) is not (subject index, id, type, time, sealed)", row[0], row[1], row[2], row[3], row[4])
			}
			page.Add(int32(i), id, t, typ, sealed)
		}
	})
	if err != nil {
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
