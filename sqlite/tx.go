package sqlite

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/tables"
)

// writeQueries are the write path's statements, whose text never varies:
// Open prepares each once on the write connection and a Tx runs it through
// stmt, so SQLite parses none of them again.
var writeQueries = append([]string{
	generationSQL, reserveEventIDs, insertRunSQL, putProfileSQL, deleteProfileSQL, deleteLabelSQL, deleteLabelsSQL,
	logSizeSQL, logHashesSQL, appendLogSQL, advanceLogSQL,
}, sharedWrites()...)

// sharedWrites are tables.Tx's statements in SQLite's dialect.
func sharedWrites() []string {
	out := make([]string, len(tables.WriteSQL))
	for i, q := range tables.WriteSQL {
		out[i] = lite.SQL(q)
	}
	return out
}

// stmt returns query's statement prepared at Open, bound to the
// transaction: database/sql finds it already prepared on the transaction's
// connection, the single write connection, and reuses it. A query missing
// from writeQueries is an error, so that a forgotten one fails the tests
// instead of being parsed on every call.
func (tx *txn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	st := tx.db.writes[query]
	if st == nil {
		return nil, fmt.Errorf("sqlite: statement not prepared at Open (add it to writeQueries): %.60s", query)
	}
	return tx.tx.StmtContext(ctx, st), nil
}

// exec runs query's prepared statement once in the transaction.
func (tx *txn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := tx.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// prepared is a querier over the transaction for the helpers it shares
// with the read side (tables.DB's LogSize, LogHashes): a query prepared at Open runs
// from its statement, any other is parsed as before.
type prepared struct{ tx *txn }

func (p prepared) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if p.tx.db.writes[query] == nil {
		return p.tx.tx.ExecContext(ctx, query, args...)
	}
	return p.tx.exec(ctx, query, args...)
}

func (p prepared) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st := p.tx.db.writes[query]
	if st == nil {
		return p.tx.tx.QueryContext(ctx, query, args...)
	}
	return p.tx.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

func (p prepared) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st := p.tx.db.writes[query]
	if st == nil {
		return p.tx.tx.QueryRowContext(ctx, query, args...)
	}
	return p.tx.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// The texts of the statements tables.DB's LogSize and LogHashes run in
// this dialect; they must match there for the transaction to use the
// prepared statements.
var (
	logSizeSQL   = lite.SQL(`SELECT size FROM log_head`)
	logHashesSQL = lite.SQL(tables.LogHashesSQL)
)

const generationSQL = `SELECT n FROM generation`

// Generation implements guard.Tx.Generation. The IMMEDIATE transaction
// already excludes every other writer, governance changes included.
func (tx *txn) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := (prepared{tx}).QueryRowContext(ctx, generationSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return n, nil
}

// InsertEvents implements guard.Tx.InsertEvents (the guard has checked
// every grant).
//
// The batch is one sorted run (migration 0060): its events are written
// once, in (pseudonym, id) order, into events_new under a run number that
// is the first id reserved for the batch, so every row lands at the right
// edge of the table and a subject's events of the run are contiguous; one
// row of event_runs lists the run. The engine's mover clusters runs into
// the events table later (move.go).
func (tx *txn) InsertEvents(ctx context.Context, events []portrait.StoredEvent) ([]bool, error) {
	inserted := make([]bool, len(events))
	if len(events) == 0 {
		return inserted, nil
	}
	// Ids come from event_ids, not from either table, so that an id stays
	// the same when the event moves: one statement reserves the batch's
	// ids, and the transaction's write lock keeps them from any other
	// writer. They are given in arrival order; a duplicate idempotency key
	// leaves its id unused.
	var next int64
	if err := (prepared{tx}).QueryRowContext(ctx, reserveEventIDs, len(events)).Scan(&next); err != nil {
		return nil, fmt.Errorf("insert %d events: reserve ids: %w", len(events), err)
	}
	first := next - int64(len(events))
	run := first
	// A batch holds few subjects and fewer types, many times over: each
	// key (a decoded pseudonym) and each type is made into an argument
	// once, and so is the run, instead of two to three allocations per
	// event.
	// The slices and the map are the writer's scratch (rawInserts),
	// kept from one batch to the next: only the write transaction's
	// leader runs here.
	w := &tx.db.eventWrites
	keys, order, memo := w.scratch(len(events))
	defer w.clearScratch()
	for i := range events {
		ps := string(events[i].Pseudonym)
		k, ok := memo[ps]
		if !ok {
			k = eventKey(events[i].Pseudonym)
			memo[ps] = k
		}
		keys[i], order[i] = k, i
	}
	clear(memo)
	runArg := any(run)
	// A batch is most often of one type (a client's views, a tracker's
	// clicks): then the type is bound once per statement, not per row.
	oneType := true
	for i := range events {
		if events[i].Type != events[0].Type {
			oneType = false
			break
		}
	}
	typeArg := func(t string) any {
		a, ok := memo[t]
		if !ok {
			a = t
			memo[t] = a
		}
		return a
	}
	// SQLite's order of the key column: every text before every blob,
	// each by its bytes; then the id, which is arrival order.
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(compareKeys(keys[a], keys[b]), cmp.Compare(a, b))
	})
	// Events without an idempotency key cannot conflict, so they go in
	// multi-row statements: per-statement overhead, not SQLite, dominates
	// one-row inserts. OR IGNORE spares SQLite the statement journal a
	// statement that may abort keeps; nothing can conflict (the ids are
	// fresh and no row has a key), so every row must be written, and a
	// short count is an error that rolls the transaction back. Events
	// with a key go in multi-row statements too, after them, and RETURNING
	// names the ids written: an id missing is a duplicate (of a stored
	// key, or of an earlier event of the batch, which is written first).
	// The rows go to the driver directly (rawInserts), inside the
	// transaction: its connection is the group's.
	err := tx.g.conn.Raw(func(dc any) error {
		for _, keyed := range []bool{false, true} {
			shape := rowShape{keyed: keyed, oneType: oneType}
			if oneType {
				w.begin(runArg, events[0].Type)
			} else {
				w.begin(runArg)
			}
			for _, i := range order {
				e := &events[i]
				if (e.Idem != nil) != keyed {
					continue
				}
				var typ any
				if !oneType {
					typ = typeArg(e.Type)
				}
				w.add(shape, first+int64(i), keys[i], typ, e.Time.UnixNano(), e.Idem, e.Sealed, nanos(e.Expires))
				if w.rows == eventChunk {
					if err := w.flush(ctx, &tx.db.bulk, dc, shape, first, inserted); err != nil {
						return err
					}
				}
				if !keyed {
					inserted[i] = true
				}
			}
			if err := w.flush(ctx, &tx.db.bulk, dc, shape, first, inserted); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	appended := 0
	var expires sql.NullInt64
	for i, ok := range inserted {
		if ok {
			appended++
			earliest(&expires, nanos(events[i].Expires))
		}
	}
	if appended > 0 {
		if _, err := tx.exec(ctx, insertRunSQL, run, next-1, appended, expires); err != nil {
			return nil, fmt.Errorf("insert %d events: list run %d: %w", appended, run, err)
		}
	}
	tx.db.mover.appended(appended)
	return inserted, nil
}

// earliest lowers min to exp, an expiry from nanos (nil: none).
func earliest(min *sql.NullInt64, exp any) {
	if x, ok := exp.(int64); ok && (!min.Valid || x < min.Int64) {
		*min = sql.NullInt64{Int64: x, Valid: true}
	}
}

// compareKeys orders two eventKey values as SQLite orders the column:
// text before blob, each by its bytes.
func compareKeys(a, b any) int {
	as, aText := a.(string)
	bs, bText := b.(string)
	switch {
	case aText && bText:
		return strings.Compare(as, bs)
	case aText:
		return -1
	case bText:
		return 1
	}
	return bytes.Compare(a.([]byte), b.([]byte))
}

// reserveEventIDs advances the event id sequence by its parameter and
// returns the new next id: the reserved ids are the ones just below it.
const reserveEventIDs = `UPDATE event_ids SET next = next + ? RETURNING next`

// insertRunSQL lists a run written by InsertEvents.
const insertRunSQL = `INSERT INTO event_runs (run, last, n, expires) VALUES (?, ?, ?, ?)`

// eventChunk is how many events one multi-row INSERT carries: 1 + 7 ×
// 64 parameters stay far below SQLite's limit of 32,766.
const eventChunk = 64

func insertEventsSQL(n int, shape rowShape) string {
	return insertRows(`INSERT OR IGNORE INTO events_new (run, id, pseudonym, type, time, idem, sealed, expires) VALUES `, n, shape, "")
}

// insertIdemSQL writes n events with an idempotency key, each unless
// its subject already has the key, in either table, and returns the ids
// written: the NOT EXISTS looks in the clustered table (through its
// unique (pseudonym, idem) index), the partial unique index of events_new
// refuses a second copy in any run, an earlier row of the same statement
// included (SQLite inserts the rows in order). The mover moves an event
// in the same transaction that deletes it from its run, so the two checks
// together see every stored key.
func insertIdemSQL(n int, shape rowShape) string {
	return insertRows(`INSERT INTO events_new (run, id, pseudonym, type, time, idem, sealed, expires)
	SELECT column1, column2, column3, column4, column5, column6, column7, column8 FROM (VALUES `, n, shape,
		`) AS v WHERE NOT EXISTS (SELECT 1 FROM events WHERE pseudonym = v.column3 AND idem = v.column6)
	ON CONFLICT DO NOTHING RETURNING id`)
}

const deleteProfileSQL = `DELETE FROM profile WHERE pseudonym = ? AND field = ?`

// DeleteProfile implements guard.Tx.DeleteProfile.
func (tx *txn) DeleteProfile(ctx context.Context, pseudonym portrait.Pseudonym, fields []string) error {
	for _, f := range fields {
		if _, err := tx.exec(ctx, deleteProfileSQL, pseudonym, f); err != nil {
			return fmt.Errorf("delete profile field %s: %w", f, err)
		}
	}
	return nil
}

const putProfileSQL = `INSERT INTO profile (pseudonym, field, sealed, source, updated, expires) VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (pseudonym, field) DO UPDATE SET sealed = excluded.sealed, source = excluded.source, updated = excluded.updated, expires = excluded.expires`

// PutProfile implements guard.Tx.PutProfile. The grant must allow
// Collect or Correct and cover every field written.
func (tx *txn) PutProfile(ctx context.Context, pseudonym portrait.Pseudonym, values []portrait.ProfileValue) error {
	put, err := tx.stmt(ctx, putProfileSQL)
	if err != nil {
		return fmt.Errorf("put profile: %w", err)
	}
	for _, v := range values {
		if _, err := put.ExecContext(ctx, pseudonym, v.Field, v.Sealed, v.Source, v.Updated.UnixNano(), nanos(v.Expires)); err != nil {
			return fmt.Errorf("put profile field %s: %w", v.Field, err)
		}
	}
	return nil
}

// RewriteEvent implements guard.Tx.RewriteEvent. The event is in the
// clustered table or, not yet moved, in its run: the greatest run not
// above its id (runs never overlap). The write lock keeps the mover out
// until the transaction ends. A rewritten expiry lowers its run's
// earliest expiry, so that the sweep still finds it; a clustered event's
// subject has its earliest expiry recomputed (expiry.go).
func (tx *txn) RewriteEvent(ctx context.Context, pseudonym portrait.Pseudonym, id int64, sealed []byte, expires time.Time) error {
	key := eventKey(pseudonym)
	for _, where := range []string{`events WHERE id = ?1 AND pseudonym = ?2`, `events_new WHERE run = ` + runOfSQL + ` AND pseudonym = ?2 AND id = ?1`} {
		q, args := `DELETE FROM `+where, []any{id, key}
		if sealed != nil {
			q, args = `UPDATE `+strings.Replace(where, " WHERE", " SET sealed = ?3, expires = ?4 WHERE", 1), []any{id, key, sealed, nanos(expires)}
		}
		res, err := tx.tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("rewrite event %d: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("rewrite event %d: %w", id, err)
		} else if n == 0 {
			continue
		}
		if strings.HasPrefix(where, "events WHERE") {
			// The subject's earliest clustered expiry may have moved
			// either way: recomputed when the member's function returns.
			tx.touchExpiry(key)
		}
		if sealed != nil && !expires.IsZero() && strings.HasPrefix(where, "events_new") {
			if _, err := tx.tx.ExecContext(ctx, `UPDATE event_runs SET expires = min(coalesce(expires, ?2), ?2) WHERE run = `+runOfSQL, id, nanos(expires)); err != nil {
				return fmt.Errorf("rewrite event %d: %w", id, err)
			}
		}
		return nil
	}
	return portrait.Errorf(portrait.ENOTFOUND, "rewrite event %d: no such event of subject %s", id, pseudonym)
}

// runOfSQL is the run that holds event id ?1 if it is not yet moved.
const runOfSQL = `(SELECT max(run) FROM event_runs WHERE run <= ?1)`

const (
	deleteLabelsSQL = `DELETE FROM labels WHERE pseudonym = ? AND label IN (SELECT value FROM json_each(?))`
	deleteLabelSQL  = `DELETE FROM labels WHERE pseudonym = ? AND label = ?`
)

// DeleteLabels implements guard.Tx.DeleteLabels. The common case, no
// label to delete, costs nothing; a short list is bound directly rather
// than decoded from JSON.
func (tx *txn) DeleteLabels(ctx context.Context, pseudonym portrait.Pseudonym, labels []string) error {
	if len(labels) == 0 {
		return nil
	}
	q, args := deleteLabelsSQL, []any{pseudonym, list(labels)}
	if len(labels) == 1 {
		q, args = deleteLabelSQL, []any{pseudonym, labels[0]}
	}
	if _, err := tx.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("delete labels of %s: %w", pseudonym, err)
	}
	return nil
}

// LogSize implements guard.Tx.LogSize. The transaction began
// IMMEDIATE, so it already holds the database's write lock: no other
// writer can move the head until it ends. The head is read from its row
// once per transaction and then kept by the commit group, which every
// AppendLog of the transaction advances (a rolled-back member restores
// it): a group of decisions reads log_head once, not once per decision.
func (tx *txn) LogSize(ctx context.Context) (int64, error) {
	if g := tx.g; !g.known {
		n, err := shared(prepared{tx}).LogSize(ctx)
		if err != nil {
			return 0, err
		}
		g.head, g.known = n, true
		g.keptFrontier()
	}
	return tx.g.head, nil
}

// LogHashes implements guard.Tx.LogHashes; it sees entries appended
// earlier in the transaction. The hashes an append reads come from the
// frontier kept in memory (frontier.go); any other is read from the store.
func (tx *txn) LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	if hs, ok := tx.frontierHashes(ctx, indexes); ok {
		return hs, nil
	}
	return shared(prepared{tx}).LogHashes(ctx, indexes)
}

const (
	appendLogSQL  = `INSERT INTO log_entries (idx, kind, data, hashes) VALUES (?, ?, ?, ?)`
	advanceLogSQL = `UPDATE log_head SET size = ?`
)

// AppendLog implements guard.Tx.AppendLog. Entries must continue the
// log exactly where it ends.
func (tx *txn) AppendLog(ctx context.Context, entries []portrait.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	size, err := tx.LogSize(ctx)
	if err != nil {
		return err
	}
	if err := portrait.CheckAppend(size, entries); err != nil {
		return err
	}
	tx.readFrontier(ctx)
	stmt, err := tx.stmt(ctx, appendLogSQL)
	if err != nil {
		return fmt.Errorf("append log: %w", err)
	}
	for _, e := range entries {
		if _, err := stmt.ExecContext(ctx, e.Index, e.Kind, e.Data, e.Hashes); err != nil {
			return fmt.Errorf("append log entry %d: %w", e.Index, err)
		}
	}
	if _, err := tx.exec(ctx, advanceLogSQL, size+int64(len(entries))); err != nil {
		return fmt.Errorf("append log: advance head: %w", err)
	}
	tx.g.head = size + int64(len(entries))
	if tx.g.front != nil {
		tx.g.front = tx.g.front.Next(entries)
	}
	return nil
}
