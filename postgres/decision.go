package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"

	"github.com/jackc/pgx/v5"
)

const decisionColumns = `id, pseudonym, usecase, model, model_version, outcome, score, input_hash, status, created, log_index`

func scanDecision(sc interface{ Scan(...any) error }, sealed *[]byte) (portrait.DecisionRecord, error) {
	var d portrait.DecisionRecord
	dest := []any{&d.ID, &d.Subject, &d.UseCase, &d.Model, &d.ModelVersion, &d.Outcome, &d.Score, &d.InputHash, &d.Status, &d.Created, &d.LogIndex}
	if sealed != nil {
		dest = append(dest, sealed)
	}
	if err := sc.Scan(dest...); err != nil {
		return d, err
	}
	d.Created = d.Created.UTC()
	return d, nil
}

// Decisions implements guard.Engine.Decisions.
func (db *engine) Decisions(ctx context.Context, pseudonym string) ([]portrait.DecisionRecord, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+decisionColumns+`, sealed FROM decisions WHERE pseudonym = $1 ORDER BY created, id`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	defer rows.Close()
	var out []portrait.DecisionRecord
	for rows.Next() {
		var sealed []byte
		d, err := scanDecision(rows, &sealed)
		if err != nil {
			return nil, fmt.Errorf("read decisions: %w", err)
		}
		d.Sealed = sealed
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read decisions: %w", err)
	}
	return out, nil
}

// DecisionByID implements guard.Engine.DecisionByID: the sealed part is
// left out, since no grant is given.
func (db *engine) DecisionByID(ctx context.Context, id string) (portrait.DecisionRecord, error) {
	d, err := scanDecision(db.pool.QueryRow(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE id = $1`, id), nil)
	if errors.Is(err, pgx.ErrNoRows) {
		return portrait.DecisionRecord{}, portrait.Errorf(portrait.ENOTFOUND, "no decision %s", id)
	} else if err != nil {
		return portrait.DecisionRecord{}, fmt.Errorf("read decision %s: %w", id, err)
	}
	return d, nil
}

const reviewColumns = `id, decision, pseudonym, usecase, kind, sealed, status, reviewer, outcome, reason, created, deadline, closed`

func scanReview(sc interface{ Scan(...any) error }) (portrait.Review, error) {
	var r portrait.Review
	var deadline, closed *time.Time
	if err := sc.Scan(&r.ID, &r.Decision, &r.Subject, &r.UseCase, &r.Kind, &r.Sealed, &r.Status, &r.Reviewer, &r.Outcome, &r.Reason, &r.Created, &deadline, &closed); err != nil {
		return r, err
	}
	r.Created, r.Deadline, r.Closed = r.Created.UTC(), fromTS(deadline), fromTS(closed)
	return r, nil
}

// Reviews implements guard.Engine.Reviews.
func (db *engine) Reviews(ctx context.Context, status string) ([]portrait.Review, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE $1 = '' OR status = $2 ORDER BY created, id`, status, status)
	if err != nil {
		return nil, fmt.Errorf("read reviews: %w", err)
	}
	defer rows.Close()
	var out []portrait.Review
	for rows.Next() {
		r, err := scanReview(rows)
		if err != nil {
			return nil, fmt.Errorf("read reviews: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read reviews: %w", err)
	}
	return out, nil
}

// ReviewByID implements guard.Engine.ReviewByID.
func (db *engine) ReviewByID(ctx context.Context, id string) (portrait.Review, error) {
	r, err := scanReview(db.pool.QueryRow(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return portrait.Review{}, portrait.Errorf(portrait.ENOTFOUND, "no review %s", id)
	} else if err != nil {
		return portrait.Review{}, fmt.Errorf("read review %s: %w", id, err)
	}
	return r, nil
}

// Items implements guard.Engine.Items.
func (db *engine) Items(ctx context.Context) ([]portrait.Item, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, categories, attributes, price, updated FROM items ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	defer rows.Close()
	var out []portrait.Item
	for rows.Next() {
		var it portrait.Item
		var attrs []byte
		var updated *time.Time
		if err := rows.Scan(&it.ID, &it.Categories, &attrs, &it.Price, &updated); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		// Decoded by encoding/json, as SQLite's are, so numbers are float64 on both engines.
		if err := json.Unmarshal(attrs, &it.Attributes); err != nil {
			return nil, fmt.Errorf("read item %s attributes: %w", it.ID, err)
		}
		it.Updated = fromTS(updated)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return out, nil
}

// Protected implements guard.Engine.Protected.
func (db *engine) Protected(ctx context.Context, pseudonym string) ([]portrait.ProtectedValue, error) {
	rows, err := db.pool.Query(ctx, `SELECT attribute, sealed FROM protected WHERE pseudonym = $1 ORDER BY attribute`, pseudonym)
	if err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	defer rows.Close()
	var out []portrait.ProtectedValue
	for rows.Next() {
		v := portrait.ProtectedValue{Subject: pseudonym}
		if err := rows.Scan(&v.Attribute, &v.Sealed); err != nil {
			return nil, fmt.Errorf("read protected attributes: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read protected attributes: %w", err)
	}
	return out, nil
}

// PutDecision implements guard.Tx.PutDecision; the grant must allow Use
// for the decision's subject.
func (tx *txn) PutDecision(ctx context.Context, d portrait.DecisionRecord) error {
	if d.ID == "" || d.UseCase == "" || d.Status == "" {
		return portrait.Errorf(portrait.EINVALID, "put decision %q: a decision needs an id, a use-case and a status", d.ID)
	}
	created := d.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.tx.Exec(ctx, `INSERT INTO decisions (`+decisionColumns+`, sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		d.ID, d.Subject, d.UseCase, d.Model, d.ModelVersion, d.Outcome, d.Score, d.InputHash, d.Status, created, d.LogIndex, blob(d.Sealed))
	if isUnique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "put decision %s: a decision with this id exists", d.ID)
	} else if err != nil {
		return fmt.Errorf("put decision %s: %w", d.ID, err)
	}
	return nil
}

// SetDecisionStatus implements guard.Tx.SetDecisionStatus.
func (tx *txn) SetDecisionStatus(ctx context.Context, id, status string) error {
	if status == "" {
		return portrait.Errorf(portrait.EINVALID, "set status of decision %s: the status is empty", id)
	}
	tag, err := tx.tx.Exec(ctx, `UPDATE decisions SET status = $1 WHERE id = $2`, status, id)
	if err != nil {
		return fmt.Errorf("set status of decision %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "set status: no decision %s", id)
	}
	return nil
}

// PutReview implements guard.Tx.PutReview.
func (tx *txn) PutReview(ctx context.Context, r portrait.Review) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.ID == "" || r.Decision == "" || r.Subject == "" || r.Kind == "" || r.Status == "" {
		return portrait.Errorf(portrait.EINVALID, "put review %q: a review needs an id, a decision, a subject, a kind and a status", r.ID)
	}
	created := r.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.tx.Exec(ctx, `INSERT INTO reviews (`+reviewColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (id) DO UPDATE SET decision = excluded.decision, pseudonym = excluded.pseudonym, usecase = excluded.usecase, kind = excluded.kind,
			sealed = excluded.sealed, status = excluded.status, reviewer = excluded.reviewer, outcome = excluded.outcome, reason = excluded.reason,
			created = excluded.created, deadline = excluded.deadline, closed = excluded.closed`,
		r.ID, r.Decision, r.Subject, r.UseCase, r.Kind, blob(r.Sealed), r.Status, r.Reviewer, r.Outcome, r.Reason, created, ts(r.Deadline), ts(r.Closed))
	if err != nil {
		return fmt.Errorf("put review %s: %w", r.ID, err)
	}
	return nil
}

// CloseReview implements guard.Tx.CloseReview. Under READ COMMITTED a
// second UPDATE of the same row waits for the first transaction and then
// evaluates its WHERE clause against the committed row, so it sees the
// review closed and changes nothing.
func (tx *txn) CloseReview(ctx context.Context, r portrait.Review) error {
	if r.ID == "" || r.Status == "" || r.Status == "open" {
		return portrait.Errorf(portrait.EINVALID, "close review %q: give the id and a closed status", r.ID)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	tag, err := tx.tx.Exec(ctx, `UPDATE reviews SET status = $1, reviewer = $2, outcome = $3, reason = $4, closed = $5 WHERE id = $6 AND status = 'open'`,
		r.Status, r.Reviewer, r.Outcome, r.Reason, ts(r.Closed), r.ID)
	if err != nil {
		return fmt.Errorf("close review %s: %w", r.ID, err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var status, outcome string
	err = tx.tx.QueryRow(ctx, `SELECT status, outcome FROM reviews WHERE id = $1`, r.ID).Scan(&status, &outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return portrait.Errorf(portrait.ENOTFOUND, "close review: no review %s", r.ID)
	} else if err != nil {
		return fmt.Errorf("close review %s: %w", r.ID, err)
	}
	return portrait.Errorf(portrait.ECONFLICT, "review %s is already %s (%s)", r.ID, status, outcome)
}

// PutItems implements guard.Tx.PutItems.
func (tx *txn) PutItems(ctx context.Context, items []portrait.Item) error {
	for _, it := range items {
		if err := it.Validate(); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, it := range items {
		if it.ID == "" {
			return portrait.Errorf(portrait.EINVALID, "put items: an item has no id")
		}
		cats, attrs, err := itemJSON(it)
		if err != nil {
			return err
		}
		b.Queue(`INSERT INTO items (id, categories, attributes, price, updated) VALUES ($1, $2, $3::jsonb, $4, $5)
			ON CONFLICT (id) DO UPDATE SET categories = excluded.categories, attributes = excluded.attributes, price = excluded.price, updated = excluded.updated`,
			it.ID, cats, attrs, it.Price, ts(it.Updated))
	}
	if err := tx.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("put items: %w", err)
	}
	return nil
}

func itemJSON(it portrait.Item) (cats []string, attrs string, err error) {
	cats, a := it.Categories, it.Attributes
	if cats == nil {
		cats = []string{}
	}
	if a == nil {
		a = map[string]any{}
	}
	ab, err := json.Marshal(a)
	if err != nil {
		return nil, "", portrait.Errorf(portrait.EINVALID, "put item %s: attributes must be JSON values: %v", it.ID, err)
	}
	return cats, string(ab), nil
}

// PutProtected implements guard.Tx.PutProtected; the grant must allow
// Collect for the subject of every value.
func (tx *txn) PutProtected(ctx context.Context, pseudonym string, values []portrait.ProtectedValue) error {
	for _, v := range values {
		if _, err := tx.tx.Exec(ctx, `INSERT INTO protected (pseudonym, attribute, sealed) VALUES ($1, $2, $3)
			ON CONFLICT (pseudonym, attribute) DO UPDATE SET sealed = excluded.sealed`, pseudonym, v.Attribute, v.Sealed); err != nil {
			return fmt.Errorf("put protected attribute %s: %w", v.Attribute, err)
		}
	}
	return nil
}
