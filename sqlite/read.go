package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tables"
)

// list encodes strings as one JSON array parameter, expanded in SQL with
// json_each, so a batch of any size is one statement.
func list[T ~string](s []T) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// list64 is list for integers.
func list64(xs []int64) string {
	b, _ := json.Marshal(xs)
	return string(b)
}

const eventColumns = `id, pseudonym, type, time, idem, sealed, expires`

// eventKey is how the events table stores a pseudonym: one of 32
// lowercase hex digits, as keys.Pseudonym makes them, as its 16 bytes (a
// smaller key in the table and in both of its indexes); any other as text.
// The mapping is one to one, since a blob never equals a text.
func eventKey(pseudonym portrait.Pseudonym) any {
	s := string(pseudonym)
	if len(s) != 32 || strings.ToLower(s) != s {
		return s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return s
	}
	return b
}

// eventKeySQL is eventKey in SQL, for a pseudonym from json_each.
const eventKeySQL = `CASE WHEN length(value) = 32 AND value NOT GLOB '*[^0-9a-f]*' THEN unhex(value) ELSE value END`

func scanEvents(rows *sql.Rows) ([]portrait.StoredEvent, error) {
	defer rows.Close()
	var out []portrait.StoredEvent
	for rows.Next() {
		var e portrait.StoredEvent
		var t, exp sql.NullInt64
		var p any
		if err := rows.Scan(&e.ID, &p, &e.Type, &t, &e.Idem, &e.Sealed, &exp); err != nil {
			return nil, err
		}
		switch p := p.(type) {
		case []byte:
			e.Pseudonym = portrait.Pseudonym(hex.EncodeToString(p))
		case string:
			e.Pseudonym = portrait.Pseudonym(p)
		default:
			return nil, fmt.Errorf("event %d: pseudonym stored as %T", e.ID, p)
		}
		e.Time, e.Expires = fromNanos(t), fromNanos(exp)
		out = append(out, e)
	}
	return out, rows.Err()
}

// inTimeOrder sorts one subject's events, read in id (arrival) order, by
// time and then id. Events mostly arrive in time order, so the check that
// they already are is usually all it costs.
func inTimeOrder(evs []portrait.StoredEvent) {
	byTime := func(a, b portrait.StoredEvent) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) }
	if !slices.IsSortedFunc(evs, byTime) {
		slices.SortFunc(evs, byTime)
	}
}

// The reads of events look in the clustered table and in every run
// (migrations 0040, 0060): a subject's moved events are one range of the
// clustered table, and those not yet moved are one range of each run,
// found by a seek per run listed in event_runs (CROSS JOIN keeps that
// list outside, so each run is a seek, not a scan). The mover moves an
// event in one transaction, and a read sees one snapshot, so each event is
// read exactly once. The expiry sweep reads the clustered table through
// the earliest expiry of each subject (event_expiry, expiry.go: the
// events of at most limit subjects, those whose earliest expiry is
// earliest) and only the runs whose earliest expiry has passed.
const (
	runCols   = `e.id, e.pseudonym, e.type, e.time, e.idem, e.sealed, e.expires`
	eventsSQL = `SELECT ` + eventColumns + ` FROM events WHERE pseudonym = ?1 AND time >= ?2
		UNION ALL SELECT ` + runCols + ` FROM event_runs AS r CROSS JOIN events_new AS e
		WHERE e.run = r.run AND e.pseudonym = ?1 AND e.time >= ?2 ORDER BY id`
	eventsForSQL = `SELECT ` + eventColumns + ` FROM events WHERE pseudonym IN (SELECT ` + eventKeySQL + ` FROM json_each(?1)) AND time >= ?2
		UNION ALL SELECT ` + runCols + ` FROM event_runs AS r CROSS JOIN events_new AS e
		WHERE e.run = r.run AND e.pseudonym IN (SELECT ` + eventKeySQL + ` FROM json_each(?1)) AND e.time >= ?2
		ORDER BY 2, 1`
	expiredEventsSQL = `SELECT ` + runCols + ` FROM (SELECT pseudonym FROM event_expiry WHERE expires <= ?1 ORDER BY expires LIMIT ?2) AS x
		CROSS JOIN events AS e WHERE e.pseudonym = x.pseudonym AND e.expires <= ?1
		UNION ALL SELECT ` + runCols + ` FROM event_runs AS r CROSS JOIN events_new AS e
		WHERE r.expires <= ?1 AND e.run = r.run AND e.expires IS NOT NULL AND e.expires <= ?1 ORDER BY 7, 1 LIMIT ?2`
)

// Events implements guard.Engine.Events.
func (db *engine) Events(ctx context.Context, pseudonym portrait.Pseudonym, since time.Time) ([]portrait.StoredEvent, error) {
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	rows, err := db.query(ctx, eventsSQL, eventKey(pseudonym), from)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	inTimeOrder(out)
	return out, nil
}

// ExpiredEvents implements guard.Engine.ExpiredEvents.
func (db *engine) ExpiredEvents(ctx context.Context, now time.Time, limit int) ([]portrait.StoredEvent, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "expired events: limit %d must be positive", limit)
	}
	rows, err := db.query(ctx, expiredEventsSQL, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("read expired events: %w", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read expired events: %w", err)
	}
	return out, nil
}

// EventsFor implements guard.Engine.EventsFor.
func (db *engine) EventsFor(ctx context.Context, subjects []portrait.Pseudonym, since time.Time) (map[portrait.Pseudonym][]portrait.StoredEvent, error) {
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredEvent{}, nil
	}
	from := int64(math.MinInt64)
	if !since.IsZero() {
		from = since.UnixNano()
	}
	rows, err := db.query(ctx, eventsForSQL, list(subjects), from)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := tables.BySubject(evs, func(e *portrait.StoredEvent) portrait.Pseudonym { return e.Pseudonym })
	for _, evs := range out {
		inTimeOrder(evs)
	}
	return out, nil
}

// eventsAfterSQL reads, for each [pseudonym, id] of the JSON array ?1,
// the subject's events with a greater id: the clustered table's key is
// (pseudonym, id), so a subject's new events are one short range of it,
// and in the runs a seek into each run whose last id is above the mark
// (runs below it cannot hold a newer event). json_each drives the join
// (CROSS JOIN keeps it outside), so each subject is a seek, not a scan.
var eventsAfterSQL = func() string {
	key := strings.ReplaceAll(eventKeySQL, "value", "(value->>0)")
	return `WITH m(p, after) AS MATERIALIZED (SELECT ` + key + `, value->>1 FROM json_each(?1))
	SELECT ` + runCols + ` FROM m CROSS JOIN events AS e
		WHERE e.pseudonym = m.p AND e.id > m.after
	UNION ALL SELECT ` + runCols + ` FROM m CROSS JOIN event_runs AS r CROSS JOIN events_new AS e
		WHERE r.last > m.after AND e.run = r.run AND e.pseudonym = m.p AND e.id > m.after
	ORDER BY 2, 1` // by subject for tables.BySubject
}()

// eventsAfterOneSQL is eventsAfterSQL for one subject, the common case
// (ingest derives the subjects of a batch as soon as it commits): bound
// values instead of JSON.
const eventsAfterOneSQL = `SELECT ` + eventColumns + ` FROM events WHERE pseudonym = ?1 AND id > ?2
	UNION ALL SELECT ` + runCols + ` FROM event_runs AS r CROSS JOIN events_new AS e
	WHERE r.last > ?2 AND e.run = r.run AND e.pseudonym = ?1 AND e.id > ?2` // put in time order in Go

// EventsAfter implements guard.Engine.EventsAfter. Ids are reserved under
// the write lock (InsertEvents) and so committed in id order: the events
// committed after a read are exactly those with a greater id than any it
// saw, and the horizon is always 0. Events keep their id when the mover
// clusters them.
func (db *engine) EventsAfter(ctx context.Context, subjects []portrait.Pseudonym, after map[portrait.Pseudonym]portrait.EventMark) (map[portrait.Pseudonym][]portrait.StoredEvent, int64, error) {
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredEvent{}, 0, nil
	}
	var rows *sql.Rows
	var err error
	if len(subjects) == 1 {
		rows, err = db.query(ctx, eventsAfterOneSQL, eventKey(subjects[0]), after[subjects[0]].ID)
	} else {
		args := make([][2]any, len(subjects))
		for i, ps := range subjects {
			args[i] = [2]any{ps, after[ps].ID}
		}
		b, jerr := json.Marshal(args)
		if jerr != nil {
			return nil, 0, fmt.Errorf("read events: %w", jerr)
		}
		rows, err = db.query(ctx, eventsAfterSQL, string(b))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, 0, fmt.Errorf("read events: %w", err)
	}
	out := tables.BySubject(evs, func(e *portrait.StoredEvent) portrait.Pseudonym { return e.Pseudonym })
	for _, evs := range out {
		inTimeOrder(evs)
	}
	return out, 0, nil
}

// States implements guard.Engine.States: tables.DB.States in one
// snapshot.
func (db *engine) States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	return db.statesIn(ctx, pseudonyms, tables.DB.States)
}

// statesIn runs one of tables.DB's reads of governance states inside one
// read transaction, so that its three queries (consents, flags,
// suppressions) see one snapshot.
func (db *engine) statesIn(ctx context.Context, pseudonyms []portrait.Pseudonym,
	read func(tables.DB, context.Context, []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)) (map[portrait.Pseudonym]*policy.State, error) {
	if len(pseudonyms) == 0 {
		return read(db.DB, ctx, nil) // no query
	}
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	defer tx.Rollback()
	return read(shared(plain{tx}), ctx, pseudonyms)
}
