package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

const decisionColumns = `id, pseudonym, usecase, model, model_version, outcome, score, input_hash, status, created, log_index`

func scanDecision(sc interface{ Scan(...any) error }, sealed *[]byte) (portrait.DecisionRecord, error) {
	var d portrait.DecisionRecord
	var created sql.NullInt64
	dest := []any{&d.ID, &d.Subject, &d.UseCase, &d.Model, &d.ModelVersion, &d.Outcome, &d.Score, &d.InputHash, &d.Status, &created, &d.LogIndex}
	if sealed != nil {
		dest = append(dest, sealed)
	}
	if err := sc.Scan(dest...); err != nil {
		return d, err
	}
	d.Created = fromNanos(created)
	return d, nil
}

// Decisions implements guard.Engine.Decisions.
func (db *engine) Decisions(ctx context.Context, pseudonym string) ([]portrait.DecisionRecord, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+decisionColumns+`, sealed FROM decisions WHERE pseudonym = ? ORDER BY created, id`, pseudonym)
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
	d, err := scanDecision(db.read.QueryRowContext(ctx, `SELECT `+decisionColumns+` FROM decisions WHERE id = ?`, id), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return portrait.DecisionRecord{}, portrait.Errorf(portrait.ENOTFOUND, "no decision %s", id)
	} else if err != nil {
		return portrait.DecisionRecord{}, fmt.Errorf("read decision %s: %w", id, err)
	}
	return d, nil
}

const reviewColumns = `id, decision, pseudonym, usecase, kind, sealed, status, reviewer, outcome, reason, created, deadline, closed`

func scanReview(sc interface{ Scan(...any) error }) (portrait.Review, error) {
	var r portrait.Review
	var created, deadline, closed sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Decision, &r.Subject, &r.UseCase, &r.Kind, &r.Sealed, &r.Status, &r.Reviewer, &r.Outcome, &r.Reason, &created, &deadline, &closed); err != nil {
		return r, err
	}
	r.Created, r.Deadline, r.Closed = fromNanos(created), fromNanos(deadline), fromNanos(closed)
	return r, nil
}

// Reviews implements guard.Engine.Reviews.
func (db *engine) Reviews(ctx context.Context, status string) ([]portrait.Review, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE ? = '' OR status = ? ORDER BY created, id`, status, status)
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
	r, err := scanReview(db.read.QueryRowContext(ctx, `SELECT `+reviewColumns+` FROM reviews WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return portrait.Review{}, portrait.Errorf(portrait.ENOTFOUND, "no review %s", id)
	} else if err != nil {
		return portrait.Review{}, fmt.Errorf("read review %s: %w", id, err)
	}
	return r, nil
}

// Items implements guard.Engine.Items.
func (db *engine) Items(ctx context.Context) ([]portrait.Item, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, categories, attributes, price, updated FROM items ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	defer rows.Close()
	var out []portrait.Item
	for rows.Next() {
		var it portrait.Item
		var cats, attrs string
		var updated sql.NullInt64
		if err := rows.Scan(&it.ID, &cats, &attrs, &it.Price, &updated); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		if err := json.Unmarshal([]byte(cats), &it.Categories); err != nil {
			return nil, fmt.Errorf("read item %s categories: %w", it.ID, err)
		}
		if err := json.Unmarshal([]byte(attrs), &it.Attributes); err != nil {
			return nil, fmt.Errorf("read item %s attributes: %w", it.ID, err)
		}
		it.Updated = fromNanos(updated)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return out, nil
}

// Protected implements guard.Engine.Protected.
func (db *engine) Protected(ctx context.Context, pseudonym string) ([]portrait.ProtectedValue, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT attribute, sealed FROM protected WHERE pseudonym = ? ORDER BY attribute`, pseudonym)
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

const putDecisionSQL = `INSERT INTO decisions (` + decisionColumns + `, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

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
	_, err := tx.exec(ctx, putDecisionSQL,
		d.ID, d.Subject, d.UseCase, d.Model, d.ModelVersion, d.Outcome, d.Score, d.InputHash, d.Status, created.UnixNano(), d.LogIndex, blob(d.Sealed))
	if isUnique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "put decision %s: a decision with this id exists", d.ID)
	} else if err != nil {
		return fmt.Errorf("put decision %s: %w", d.ID, err)
	}
	return nil
}

const setDecisionStatusSQL = `UPDATE decisions SET status = ? WHERE id = ?`

// SetDecisionStatus implements guard.Tx.SetDecisionStatus.
func (tx *txn) SetDecisionStatus(ctx context.Context, id, status string) error {
	if status == "" {
		return portrait.Errorf(portrait.EINVALID, "set status of decision %s: the status is empty", id)
	}
	res, err := tx.exec(ctx, setDecisionStatusSQL, status, id)
	if err != nil {
		return fmt.Errorf("set status of decision %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("set status of decision %s: %w", id, err)
	} else if n == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "set status: no decision %s", id)
	}
	return nil
}

const putReviewSQL = `INSERT INTO reviews (` + reviewColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET decision = excluded.decision, pseudonym = excluded.pseudonym, usecase = excluded.usecase, kind = excluded.kind,
		sealed = excluded.sealed, status = excluded.status, reviewer = excluded.reviewer, outcome = excluded.outcome, reason = excluded.reason,
		created = excluded.created, deadline = excluded.deadline, closed = excluded.closed`

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
	_, err := tx.exec(ctx, putReviewSQL,
		r.ID, r.Decision, r.Subject, r.UseCase, r.Kind, blob(r.Sealed), r.Status, r.Reviewer, r.Outcome, r.Reason, created.UnixNano(), nanos(r.Deadline), nanos(r.Closed))
	if err != nil {
		return fmt.Errorf("put review %s: %w", r.ID, err)
	}
	return nil
}

const closeReviewSQL = `UPDATE reviews SET status = ?, reviewer = ?, outcome = ?, reason = ?, closed = ? WHERE id = ? AND status = 'open'`

// CloseReview implements guard.Tx.CloseReview. The write transaction
// holds SQLite's only write lock, and the status is tested by the UPDATE
// itself, so a second outcome sees the first one's row.
func (tx *txn) CloseReview(ctx context.Context, r portrait.Review) error {
	if r.ID == "" || r.Status == "" || r.Status == "open" {
		return portrait.Errorf(portrait.EINVALID, "close review %q: give the id and a closed status", r.ID)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	res, err := tx.exec(ctx, closeReviewSQL, r.Status, r.Reviewer, r.Outcome, r.Reason, nanos(r.Closed), r.ID)
	if err != nil {
		return fmt.Errorf("close review %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("close review %s: %w", r.ID, err)
	}
	if n == 0 {
		return reviewNotOpen(tx.tx.QueryRowContext(ctx, `SELECT status, outcome FROM reviews WHERE id = ?`, r.ID), r.ID)
	}
	return nil
}

// reviewNotOpen explains why closing found no open review.
func reviewNotOpen(row *sql.Row, id string) error {
	var status, outcome string
	if err := row.Scan(&status, &outcome); errors.Is(err, sql.ErrNoRows) {
		return portrait.Errorf(portrait.ENOTFOUND, "close review: no review %s", id)
	} else if err != nil {
		return fmt.Errorf("close review %s: %w", id, err)
	}
	return portrait.Errorf(portrait.ECONFLICT, "review %s is already %s (%s)", id, status, outcome)
}

const putItemSQL = `INSERT INTO items (id, categories, attributes, price, updated) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET categories = excluded.categories, attributes = excluded.attributes, price = excluded.price, updated = excluded.updated`

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
	stmt, err := tx.stmt(ctx, putItemSQL)
	if err != nil {
		return fmt.Errorf("put items: %w", err)
	}
	for _, it := range items {
		if it.ID == "" {
			return portrait.Errorf(portrait.EINVALID, "put items: an item has no id")
		}
		cats, attrs, err := itemJSON(it)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, it.ID, cats, attrs, it.Price, nanos(it.Updated)); err != nil {
			return fmt.Errorf("put item %s: %w", it.ID, err)
		}
	}
	return nil
}

func itemJSON(it portrait.Item) (cats, attrs string, err error) {
	c, a := it.Categories, it.Attributes
	if c == nil {
		c = []string{}
	}
	if a == nil {
		a = map[string]any{}
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return "", "", portrait.Errorf(portrait.EINVALID, "put item %s: categories: %v", it.ID, err)
	}
	ab, err := json.Marshal(a)
	if err != nil {
		return "", "", portrait.Errorf(portrait.EINVALID, "put item %s: attributes must be JSON values: %v", it.ID, err)
	}
	return string(cb), string(ab), nil
}

const putProtectedSQL = `INSERT INTO protected (pseudonym, attribute, sealed) VALUES (?, ?, ?)
	ON CONFLICT (pseudonym, attribute) DO UPDATE SET sealed = excluded.sealed`

// PutProtected implements guard.Tx.PutProtected; the grant must allow
// Collect for the subject of every value.
func (tx *txn) PutProtected(ctx context.Context, pseudonym string, values []portrait.ProtectedValue) error {
	put, err := tx.stmt(ctx, putProtectedSQL)
	if err != nil {
		return fmt.Errorf("put protected attributes: %w", err)
	}
	for _, v := range values {
		if _, err := put.ExecContext(ctx, pseudonym, v.Attribute, v.Sealed); err != nil {
			return fmt.Errorf("put protected attribute %s: %w", v.Attribute, err)
		}
	}
	return nil
}
