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

const reviewColumns = `id, decision, pseudonym, usecase, kind, sealed, status, reviewer, outcome, reason, created, deadline, closed`

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
