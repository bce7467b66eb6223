package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tables"
)

// Generation implements guard.Engine.Generation.
func (db *engine) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT n FROM generation`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return n, nil
}

// Subjects implements guard.Engine.Subjects.
func (db *engine) Subjects(ctx context.Context, pseudonyms []string) (map[string]portrait.Subject, error) {
	rows, err := db.pool.Query(ctx, `SELECT pseudonym, wrapped_key, sealed_id, created FROM subjects WHERE pseudonym = ANY($1)`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read subjects: %w", err)
	}
	defer rows.Close()
	out := make(map[string]portrait.Subject, len(pseudonyms))
	for rows.Next() {
		var s portrait.Subject
		if err := rows.Scan(&s.Pseudonym, &s.WrappedKey, &s.SealedID, &s.Created); err != nil {
			return nil, fmt.Errorf("read subjects: %w", err)
		}
		s.Created = s.Created.UTC()
		out[s.Pseudonym] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read subjects: %w", err)
	}
	return out, nil
}

// States implements guard.Engine.States. Three queries serve any number
// of pseudonyms, inside one repeatable-read transaction so they see one
// snapshot.
func (db *engine) States(ctx context.Context, pseudonyms []string) (map[string]*policy.State, error) {
	out := make(map[string]*policy.State, len(pseudonyms))
	for _, p := range pseudonyms {
		out[p] = &policy.State{Subject: p, Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	}
	if len(pseudonyms) == 0 {
		return out, nil
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	defer tx.Rollback(ctx)
	return readStates(ctx, tx, pseudonyms, out)
}

// States implements guard.Tx.States: the same reads inside the write
// transaction.
func (tx *txn) States(ctx context.Context, pseudonyms []string) (map[string]*policy.State, error) {
	out := make(map[string]*policy.State, len(pseudonyms))
	for _, p := range pseudonyms {
		out[p] = &policy.State{Subject: p, Consents: map[string]policy.Consent{}, Personalization: 100, Suppressed: map[string]bool{}}
	}
	if len(pseudonyms) == 0 {
		return out, nil
	}
	return readStates(ctx, tx.tx, pseudonyms, out)
}

func readStates(ctx context.Context, tx pgx.Tx, pseudonyms []string, out map[string]*policy.State) (map[string]*policy.State, error) {
	rows, err := tx.Query(ctx, `SELECT pseudonym, minor, restricted, object_profiling, object_marketing, personalization
		FROM subjects WHERE pseudonym = ANY($1)`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	for rows.Next() {
		var p string
		var f portrait.Flags
		if err := rows.Scan(&p, &f.Minor, &f.Restricted, &f.ObjectProfiling, &f.ObjectMarketing, &f.Personalization); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: %w", err)
		}
		st := out[p]
		st.Minor, st.Restricted, st.ObjectProfiling, st.ObjectMarketing, st.Personalization =
			f.Minor, f.Restricted, f.ObjectProfiling, f.ObjectMarketing, f.Personalization
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("read states: %w", rows.Err())
	}

	rows, err = tx.Query(ctx, `SELECT DISTINCT ON (pseudonym, purpose) pseudonym, purpose, status, notice_version, guardian, at
		FROM consents WHERE pseudonym = ANY($1) ORDER BY pseudonym, purpose, seq DESC`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	for rows.Next() {
		var p, purpose, status string
		var c policy.Consent
		if err := rows.Scan(&p, &purpose, &status, &c.NoticeVersion, &c.Guardian, &c.At); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: %w", err)
		}
		if c.Status, err = policy.ParseStatus(status); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: consent of %s to %s: %w", p, purpose, err)
		}
		c.At = c.At.UTC()
		out[p].Consents[purpose] = c
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("read states: %w", rows.Err())
	}

	rows, err = tx.Query(ctx, `SELECT pseudonym, label, deleted FROM suppressions WHERE pseudonym = ANY($1)`, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("read states: %w", err)
	}
	for rows.Next() {
		var p, label string
		var deleted bool
		if err := rows.Scan(&p, &label, &deleted); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read states: %w", err)
		}
		out[p].Suppressed[label] = deleted
	}
	if rows.Close(); rows.Err() != nil {
		return nil, fmt.Errorf("read states: %w", rows.Err())
	}
	return out, nil
}

// Suspensions implements guard.Engine.Suspensions.
func (db *engine) Suspensions(ctx context.Context) ([]policy.Suspension, error) {
	rows, err := db.pool.Query(ctx, `SELECT kind, id, reason, suspended_by, at FROM suspensions ORDER BY kind, id`)
	if err != nil {
		return nil, fmt.Errorf("read suspensions: %w", err)
	}
	defer rows.Close()
	var out []policy.Suspension
	for rows.Next() {
		var s policy.Suspension
		if err := rows.Scan(&s.Kind, &s.ID, &s.Reason, &s.By, &s.At); err != nil {
			return nil, fmt.Errorf("read suspensions: %w", err)
		}
		s.At = s.At.UTC()
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read suspensions: %w", err)
	}
	return out, nil
}

// ConsentHistory implements guard.Engine.ConsentHistory.
func (db *engine) ConsentHistory(ctx context.Context, pseudonym string) ([]portrait.ConsentRecord, error) {
	rows, err := db.pool.Query(ctx, `SELECT seq, purpose, status, notice_version, channel, user_agent, ua_sealed, ip, guardian, categories, at, consent_string, string_type
		FROM consents WHERE pseudonym = $1 ORDER BY seq`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read consent history: %w", err)
	}
	defer rows.Close()
	var out []portrait.ConsentRecord
	for rows.Next() {
		r := portrait.ConsentRecord{Subject: pseudonym}
		var status string
		if err := rows.Scan(&r.Seq, &r.Purpose, &status, &r.NoticeVersion, &r.Channel, &r.UserAgent, &r.SealedUA, &r.IP, &r.Guardian, &r.Categories, &r.At, &r.ConsentString, &r.StringType); err != nil {
			return nil, fmt.Errorf("read consent history: %w", err)
		}
		if r.Status, err = policy.ParseStatus(status); err != nil {
			return nil, fmt.Errorf("read consent history: record %d: %w", r.Seq, err)
		}
		if len(r.Categories) == 0 {
			r.Categories = nil
		}
		r.At = r.At.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read consent history: %w", err)
	}
	return out, nil
}

const eventColumns = `id, pseudonym, type, time, idem, sealed, expires`

func scanEvents(rows pgx.Rows) ([]portrait.StoredEvent, error) {
	defer rows.Close()
	var out []portrait.StoredEvent
	for rows.Next() {
		var e portrait.StoredEvent
		var exp *time.Time
		if err := rows.Scan(&e.ID, &e.Subject, &e.Type, &e.Time, &e.Idem, &e.Sealed, &exp); err != nil {
			return nil, err
		}
		e.Time, e.Expires = e.Time.UTC(), fromTS(exp)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Events implements guard.Engine.Events.
func (db *engine) Events(ctx context.Context, pseudonym string, since time.Time) ([]portrait.StoredEvent, error) {
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

// ExpiredProfile implements guard.Engine.ExpiredProfile.
func (db *engine) ExpiredProfile(ctx context.Context, now time.Time, limit int) ([]portrait.FieldRef, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "expired profile values: limit %d must be positive", limit)
	}
	rows, err := db.pool.Query(ctx, `SELECT pseudonym, field FROM profile WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires, pseudonym, field LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("read expired profile values: %w", err)
	}
	defer rows.Close()
	var out []portrait.FieldRef
	for rows.Next() {
		var r portrait.FieldRef
		if err := rows.Scan(&r.Subject, &r.Field); err != nil {
			return nil, fmt.Errorf("read expired profile values: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Profile implements guard.Engine.Profile: every stored field.
func (db *engine) Profile(ctx context.Context, pseudonym string) ([]portrait.ProfileValue, error) {
	rows, err := db.pool.Query(ctx, `SELECT field, sealed, source, updated, expires FROM profile WHERE pseudonym = $1 ORDER BY field`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	defer rows.Close()
	var out []portrait.ProfileValue
	for rows.Next() {
		var v portrait.ProfileValue
		var exp *time.Time
		if err := rows.Scan(&v.Field, &v.Sealed, &v.Source, &v.Updated, &exp); err != nil {
			return nil, fmt.Errorf("read profile: %w", err)
		}
		v.Updated, v.Expires = v.Updated.UTC(), fromTS(exp)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return out, nil
}

// Labels implements guard.Engine.Labels.
func (db *engine) Labels(ctx context.Context, pseudonym string) ([]portrait.LabelValue, error) {
	rows, err := db.pool.Query(ctx, `SELECT label, version, sealed, computed, expires FROM labels WHERE pseudonym = $1 ORDER BY label`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	defer rows.Close()
	var out []portrait.LabelValue
	for rows.Next() {
		v := portrait.LabelValue{Subject: pseudonym}
		var exp *time.Time
		if err := rows.Scan(&v.Label, &v.Version, &v.Sealed, &v.Computed, &exp); err != nil {
			return nil, fmt.Errorf("read labels: %w", err)
		}
		v.Computed, v.Expires = v.Computed.UTC(), fromTS(exp)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return out, nil
}

// LogSize implements guard.Engine.LogSize. It does not lock; only a
// transaction's LogSize does.
func (db *engine) LogSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.pool.QueryRow(ctx, `SELECT size FROM log_head`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read log size: %w", err)
	}
	return n, nil
}

// LogHashes implements guard.Engine.LogHashes.
func (db *engine) LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	return logHashes(ctx, db.pool, indexes)
}

// LogEntries implements guard.Engine.LogEntries: entries from (inclusive)
// to to (exclusive).
func (db *engine) LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	rows, err := db.pool.Query(ctx, `SELECT idx, kind, data, hashes FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read log entries: %w", err)
	}
	defer rows.Close()
	out := make([]portrait.LogEntry, 0, to-from)
	for rows.Next() {
		var e portrait.LogEntry
		if err := rows.Scan(&e.Index, &e.Kind, &e.Data, &e.Hashes); err != nil {
			return nil, fmt.Errorf("read log entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log entries: %w", err)
	}
	if int64(len(out)) != to-from {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "log entries [%d, %d): the log holds only %d of them", from, to, len(out))
	}
	return out, nil
}

// LogEntriesOfKind implements guard.Engine.LogEntriesOfKind.
func (db *engine) LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	rows, err := db.pool.Query(ctx, `SELECT idx, kind, data, hashes FROM log_entries
		WHERE kind = ANY($1) AND idx >= $2 AND idx < $3 ORDER BY idx`, kinds, from, to)
	if err != nil {
		return nil, fmt.Errorf("read log entries by kind: %w", err)
	}
	defer rows.Close()
	var out []portrait.LogEntry
	for rows.Next() {
		var e portrait.LogEntry
		if err := rows.Scan(&e.Index, &e.Kind, &e.Data, &e.Hashes); err != nil {
			return nil, fmt.Errorf("read log entries by kind: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Checkpoint implements guard.Engine.Checkpoint: the newest signed note.
func (db *engine) Checkpoint(ctx context.Context) ([]byte, error) {
	var note []byte
	err := db.pool.QueryRow(ctx, `SELECT note FROM checkpoints ORDER BY id DESC LIMIT 1`).Scan(&note)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "no checkpoint has been saved yet")
	} else if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	return note, nil
}

// logHashes reads the stored hashes at indexes with one query over the
// entries that produced them.
func logHashes(ctx context.Context, q querier, indexes []int64) ([][32]byte, error) {
	records, err := audit.HashRecords(indexes)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT idx, hashes FROM log_entries WHERE idx = ANY($1)`, records)
	if err != nil {
		return nil, fmt.Errorf("read log hashes: %w", err)
	}
	defer rows.Close()
	byRecord := make(map[int64][]byte, len(records))
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, fmt.Errorf("read log hashes: %w", err)
		}
		byRecord[idx] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log hashes: %w", err)
	}
	return audit.PickHashes(indexes, byRecord)
}

// EventsFor implements guard.Engine.EventsFor.
func (db *engine) EventsFor(ctx context.Context, subjects []string, since time.Time) (map[string][]portrait.StoredEvent, error) {
	if len(subjects) == 0 {
		return map[string][]portrait.StoredEvent{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE pseudonym = ANY($1) AND ($2::timestamptz IS NULL OR time >= $2) ORDER BY pseudonym, time, id`, subjects, ts(since))
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return tables.BySubject(evs, func(e *portrait.StoredEvent) string { return e.Subject }), nil
}

// ProfilesFor implements guard.Engine.ProfilesFor.
func (db *engine) ProfilesFor(ctx context.Context, subjects []string) (map[string][]portrait.ProfileValue, error) {
	if len(subjects) == 0 {
		return map[string][]portrait.ProfileValue{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT pseudonym, field, sealed, source, updated, expires FROM profile
		WHERE pseudonym = ANY($1) ORDER BY pseudonym, field`, subjects)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	defer rows.Close()
	out := map[string][]portrait.ProfileValue{}
	for rows.Next() {
		var p string
		var v portrait.ProfileValue
		var exp *time.Time
		if err := rows.Scan(&p, &v.Field, &v.Sealed, &v.Source, &v.Updated, &exp); err != nil {
			return nil, fmt.Errorf("read profile: %w", err)
		}
		v.Updated, v.Expires = v.Updated.UTC(), fromTS(exp)
		out[p] = append(out[p], v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return out, nil
}

// LabelsFor implements guard.Engine.LabelsFor.
func (db *engine) LabelsFor(ctx context.Context, subjects []string) (map[string][]portrait.LabelValue, error) {
	if len(subjects) == 0 {
		return map[string][]portrait.LabelValue{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT pseudonym, label, version, sealed, computed, expires FROM labels
		WHERE pseudonym = ANY($1) ORDER BY pseudonym, label`, subjects)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	defer rows.Close()
	var lvs []portrait.LabelValue
	for rows.Next() {
		var v portrait.LabelValue
		var exp *time.Time
		if err := rows.Scan(&v.Subject, &v.Label, &v.Version, &v.Sealed, &v.Computed, &exp); err != nil {
			return nil, fmt.Errorf("read labels: %w", err)
		}
		v.Computed, v.Expires = v.Computed.UTC(), fromTS(exp)
		lvs = append(lvs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return tables.BySubject(lvs, func(v *portrait.LabelValue) string { return v.Subject }), nil
}

// DecisionsFor implements guard.Engine.DecisionsFor.
func (db *engine) DecisionsFor(ctx context.Context, subjects []string) (map[string][]portrait.DecisionRecord, error) {
	if len(subjects) == 0 {
		return map[string][]portrait.DecisionRecord{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT `+decisionColumns+`, sealed FROM decisions
		WHERE pseudonym = ANY($1) ORDER BY pseudonym, created, id`, subjects)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	defer rows.Close()
	var ds []portrait.DecisionRecord
	for rows.Next() {
		var sealed []byte
		d, err := scanDecision(rows, &sealed)
		if err != nil {
			return nil, fmt.Errorf("read decisions: %w", err)
		}
		d.Sealed = sealed
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return tables.BySubject(ds, func(d *portrait.DecisionRecord) string { return d.Subject }), nil
}

// ProtectedFor implements guard.Engine.ProtectedFor.
func (db *engine) ProtectedFor(ctx context.Context, subjects []string) (map[string][]portrait.ProtectedValue, error) {
	if len(subjects) == 0 {
		return map[string][]portrait.ProtectedValue{}, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT pseudonym, attribute, sealed FROM protected
		WHERE pseudonym = ANY($1) ORDER BY pseudonym, attribute`, subjects)
	if err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	defer rows.Close()
	var vs []portrait.ProtectedValue
	for rows.Next() {
		var v portrait.ProtectedValue
		if err := rows.Scan(&v.Subject, &v.Attribute, &v.Sealed); err != nil {
			return nil, fmt.Errorf("read protected attributes: %w", err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	return tables.BySubject(vs, func(v *portrait.ProtectedValue) string { return v.Subject }), nil
}
