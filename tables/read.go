package tables

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/policy"
)

// Generation implements guard.Engine.Generation.
func (db DB) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := db.queryRow(ctx, `SELECT n FROM generation`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return n, nil
}

// Ping implements guard.Engine.Ping with the generation's read, which
// reads a page of the store (a bare SELECT 1 would not touch the file on
// SQLite); an engine that keeps the generation in memory still pings the
// store here, since Ping is DB's and not the engine's.
func (db DB) Ping(ctx context.Context) error {
	_, err := db.Generation(ctx)
	return err
}

// subjectColumns are a subjects row as scanSubject reads it.
const subjectColumns = `pseudonym, wrapped_key, sealed_id, created`

func scanSubject(r Rows) (s portrait.SubjectKey, err error) {
	return s, r.Scan(&s.Pseudonym, &s.WrappedKey, &s.SealedID, Time(&s.Created))
}

// Subjects implements guard.Engine.Subjects.
func (db DB) Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error) {
	rows, err := db.query(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE pseudonym = ANY(?)`, db.D.List(Strings(pseudonyms)))
	if err != nil {
		return nil, fmt.Errorf("read subjects: %w", err)
	}
	ss, err := collect(rows, scanSubject)
	if err != nil {
		return nil, fmt.Errorf("read subjects: %w", err)
	}
	out := make(map[portrait.Pseudonym]portrait.SubjectKey, len(pseudonyms))
	for _, s := range ss {
		out[s.Pseudonym] = s
	}
	return out, nil
}

// Suspensions implements guard.Engine.Suspensions.
func (db DB) Suspensions(ctx context.Context) ([]policy.Suspension, error) {
	rows, err := db.query(ctx, `SELECT kind, id, reason, suspended_by, at FROM suspensions ORDER BY kind, id`)
	if err != nil {
		return nil, fmt.Errorf("read suspensions: %w", err)
	}
	out, err := collect(rows, func(r Rows) (s policy.Suspension, err error) {
		return s, r.Scan(&s.Kind, &s.ID, &s.Reason, &s.By, Time(&s.At))
	})
	if err != nil {
		return nil, fmt.Errorf("read suspensions: %w", err)
	}
	return out, nil
}

// ConsentHistory implements guard.Engine.ConsentHistory.
func (db DB) ConsentHistory(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.ConsentRecord, error) {
	rows, err := db.query(ctx, `SELECT seq, purpose, status, notice_version, channel, user_agent, ua_sealed, ip, guardian, categories, at, consent_string, string_type
		FROM consents WHERE pseudonym = ? ORDER BY seq`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read consent history: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (portrait.ConsentRecord, error) {
		r := portrait.ConsentRecord{Pseudonym: pseudonym}
		var status string
		if err := rows.Scan(&r.Seq, &r.Purpose, &status, &r.NoticeVersion, &r.Channel, &r.UserAgent, &r.SealedUA, &r.IP, &r.Guardian,
			db.D.StringsDest(&r.Categories), Time(&r.At), &r.ConsentString, &r.StringType); err != nil {
			return r, err
		}
		var err error
		if r.Status, err = policy.ParseStatus(status); err != nil {
			return r, fmt.Errorf("record %d: %w", r.Seq, err)
		}
		if len(r.Categories) == 0 {
			r.Categories = nil
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read consent history: %w", err)
	}
	return out, nil
}

// ExpiredProfile implements guard.Engine.ExpiredProfile.
func (db DB) ExpiredProfile(ctx context.Context, now time.Time, limit int) ([]portrait.FieldRef, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "expired profile values: limit %d must be positive", limit)
	}
	rows, err := db.query(ctx, `SELECT pseudonym, field FROM profile WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires, pseudonym, field LIMIT ?`, db.D.Time(now), limit)
	if err != nil {
		return nil, fmt.Errorf("read expired profile values: %w", err)
	}
	out, err := collect(rows, func(rows Rows) (r portrait.FieldRef, err error) { return r, rows.Scan(&r.Pseudonym, &r.Field) })
	if err != nil {
		return nil, fmt.Errorf("read expired profile values: %w", err)
	}
	return out, nil
}

// Profile implements guard.Engine.Profile: every stored field.
func (db DB) Profile(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.ProfileValue, error) {
	rows, err := db.query(ctx, `SELECT field, sealed, source, updated, expires FROM profile WHERE pseudonym = ? ORDER BY field`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	out, err := collect(rows, func(r Rows) (v portrait.ProfileValue, err error) {
		return v, r.Scan(&v.Field, &v.Sealed, &v.Source, Time(&v.Updated), Time(&v.Expires))
	})
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return out, nil
}

// ProfilesFor implements guard.Engine.ProfilesFor.
func (db DB) ProfilesFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.ProfileValue, error) {
	if len(pseudonyms) == 0 {
		return map[portrait.Pseudonym][]portrait.ProfileValue{}, nil
	}
	rows, err := db.query(ctx, `SELECT pseudonym, field, sealed, source, updated, expires FROM profile
		WHERE pseudonym = ANY(?) ORDER BY pseudonym, field`, db.D.List(Strings(pseudonyms)))
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	type row struct {
		p portrait.Pseudonym
		v portrait.ProfileValue
	}
	rs, err := collect(rows, func(r Rows) (x row, err error) {
		return x, r.Scan(&x.p, &x.v.Field, &x.v.Sealed, &x.v.Source, Time(&x.v.Updated), Time(&x.v.Expires))
	})
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	out := map[portrait.Pseudonym][]portrait.ProfileValue{}
	for _, x := range rs {
		out[x.p] = append(out[x.p], x.v)
	}
	return out, nil
}

// Labels implements guard.Engine.Labels.
func (db DB) Labels(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.LabelValue, error) {
	rows, err := db.query(ctx, `SELECT label, version, sealed, computed, expires FROM labels WHERE pseudonym = ? ORDER BY label`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	out, err := collect(rows, func(r Rows) (portrait.LabelValue, error) {
		v := portrait.LabelValue{Pseudonym: pseudonym}
		return v, r.Scan(&v.Label, &v.Version, &v.Sealed, Time(&v.Computed), Time(&v.Expires))
	})
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return out, nil
}

// LabelsFor implements guard.Engine.LabelsFor.
func (db DB) LabelsFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.LabelValue, error) {
	if len(pseudonyms) == 0 {
		return map[portrait.Pseudonym][]portrait.LabelValue{}, nil
	}
	rows, err := db.query(ctx, `SELECT pseudonym, label, version, sealed, computed, expires FROM labels
		WHERE pseudonym = ANY(?) ORDER BY pseudonym, label`, db.D.List(Strings(pseudonyms)))
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	lvs, err := collect(rows, func(r Rows) (v portrait.LabelValue, err error) {
		return v, r.Scan(&v.Pseudonym, &v.Label, &v.Version, &v.Sealed, Time(&v.Computed), Time(&v.Expires))
	})
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	return BySubject(lvs, func(v *portrait.LabelValue) portrait.Pseudonym { return v.Pseudonym }), nil
}

// Protected implements guard.Engine.Protected.
func (db DB) Protected(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.ProtectedValue, error) {
	rows, err := db.query(ctx, `SELECT attribute, sealed FROM protected WHERE pseudonym = ? ORDER BY attribute`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	out, err := collect(rows, func(r Rows) (portrait.ProtectedValue, error) {
		v := portrait.ProtectedValue{Pseudonym: pseudonym}
		return v, r.Scan(&v.Attribute, &v.Sealed)
	})
	if err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	return out, nil
}

// ProtectedFor implements guard.Engine.ProtectedFor.
func (db DB) ProtectedFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.ProtectedValue, error) {
	if len(pseudonyms) == 0 {
		return map[portrait.Pseudonym][]portrait.ProtectedValue{}, nil
	}
	rows, err := db.query(ctx, `SELECT pseudonym, attribute, sealed FROM protected
		WHERE pseudonym = ANY(?) ORDER BY pseudonym, attribute`, db.D.List(Strings(pseudonyms)))
	if err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	vs, err := collect(rows, func(r Rows) (v portrait.ProtectedValue, err error) {
		return v, r.Scan(&v.Pseudonym, &v.Attribute, &v.Sealed)
	})
	if err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	return BySubject(vs, func(v *portrait.ProtectedValue) portrait.Pseudonym { return v.Pseudonym }), nil
}

// LogSize implements guard.Engine.LogSize. It does not lock; a
// transaction's LogSize does, as its engine requires.
func (db DB) LogSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.queryRow(ctx, `SELECT size FROM log_head`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read log size: %w", err)
	}
	return n, nil
}

// LogHashes implements guard.Engine.LogHashes (and guard.Tx.LogHashes
// over a transaction): one query over the entries that produced the
// hashes at indexes.
func (db DB) LogHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	records, err := audit.HashRecords(indexes)
	if err != nil {
		return nil, err
	}
	rows, err := db.query(ctx, LogHashesSQL, db.D.List64(records))
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

// LogHashesSQL is LogHashes's query, for an engine that prepares it.
const LogHashesSQL = `SELECT idx, hashes FROM log_entries WHERE idx = ANY(?)`

func scanEntry(r Rows) (e portrait.LogEntry, err error) {
	return e, r.Scan(&e.Index, &e.Kind, &e.Data, &e.Hashes)
}

// LogEntries implements guard.Engine.LogEntries: entries from (inclusive)
// to to (exclusive).
func (db DB) LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	rows, err := db.query(ctx, `SELECT idx, kind, data, hashes FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx`, from, to)
	if err != nil {
		return nil, fmt.Errorf("read log entries: %w", err)
	}
	out, err := collect(rows, scanEntry)
	if err != nil {
		return nil, fmt.Errorf("read log entries: %w", err)
	}
	if int64(len(out)) != to-from {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "log entries [%d, %d): the log holds only %d of them", from, to, len(out))
	}
	if out == nil {
		out = []portrait.LogEntry{}
	}
	return out, nil
}

// LogEntriesOfKind implements guard.Engine.LogEntriesOfKind.
func (db DB) LogEntriesOfKind(ctx context.Context, kinds []string, from, to int64) ([]portrait.LogEntry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	rows, err := db.query(ctx, `SELECT idx, kind, data, hashes FROM log_entries
		WHERE kind = ANY(?) AND idx >= ? AND idx < ? ORDER BY idx`, db.D.List(kinds), from, to)
	if err != nil {
		return nil, fmt.Errorf("read log entries by kind: %w", err)
	}
	out, err := collect(rows, scanEntry)
	if err != nil {
		return nil, fmt.Errorf("read log entries by kind: %w", err)
	}
	return out, nil
}

// Checkpoint implements guard.Engine.Checkpoint: the newest signed note.
func (db DB) Checkpoint(ctx context.Context) ([]byte, error) {
	var note []byte
	err := db.queryRow(ctx, `SELECT note FROM checkpoints ORDER BY id DESC LIMIT 1`).Scan(&note)
	if db.D.NoRows(err) {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "no checkpoint has been saved yet")
	} else if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	return note, nil
}

const decisionColumns = `id, pseudonym, usecase, model, model_version, outcome, score, input_hash, status, created, log_index`

func scanDecision(sc Row, sealed *[]byte) (portrait.StoredDetermination, error) {
	var d portrait.StoredDetermination
	dest := []any{&d.ID, &d.Pseudonym, &d.UseCase, &d.Model, &d.ModelVersion, &d.Outcome, &d.Score, &d.InputHash, &d.Status, Time(&d.Created), &d.LogIndex}
	if sealed != nil {
		dest = append(dest, sealed)
	}
	return d, sc.Scan(dest...)
}

func scanSealedDecision(r Rows) (portrait.StoredDetermination, error) {
	var sealed []byte
	d, err := scanDecision(r, &sealed)
	d.Sealed = sealed
	return d, err
}

// Determinations implements guard.Engine.Determinations.
func (db DB) Determinations(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.StoredDetermination, error) {
	rows, err := db.query(ctx, `SELECT `+decisionColumns+`, sealed FROM decisions WHERE pseudonym = ? ORDER BY created, id`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	out, err := collect(rows, scanSealedDecision)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return out, nil
}

// DeterminationsFor implements guard.Engine.DeterminationsFor.
func (db DB) DeterminationsFor(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym][]portrait.StoredDetermination, error) {
	if len(pseudonyms) == 0 {
		return map[portrait.Pseudonym][]portrait.StoredDetermination{}, nil
	}
	rows, err := db.query(ctx, `SELECT `+decisionColumns+`, sealed FROM decisions
		WHERE pseudonym = ANY(?) ORDER BY pseudonym, created, id`, db.D.List(Strings(pseudonyms)))
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	ds, err := collect(rows, scanSealedDecision)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return BySubject(ds, func(d *portrait.StoredDetermination) portrait.Pseudonym { return d.Pseudonym }), nil
}

// DeterminationByID implements guard.Engine.DeterminationByID: the sealed part is
// left out, since no grant is given.
func (db DB) DeterminationByID(ctx context.Context, id string) (portrait.StoredDetermination, error) {
	d, err := scanDecision(db.queryRow(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE id = ?`, id), nil)
	if db.D.NoRows(err) {
		return portrait.StoredDetermination{}, portrait.Errorf(portrait.ENOTFOUND, "no decision %s", id)
	} else if err != nil {
		return portrait.StoredDetermination{}, fmt.Errorf("read decision %s: %w", id, err)
	}
	return d, nil
}

const reviewColumns = `id, decision, pseudonym, usecase, kind, sealed, status, reviewer, outcome, reason, created, deadline, closed`

func scanReview(sc Row) (r portrait.Review, err error) {
	return r, sc.Scan(&r.ID, &r.DeterminationID, &r.Pseudonym, &r.UseCase, &r.Kind, &r.Sealed, &r.Status, &r.Reviewer, &r.Outcome, &r.Reason,
		Time(&r.Created), Time(&r.Deadline), Time(&r.Closed))
}

// Reviews implements guard.Engine.Reviews.
func (db DB) Reviews(ctx context.Context, status string) ([]portrait.Review, error) {
	rows, err := db.query(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE ? = '' OR status = ? ORDER BY created, id`, status, status)
	if err != nil {
		return nil, fmt.Errorf("read reviews: %w", err)
	}
	out, err := collect(rows, func(r Rows) (portrait.Review, error) { return scanReview(r) })
	if err != nil {
		return nil, fmt.Errorf("read reviews: %w", err)
	}
	return out, nil
}

// ReviewByID implements guard.Engine.ReviewByID.
func (db DB) ReviewByID(ctx context.Context, id string) (portrait.Review, error) {
	r, err := scanReview(db.queryRow(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE id = ?`, id))
	if db.D.NoRows(err) {
		return portrait.Review{}, portrait.Errorf(portrait.ENOTFOUND, "no review %s", id)
	} else if err != nil {
		return portrait.Review{}, fmt.Errorf("read review %s: %w", id, err)
	}
	return r, nil
}

// Items implements guard.Engine.Items.
func (db DB) Items(ctx context.Context) ([]portrait.Item, error) {
	rows, err := db.query(ctx, `SELECT id, categories, attributes, price, updated FROM items ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	out, err := collect(rows, func(r Rows) (portrait.Item, error) {
		var it portrait.Item
		var attrs []byte
		if err := r.Scan(&it.ID, db.D.StringsDest(&it.Categories), &attrs, &it.Price, Time(&it.Updated)); err != nil {
			return it, err
		}
		// Decoded by encoding/json on both engines, so numbers are float64.
		if err := json.Unmarshal(attrs, &it.Attributes); err != nil {
			return it, fmt.Errorf("item %s attributes: %w", it.ID, err)
		}
		return it, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return out, nil
}

// Cases implements guard.Engine.Cases: every case, or the subject's.
func (db DB) Cases(ctx context.Context, pseudonym portrait.Pseudonym) ([]portrait.Case, error) {
	q := `SELECT id, pseudonym, type, status, created, deadline, closed, outcome, reason, log_index FROM cases`
	var args []any
	if pseudonym != "" {
		q += ` WHERE pseudonym = ?`
		args = append(args, pseudonym)
	}
	rows, err := db.query(ctx, q+` ORDER BY created, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	out, err := collect(rows, func(r Rows) (c portrait.Case, err error) {
		return c, r.Scan(&c.ID, &c.Pseudonym, &c.Type, &c.Status, Time(&c.Created), Time(&c.Deadline), Time(&c.Closed), &c.Outcome, &c.Reason, &c.LogIndex)
	})
	if err != nil {
		return nil, fmt.Errorf("read cases: %w", err)
	}
	return out, nil
}

// Pseudonyms implements guard.Engine.Pseudonyms, in byte order (the
// PostgreSQL column's collation is "C").
func (db DB) Pseudonyms(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.Pseudonym, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "pseudonyms: limit %d must be positive", limit)
	}
	rows, err := db.query(ctx, `SELECT pseudonym FROM subjects WHERE pseudonym > ? ORDER BY pseudonym LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read pseudonyms: %w", err)
	}
	out, err := collect(rows, func(r Rows) (p portrait.Pseudonym, err error) { return p, r.Scan(&p) })
	if err != nil {
		return nil, fmt.Errorf("read pseudonyms: %w", err)
	}
	return out, nil
}

// SubjectsAfter implements guard.Engine.SubjectsAfter: the subjects
// table's primary key read as one range from after on, rather than a
// seek per pseudonym as Subjects does.
func (db DB) SubjectsAfter(ctx context.Context, after portrait.Pseudonym, limit int) ([]portrait.SubjectKey, error) {
	if limit <= 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "subjects: limit %d must be positive", limit)
	}
	rows, err := db.query(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE pseudonym > ? ORDER BY pseudonym LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read subjects: %w", err)
	}
	out, err := collect(rows, scanSubject)
	if err != nil {
		return nil, fmt.Errorf("read subjects: %w", err)
	}
	return out, nil
}

const apiKeyColumns = `id, name, hash, role, created, expires, revoked, last_used`

func scanAPIKey(row Row) (portrait.APIKey, error) {
	var k portrait.APIKey
	var role string
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &role, Time(&k.Created), Time(&k.Expires), Time(&k.Revoked), Time(&k.LastUsed)); err != nil {
		return portrait.APIKey{}, err
	}
	k.Role = policy.Role(role)
	return k, nil
}

// APIKey implements guard.Engine.APIKey.
func (db DB) APIKey(ctx context.Context, hash []byte) (portrait.APIKey, error) {
	k, err := scanAPIKey(db.queryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ? AND revoked IS NULL`, hash))
	if db.D.NoRows(err) {
		return portrait.APIKey{}, portrait.Errorf(portrait.ENOTFOUND, "no API key matches")
	} else if err != nil {
		return portrait.APIKey{}, fmt.Errorf("read api key: %w", err)
	}
	return k, nil
}

// APIKeys implements guard.Engine.APIKeys.
func (db DB) APIKeys(ctx context.Context) ([]portrait.APIKey, error) {
	rows, err := db.query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY name, created, id`)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	out, err := collect(rows, func(r Rows) (portrait.APIKey, error) { return scanAPIKey(r) })
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return out, nil
}
