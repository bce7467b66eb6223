package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/tables"
)

// copyMin is the batch size from which InsertEvents sends one statement
// for the whole batch instead of one INSERT per event.
const copyMin = 32

// Generation implements guard.Tx.Generation. FOR SHARE makes a
// concurrent governance change, which updates the row, wait for this
// transaction, and makes this read wait for one in flight.
func (tx *txn) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := tx.tx.QueryRow(ctx, `SELECT n FROM generation FOR SHARE`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	tx.xid = true // a row lock takes a transaction id
	return n, nil
}

// InsertEvents implements guard.Tx.InsertEvents (the guard has checked
// every grant). Duplicates within the batch are found here. A large batch
// is one statement: COPY straight into the partitioned table when no
// event carries an idempotency key (nothing can conflict: the only other
// unique key is the identity), else one INSERT over arrays with ON
// CONFLICT DO NOTHING, which COPY cannot do. Either way ids follow the
// batch's order. The temporary table this used to copy into cost a
// catalog write, a COPY and a second scan per chunk.
func (tx *txn) InsertEvents(ctx context.Context, events []portrait.StoredEvent) ([]bool, error) {
	type key struct {
		subject portrait.Pseudonym
		idem    string
	}
	seen := make(map[key]bool)
	todo := make([]int, 0, len(events)) // events not duplicated within the batch
	keyed := 0
	for i := range events {
		e := &events[i]
		if len(e.Idem) > 0 {
			k := key{e.Pseudonym, string(e.Idem)}
			if seen[k] {
				continue
			}
			seen[k] = true
			keyed++
		}
		todo = append(todo, i)
	}
	inserted := make([]bool, len(events))
	if !tx.xid {
		// The transaction id comes before any event id, which EventsAfter's
		// floor counts on (idFloor): an INSERT takes a row's id before the
		// row's write assigns the transaction one. Ingest's transaction
		// has one already (Generation locks a row).
		if _, err := tx.tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			return nil, fmt.Errorf("insert events: take a transaction id: %w", err)
		}
		tx.xid = true
	}
	switch {
	case len(todo) < copyMin:
		b := &pgx.Batch{}
		for _, i := range todo {
			e := &events[i]
			b.Queue(`INSERT INTO events (pseudonym, type, time, idem, sealed, expires) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
				e.Pseudonym, e.Type, e.Time, blob(e.Idem), e.Sealed, ts(e.Expires))
		}
		br := tx.tx.SendBatch(ctx, b)
		for _, i := range todo {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return nil, fmt.Errorf("insert event %d of subject %s: %w", i, events[i].Pseudonym, err)
			}
			inserted[i] = tag.RowsAffected() == 1
		}
		if err := br.Close(); err != nil {
			return nil, fmt.Errorf("insert events: %w", err)
		}
		return inserted, nil

	case keyed == 0:
		row := make([]any, 6)
		n, err := tx.tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"pseudonym", "type", "time", "idem", "sealed", "expires"},
			pgx.CopyFromSlice(len(todo), func(j int) ([]any, error) {
				e := &events[todo[j]]
				row[0], row[1], row[2], row[3], row[4], row[5] = string(e.Pseudonym), e.Type, e.Time, nil, e.Sealed, ts(e.Expires)
				return row, nil
			}))
		if err != nil {
			return nil, fmt.Errorf("insert events: copy: %w", err)
		}
		if n != int64(len(todo)) {
			return nil, fmt.Errorf("insert events: copied %d of %d events", n, len(todo))
		}
		for _, i := range todo {
			inserted[i] = true
		}
		return inserted, nil
	}

	pseudonyms, types := make([]string, len(todo)), make([]string, len(todo))
	times, expires := make([]time.Time, len(todo)), make([]pgtype.Timestamptz, len(todo))
	idems, sealed := make([][]byte, len(todo)), make([][]byte, len(todo))
	for j, i := range todo {
		e := &events[i]
		pseudonyms[j], types[j], times[j], sealed[j] = string(e.Pseudonym), e.Type, e.Time, e.Sealed
		if len(e.Idem) > 0 {
			idems[j] = e.Idem
		}
		expires[j] = pgtype.Timestamptz{Time: e.Expires, Valid: !e.Expires.IsZero()}
	}
	rows, err := tx.tx.Query(ctx, `INSERT INTO events (pseudonym, type, time, idem, sealed, expires)
		SELECT p, t, tm, i, s, x FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bytea[], $5::bytea[], $6::timestamptz[])
			WITH ORDINALITY AS e(p, t, tm, i, s, x, n) ORDER BY n
		ON CONFLICT DO NOTHING RETURNING pseudonym, idem`, pseudonyms, types, times, idems, sealed, expires)
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	stored := make(map[key]bool, keyed)
	keyless := 0
	for rows.Next() {
		var p portrait.Pseudonym
		var idem []byte
		if err := rows.Scan(&p, &idem); err != nil {
			rows.Close()
			return nil, fmt.Errorf("insert events: %w", err)
		}
		if idem == nil {
			keyless++
		} else {
			stored[key{p, string(idem)}] = true
		}
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("insert events: %w", rows.Err())
	}
	for _, i := range todo {
		e := &events[i]
		if len(e.Idem) == 0 {
			inserted[i] = true
			keyless--
		} else {
			inserted[i] = stored[key{e.Pseudonym, string(e.Idem)}]
		}
	}
	if keyless != 0 {
		return nil, fmt.Errorf("insert events: %d events without an idempotency key were not stored as expected", -keyless)
	}
	return inserted, nil
}

// PutProfile implements guard.Tx.PutProfile. The grant must allow
// Collect or Correct and cover every field written.
func (tx *txn) PutProfile(ctx context.Context, pseudonym portrait.Pseudonym, values []portrait.ProfileValue) error {
	for _, v := range values {
		_, err := tx.tx.Exec(ctx, `INSERT INTO profile (pseudonym, field, sealed, source, updated, expires) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (pseudonym, field) DO UPDATE SET sealed = excluded.sealed, source = excluded.source, updated = excluded.updated, expires = excluded.expires`,
			pseudonym, v.Field, v.Sealed, v.Source, v.Updated, ts(v.Expires))
		if err != nil {
			return fmt.Errorf("put profile field %s: %w", v.Field, err)
		}
	}
	return nil
}

// DeleteProfile implements guard.Tx.DeleteProfile.
func (tx *txn) DeleteProfile(ctx context.Context, pseudonym portrait.Pseudonym, fields []string) error {
	if _, err := tx.tx.Exec(ctx, `DELETE FROM profile WHERE pseudonym = $1 AND field = ANY($2)`, pseudonym, fields); err != nil {
		return fmt.Errorf("delete profile values: %w", err)
	}
	return nil
}

// RewriteEvent implements guard.Tx.RewriteEvent.
func (tx *txn) RewriteEvent(ctx context.Context, pseudonym portrait.Pseudonym, id int64, sealed []byte, expires time.Time) error {
	var q string
	var args []any
	if sealed == nil {
		q, args = `DELETE FROM events WHERE id = $1 AND pseudonym = $2`, []any{id, pseudonym}
	} else {
		q, args = `UPDATE events SET sealed = $1, expires = $2 WHERE id = $3 AND pseudonym = $4`, []any{sealed, ts(expires), id, pseudonym}
	}
	tag, err := tx.tx.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("rewrite event %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "rewrite event %d: no such event of subject %s", id, pseudonym)
	}
	return nil
}

// PutLabels implements guard.Tx.PutLabels (the guard has checked that
// each value's grant allows Derive for its subject); the values then go in one statement over arrays, one round
// trip whatever their number, in key order. PostgreSQL refuses to upsert a row twice in
// one statement, so a repeated (subject, label) keeps only its last value,
// which is what one-by-one upserts would leave.
func (tx *txn) PutLabels(ctx context.Context, values []portrait.LabelValue) error {
	if len(values) == 0 {
		return nil
	}
	type key struct {
		subject portrait.Pseudonym
		label   string
	}
	last := make(map[key]int, len(values))
	for i, v := range values {
		last[key{v.Pseudonym, v.Label}] = i
	}
	// The kept values go in key order, the primary key's: a page's
	// subjects are consecutive, so the index's leaves are each visited
	// once, in order, as SQLite's are (sqlite/labels.go).
	order := make([]int, 0, len(last))
	for _, i := range last {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int { return tables.LabelOrder(&values[a], &values[b]) })
	n := len(order)
	subjects, labels := make([]string, 0, n), make([]string, 0, n)
	versions, sealed := make([]int32, 0, n), make([][]byte, 0, n)
	computed, expires := make([]time.Time, 0, n), make([]*time.Time, 0, n)
	for _, i := range order {
		v := values[i]
		subjects, labels = append(subjects, string(v.Pseudonym)), append(labels, v.Label)
		versions, sealed = append(versions, int32(v.Version)), append(sealed, v.Sealed)
		computed = append(computed, v.Computed)
		var exp *time.Time
		if !v.Expires.IsZero() {
			t := v.Expires
			exp = &t
		}
		expires = append(expires, exp)
	}
	_, err := tx.tx.Exec(ctx, `INSERT INTO labels (pseudonym, label, version, sealed, computed, expires)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bytea[], $5::timestamptz[], $6::timestamptz[])
		ON CONFLICT (pseudonym, label) DO UPDATE SET version = excluded.version, sealed = excluded.sealed, computed = excluded.computed, expires = excluded.expires`,
		subjects, labels, versions, sealed, computed, expires)
	if err != nil {
		return fmt.Errorf("put %d labels: %w", n, err)
	}
	return nil
}

// DeleteLabels implements guard.Tx.DeleteLabels. The deletion is sent
// with the transaction's next statement or its commit, together with
// every other deletion queued by then (writeTx).
func (tx *txn) DeleteLabels(ctx context.Context, pseudonym portrait.Pseudonym, labels []string) error {
	tx.tx.deleteLabels(pseudonym, labels)
	return nil
}

// LogSize implements guard.Tx.LogSize. It locks the log head row until
// the transaction ends, which serialises appenders on every node. The
// row is read once per transaction: it cannot move under the lock but
// through this transaction's own AppendLog, which advances the size kept.
// Other nodes move it between transactions, so nothing is kept across
// them.
func (tx *txn) LogSize(ctx context.Context) (int64, error) {
	if !tx.known {
		if err := tx.tx.QueryRow(ctx, `SELECT size FROM log_head FOR UPDATE`).Scan(&tx.head); err != nil {
			return 0, fmt.Errorf("lock log head: %w", err)
		}
		tx.known, tx.xid = true, true
	}
	return tx.head, nil
}

// LogHashes implements guard.Tx.LogHashes; it sees entries appended
// earlier in the transaction.
func (tx *txn) LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	return shared(tx.tx).LogHashes(ctx, indexes)
}

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
	_, err = tx.tx.CopyFrom(ctx, pgx.Identifier{"log_entries"}, []string{"idx", "kind", "data", "hashes"},
		pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
			return []any{entries[i].Index, entries[i].Kind, entries[i].Data, entries[i].Hashes}, nil
		}))
	if err != nil {
		return fmt.Errorf("append log entries %d..%d: %w", size, size+int64(len(entries))-1, err)
	}
	if _, err := tx.tx.Exec(ctx, `UPDATE log_head SET size = $1`, size+int64(len(entries))); err != nil {
		return fmt.Errorf("append log: advance head: %w", err)
	}
	tx.head = size + int64(len(entries))
	return nil
}
