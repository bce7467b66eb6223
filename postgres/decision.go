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

const reviewColumns = `id, decision, pseudonym, usecase, kind, sealed, status, reviewer, outcome, reason, created, deadline, closed`

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
