package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tables"
)

const eventColumns = `id, pseudonym, type, time, idem, sealed, expires`

func scanEvents(rows pgx.Rows) ([]portrait.StoredEvent, error) {
	defer rows.Close()
	var out []portrait.StoredEvent
	for rows.Next() {
		var e portrait.StoredEvent
		var exp *time.Time
		if err := rows.Scan(&e.ID, &e.Pseudonym, &e.Type, &e.Time, &e.Idem, &e.Sealed, &exp); err != nil {
			return nil, err
		}
		e.Time, e.Expires = e.Time.UTC(), fromTS(exp)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Events implements guard.Engine.Events.
func (db *engine) Events(ctx context.Context, pseudonym portrait.Pseudonym, since time.Time) ([]portrait.StoredEvent, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE pseudonym = $1 AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY time, id`,
		pseudonym, ts(since))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// ExpiredEvents implements guard.Engine.ExpiredEvents.
func (db *engine) ExpiredEvents(ctx context.Context, now time.Time, limit int) ([]portrait.StoredEvent, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "expired events: limit %d must be positive", limit)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires, id LIMIT $2`, now, limit)
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
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE pseudonym = ANY($1) AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY pseudonym, time, id`, tables.Strings(subjects), ts(since))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return tables.BySubject(evs, func(e *portrait.StoredEvent) portrait.Pseudonym { return e.Pseudonym }), nil
}

// eventsAfterSQL reads the events of the subjects $1 with an id above $2
// or written by a transaction at or after the horizon $3, all with ids
// above the floor $4, and, in the same statement and so the same
// snapshot, this read's horizon: the oldest transaction id still
// running, pg_snapshot_xmin, on a row of its own (its event columns
// NULL), with the next transaction id as this statement runs (for the
// floor of later reads, idFloor).
//
// Ids come from one sequence, taken before commit, so a transaction that
// took id 7 may commit after one that took id 8 was read: "id > newest"
// alone would miss 7 for good. Every transaction older than a read's
// horizon had ended when the read ran, so an event the read did not see
// was written by a transaction at or after the horizon: its row's xmin
// (the 32-bit transaction id that wrote it) is at or after the horizon,
// compared modulo 2^32 as PostgreSQL itself does (no running transaction
// is 2^31 behind another, or the server stops). A row rewritten since
// (the retention sweep) with an id above the floor has a new xmin and
// comes again too; the memo does not count on it (SQLite does not bring
// rewrites back either). Rows frozen 2^31 transactions ago may come
// again as well, which costs a re-read, never a miss.
//
// The xmin check cannot use an index: without the floor it looked at
// every row of the subjects (BenchmarkEventsAfter: 20 ms for a page of
// 64 subjects of 10 events each, 450 ms at 1,000 each). With it, the
// scan is the primary key's range (pseudonym, id > floor).
//
// The next transaction id is age()'s: ReadNextTransactionId, read when
// the statement first calls it, after its snapshot was taken, without
// assigning this read a transaction id. The statement must run on its
// own (the pool, not inside a transaction whose first call came earlier).
//
// One id, one horizon and one floor serve the whole page, the lowest of
// its subjects' marks: a subject with a later mark gets events it holds
// again, which the reader replaces. A statement joining per-subject
// marks (unnest, LATERAL) cost 7 ms to plan over the 16 partitions,
// against 0.6 ms to run.
const eventsAfterSQL = `SELECT NULL::bigint, NULL::text, NULL::text, NULL::timestamptz, NULL::bytea, NULL::bytea, NULL::timestamptz,
		pg_snapshot_xmin(s)::text::bigint,
		pg_snapshot_xmax(s)::text::bigint + age((pg_snapshot_xmax(s)::text::bigint % 4294967296)::text::xid)
	FROM pg_current_snapshot() s
	UNION ALL
	SELECT id, pseudonym, type, time, idem, sealed, expires, NULL, NULL FROM events
	WHERE pseudonym = ANY($1) AND id > $4 AND (id > $2 OR ($3::bigint > 0 AND
		(xmin::text::bigint - $3::bigint % 4294967296 + 4294967296) % 4294967296 < 2147483648))`

// EventsAfter implements guard.Engine.EventsAfter.
func (db *engine) EventsAfter(ctx context.Context, subjects []portrait.Pseudonym, after map[portrait.Pseudonym]portrait.EventMark) (map[portrait.Pseudonym][]portrait.StoredEvent, int64, error) {
	if len(subjects) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredEvent{}, 0, nil
	}
	from := after[subjects[0]]
	for _, ps := range subjects[1:] {
		m := after[ps]
		from.ID, from.Horizon = min(from.ID, m.ID), min(from.Horizon, m.Horizon)
	}
	var floor int64 // every event above; 0 reads from the start
	switch {
	case from.ID == 0:
		from.Horizon = 0 // every event comes anyway
	case from.Horizon <= 0:
		floor = from.ID // a mark without a horizon: only newer ids
	default:
		if f, ok := db.floor.below(from.Horizon); ok {
			floor = min(f, from.ID)
		}
	}
	rows, err := db.pool.Query(ctx, eventsAfterSQL, tables.Strings(subjects), from.ID, from.Horizon, floor)
	if err != nil {
		return nil, 0, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var evs []portrait.StoredEvent
	var horizon, next, newest int64
	for rows.Next() {
		var id *int64
		var ps *string
		var e portrait.StoredEvent
		var t, exp *time.Time
		var typ *string
		var h, nx *int64
		if err := rows.Scan(&id, &ps, &typ, &t, &e.Idem, &e.Sealed, &exp, &h, &nx); err != nil {
			return nil, 0, fmt.Errorf("read events: %w", err)
		}
		if id == nil {
			if h != nil && nx != nil {
				horizon, next = *h, *nx // the row that carries only the horizon
			}
			continue
		}
		e.ID, e.Pseudonym, e.Type, e.Time, e.Expires = *id, portrait.Pseudonym(*ps), *typ, t.UTC(), fromTS(exp)
		newest = max(newest, e.ID)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read events: %w", err)
	}
	if horizon <= 0 {
		return nil, 0, fmt.Errorf("read events: no snapshot horizon")
	}
	db.floor.add(next, newest)
	// Rows come in no order (the statement has none, and a bitmap scan
	// of a partition may interleave its subjects): grouped and put in
	// time order here.
	out := map[portrait.Pseudonym][]portrait.StoredEvent{}
	for _, e := range evs {
		out[e.Pseudonym] = append(out[e.Pseudonym], e)
	}
	for _, evs := range out {
		slices.SortFunc(evs, func(a, b portrait.StoredEvent) int { return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID)) })
	}
	return out, horizon, nil
}

// States implements guard.Engine.States: tables.DB.States in one
// snapshot.
func (db *engine) States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	return db.statesIn(ctx, pseudonyms, tables.DB.States)
}

// statesIn runs one of tables.DB's reads of governance states inside one
// repeatable-read transaction, so that its three queries (consents,
// flags, suppressions) see one snapshot.
func (db *engine) statesIn(ctx context.Context, pseudonyms []portrait.Pseudonym,
	read func(tables.DB, context.Context, []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)) (map[portrait.Pseudonym]*policy.State, error) {
	if len(pseudonyms) == 0 {
		return read(db.DB, ctx, nil) // no query
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	defer tx.Rollback(ctx)
	return read(shared(tx), ctx, pseudonyms)
}
