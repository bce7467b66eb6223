package tables

import (
	"context"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// Tx is the SQL the two engines share inside a write transaction: the
// reads of DB, seeing the transaction's writes, and the writes. An
// engine's transaction embeds it over itself.
type Tx struct {
	DB
	// Bumped, if set, is called each time the transaction moves the
	// governance generation (bump), for an engine that keeps the
	// generation in memory and must forget it when the transaction
	// commits (SQLite, whose file one process owns).
	Bumped func()
}

// The shared writes' statements, whose text never varies; WriteSQL lists
// them for an engine that prepares its write path (SQLite, at Open).
const (
	putDecisionSQL       = `INSERT INTO decisions (` + decisionColumns + `, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	setDecisionStatusSQL = `UPDATE decisions SET status = ? WHERE id = ?`
	putReviewSQL         = `INSERT INTO reviews (` + reviewColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET decision = excluded.decision, pseudonym = excluded.pseudonym, usecase = excluded.usecase, kind = excluded.kind,
		sealed = excluded.sealed, status = excluded.status, reviewer = excluded.reviewer, outcome = excluded.outcome, reason = excluded.reason,
		created = excluded.created, deadline = excluded.deadline, closed = excluded.closed`
	closeReviewSQL  = `UPDATE reviews SET status = ?, reviewer = ?, outcome = ?, reason = ?, closed = ? WHERE id = ? AND status = 'open'`
	reviewStatusSQL = `SELECT status, outcome FROM reviews WHERE id = ?`
	putProtectedSQL = `INSERT INTO protected (pseudonym, attribute, sealed) VALUES (?, ?, ?)
	ON CONFLICT (pseudonym, attribute) DO UPDATE SET sealed = excluded.sealed`
	putCaseSQL = `INSERT INTO cases (id, pseudonym, type, status, created, deadline, closed, outcome, reason, log_index)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET pseudonym = excluded.pseudonym, type = excluded.type, status = excluded.status, created = excluded.created,
		deadline = excluded.deadline, closed = excluded.closed, outcome = excluded.outcome, reason = excluded.reason, log_index = excluded.log_index`
	putAPIKeySQL     = `INSERT INTO api_keys (` + apiKeyColumns + `) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)`
	revokeAPIKeySQL  = `UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL RETURNING ` + apiKeyColumns
	touchAPIKeySQL   = `UPDATE api_keys SET last_used = ? WHERE id = ? AND (last_used IS NULL OR last_used < ?)`
	appendConsentSQL = `INSERT INTO consents (pseudonym, purpose, status, notice_version, channel, user_agent, ua_sealed, ip, guardian, categories, at, consent_string, string_type)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	setFlagsSQL = `UPDATE subjects SET minor = ?, restricted = ?, object_profiling = ?, object_marketing = ?, personalization = ? WHERE pseudonym = ?`
	suppressSQL = `INSERT INTO suppressions (pseudonym, label, deleted) VALUES (?, ?, ?)
	ON CONFLICT (pseudonym, label) DO UPDATE SET deleted = excluded.deleted`
	unsuppressSQL = `DELETE FROM suppressions WHERE pseudonym = ? AND label = ?`
	suspendSQL    = `INSERT INTO suspensions (kind, id, reason, suspended_by, at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (kind, id) DO UPDATE SET reason = excluded.reason, suspended_by = excluded.suspended_by, at = excluded.at`
	liftSQL           = `DELETE FROM suspensions WHERE kind = ? AND id = ?`
	deleteLabelsOfSQL = `DELETE FROM labels WHERE pseudonym = ANY(?) AND label = ANY(?)`
)

// bumpSQL moves the governance generation (bump).
const bumpSQL = `UPDATE generation SET n = n + 1`

// WriteSQL are the statements of Tx's writes, in the shared form.
var WriteSQL = append([]string{
	bumpSQL, putDecisionSQL, setDecisionStatusSQL, putReviewSQL, closeReviewSQL, reviewStatusSQL, putProtectedSQL, putCaseSQL,
	putAPIKeySQL, revokeAPIKeySQL, touchAPIKeySQL, appendConsentSQL, setFlagsSQL, suppressSQL, unsuppressSQL, suspendSQL, liftSQL,
	deleteLabelsOfSQL,
}, foldSQL...)

// DeleteLabelsOf implements guard.Tx.DeleteLabelsOf: one statement for a
// batch page's subjects, where DeleteLabels is one per subject.
func (tx Tx) DeleteLabelsOf(ctx context.Context, pseudonyms []portrait.Pseudonym, labels []string) error {
	if len(pseudonyms) == 0 || len(labels) == 0 {
		return nil
	}
	if _, err := tx.exec(ctx, deleteLabelsOfSQL, tx.D.List(Strings(pseudonyms)), tx.D.List(labels)); err != nil {
		return fmt.Errorf("delete labels %v of %d subjects: %w", labels, len(pseudonyms), err)
	}
	return nil
}

// bump increments the governance generation in the transaction, so caches
// on every node see the change with it (invariant 5).
func (tx Tx) bump(ctx context.Context) error {
	if _, err := tx.exec(ctx, bumpSQL); err != nil {
		return fmt.Errorf("bump generation: %w", err)
	}
	if tx.Bumped != nil {
		tx.Bumped()
	}
	return nil
}

// blob stores an empty byte slice as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// erasedTables are the tables Erase clears of a subject after its subjects
// row and its events. Cases stay: they hold no personal values and the
// erasure case is the subject's receipt.
var erasedTables = []string{"profile", "labels", "suppressions", "consents", "decisions", "reviews", "protected"}

// Erase implements guard.Tx.Erase. The subject row with the wrapped data
// key goes first, so that nothing sealed stays readable even if a later
// delete were lost (invariant 4, SR-3); then the events in every table
// that holds them, moved or not, and the subject's other rows and its
// name in the derivation marks (derive_pending), all in the caller's
// transaction.
func (tx Tx) Erase(ctx context.Context, pseudonym portrait.Pseudonym) error {
	if _, err := tx.exec(ctx, `DELETE FROM subjects WHERE pseudonym = ?`, pseudonym); err != nil {
		return fmt.Errorf("erase %s from subjects: %w", pseudonym, err)
	}
	for _, q := range tx.D.EventDeletes() {
		if _, err := tx.exec(ctx, q, tx.D.EventKey(pseudonym)); err != nil {
			return fmt.Errorf("erase %s's events: %w", pseudonym, err)
		}
	}
	for _, table := range erasedTables {
		if _, err := tx.exec(ctx, `DELETE FROM `+table+` WHERE pseudonym = ?`, pseudonym); err != nil {
			return fmt.Errorf("erase %s from %s: %w", pseudonym, table, err)
		}
	}
	if err := tx.unmarkPending(ctx, pseudonym); err != nil {
		return fmt.Errorf("erase %s: %w", pseudonym, err)
	}
	return tx.bump(ctx)
}

// PutDetermination implements guard.Tx.PutDetermination.
func (tx Tx) PutDetermination(ctx context.Context, d portrait.StoredDetermination) error {
	if d.ID == "" || d.UseCase == "" || d.Status == "" {
		return portrait.Errorf(portrait.EINVALID, "put decision %q: a decision needs an id, a use-case and a status", d.ID)
	}
	created := d.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.exec(ctx, putDecisionSQL,
		d.ID, d.Pseudonym, d.UseCase, d.Model, d.ModelVersion, d.Outcome, d.Score, d.InputHash, d.Status, tx.D.Time(created), d.LogIndex, blob(d.Sealed))
	if tx.D.Unique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "put decision %s: a decision with this id exists", d.ID)
	} else if err != nil {
		return fmt.Errorf("put decision %s: %w", d.ID, err)
	}
	return nil
}

// SetDeterminationStatus implements guard.Tx.SetDeterminationStatus.
func (tx Tx) SetDeterminationStatus(ctx context.Context, id, status string) error {
	if status == "" {
		return portrait.Errorf(portrait.EINVALID, "set status of decision %s: the status is empty", id)
	}
	n, err := tx.exec(ctx, setDecisionStatusSQL, status, id)
	if err != nil {
		return fmt.Errorf("set status of decision %s: %w", id, err)
	}
	if n == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "set status: no decision %s", id)
	}
	return nil
}

// PutReview implements guard.Tx.PutReview.
func (tx Tx) PutReview(ctx context.Context, r portrait.Review) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if r.ID == "" || r.DeterminationID == "" || r.Pseudonym == "" || r.Kind == "" || r.Status == "" {
		return portrait.Errorf(portrait.EINVALID, "put review %q: a review needs an id, a decision, a subject, a kind and a status", r.ID)
	}
	created := r.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.exec(ctx, putReviewSQL, r.ID, r.DeterminationID, r.Pseudonym, r.UseCase, r.Kind, blob(r.Sealed), r.Status, r.Reviewer, r.Outcome, r.Reason,
		tx.D.Time(created), tx.D.Time(r.Deadline), tx.D.Time(r.Closed))
	if err != nil {
		return fmt.Errorf("put review %s: %w", r.ID, err)
	}
	return nil
}

// CloseReview implements guard.Tx.CloseReview. The UPDATE tests the
// status itself, so a second outcome changes nothing: SQLite's write
// transaction holds its only write lock, and under PostgreSQL's READ
// COMMITTED a second UPDATE of the row waits for the first transaction
// and then evaluates its WHERE clause against the committed row.
func (tx Tx) CloseReview(ctx context.Context, r portrait.Review) error {
	if r.ID == "" || r.Status == "" || r.Status == "open" {
		return portrait.Errorf(portrait.EINVALID, "close review %q: give the id and a closed status", r.ID)
	}
	if err := r.Validate(); err != nil {
		return err
	}
	n, err := tx.exec(ctx, closeReviewSQL, r.Status, r.Reviewer, r.Outcome, r.Reason, tx.D.Time(r.Closed), r.ID)
	if err != nil {
		return fmt.Errorf("close review %s: %w", r.ID, err)
	}
	if n > 0 {
		return nil
	}
	var status, outcome string
	err = tx.queryRow(ctx, reviewStatusSQL, r.ID).Scan(&status, &outcome)
	if tx.D.NoRows(err) {
		return portrait.Errorf(portrait.ENOTFOUND, "close review: no review %s", r.ID)
	} else if err != nil {
		return fmt.Errorf("close review %s: %w", r.ID, err)
	}
	return portrait.Errorf(portrait.ECONFLICT, "review %s is already %s (%s)", r.ID, status, outcome)
}

// PutProtected implements guard.Tx.PutProtected.
func (tx Tx) PutProtected(ctx context.Context, pseudonym portrait.Pseudonym, values []portrait.ProtectedValue) error {
	for _, v := range values {
		if _, err := tx.exec(ctx, putProtectedSQL, pseudonym, v.Attribute, v.Sealed); err != nil {
			return fmt.Errorf("put protected attribute %s: %w", v.Attribute, err)
		}
	}
	return nil
}

// PutCase implements guard.Tx.PutCase.
func (tx Tx) PutCase(ctx context.Context, c portrait.Case) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.ID == "" || c.Pseudonym == "" || c.Type == "" || c.Status == "" {
		return portrait.Errorf(portrait.EINVALID, "put case %q: a case needs an id, a subject, a type and a status", c.ID)
	}
	created := c.Created
	if created.IsZero() {
		created = time.Now()
	}
	_, err := tx.exec(ctx, putCaseSQL,
		c.ID, c.Pseudonym, c.Type, c.Status, tx.D.Time(created), tx.D.Time(c.Deadline), tx.D.Time(c.Closed), c.Outcome, c.Reason, c.LogIndex)
	if err != nil {
		return fmt.Errorf("put case %s: %w", c.ID, err)
	}
	return nil
}

// PutAPIKey implements guard.Tx.PutAPIKey.
func (tx Tx) PutAPIKey(ctx context.Context, k portrait.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if k.Name == "" {
		k.Name = k.ID
	}
	if k.Created.IsZero() {
		k.Created = time.Now()
	}
	_, err := tx.exec(ctx, putAPIKeySQL, k.ID, k.Name, k.Hash, string(k.Role), tx.D.Time(k.Created), tx.D.Time(k.Expires))
	if tx.D.Unique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "put API key %s: a key with this id or hash was stored before, or a key named %s is in force", k.ID, k.Name)
	} else if err != nil {
		return fmt.Errorf("put API key %s: %w", k.Name, err)
	}
	return nil
}

// RevokeAPIKey implements guard.Tx.RevokeAPIKey.
func (tx Tx) RevokeAPIKey(ctx context.Context, name string, at time.Time) (portrait.APIKey, error) {
	if at.IsZero() {
		return portrait.APIKey{}, portrait.Errorf(portrait.EINVALID, "revoke API key %s: no time given", name)
	}
	k, err := scanAPIKey(tx.queryRow(ctx, revokeAPIKeySQL, tx.D.Time(at), name))
	if tx.D.NoRows(err) {
		return portrait.APIKey{}, portrait.Errorf(portrait.ENOTFOUND, "no API key named %s is in force", name)
	} else if err != nil {
		return portrait.APIKey{}, fmt.Errorf("revoke API key %s: %w", name, err)
	}
	// Nodes keep the keys they verified while the generation stands
	// (apikey): moving it here is what makes the revocation bind the next
	// request on every node.
	if err := tx.bump(ctx); err != nil {
		return portrait.APIKey{}, err
	}
	return k, nil
}

// TouchAPIKey implements guard.Tx.TouchAPIKey.
func (tx Tx) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	if _, err := tx.exec(ctx, touchAPIKeySQL, tx.D.Time(at), id, tx.D.Time(at)); err != nil {
		return fmt.Errorf("record use of API key %s: %w", id, err)
	}
	return nil
}

// AppendConsent implements guard.Tx.AppendConsent.
func (tx Tx) AppendConsent(ctx context.Context, r portrait.ConsentRecord) error {
	if err := r.Validate(); err != nil {
		return err
	}
	cats := r.Categories
	if cats == nil {
		cats = []string{}
	}
	_, err := tx.exec(ctx, appendConsentSQL, r.Pseudonym, r.Purpose, r.Status.String(), r.NoticeVersion, r.Channel, r.UserAgent, r.SealedUA, r.IP, r.Guardian,
		tx.D.List(cats), tx.D.Time(r.At), r.ConsentString, r.StringType)
	if err != nil {
		return fmt.Errorf("append consent of %s to %s: %w", r.Pseudonym, r.Purpose, err)
	}
	return tx.bump(ctx)
}

// SetFlags implements guard.Tx.SetFlags. The subject must be stored.
func (tx Tx) SetFlags(ctx context.Context, pseudonym portrait.Pseudonym, f portrait.Flags) error {
	if f.Personalization < 0 || f.Personalization > 100 {
		return portrait.Errorf(portrait.EINVALID, "set flags of %s: personalization %d is outside 0..100", pseudonym, f.Personalization)
	}
	n, err := tx.exec(ctx, setFlagsSQL, f.Minor, f.Restricted, f.ObjectProfiling, f.ObjectMarketing, f.Personalization, pseudonym)
	if err != nil {
		return fmt.Errorf("set flags of %s: %w", pseudonym, err)
	}
	if n == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "set flags: subject %s is not stored; EnsureSubjects first", pseudonym)
	}
	return tx.bump(ctx)
}

// Suppress implements guard.Tx.Suppress.
func (tx Tx) Suppress(ctx context.Context, pseudonym portrait.Pseudonym, label string, deleted bool) error {
	if pseudonym == "" || label == "" {
		return portrait.Errorf(portrait.EINVALID, "suppress: want a subject and a label")
	}
	if _, err := tx.exec(ctx, suppressSQL, pseudonym, label, deleted); err != nil {
		return fmt.Errorf("suppress label %s of %s: %w", label, pseudonym, err)
	}
	return tx.bump(ctx)
}

// Unsuppress implements guard.Tx.Unsuppress.
func (tx Tx) Unsuppress(ctx context.Context, pseudonym portrait.Pseudonym, label string) error {
	if _, err := tx.exec(ctx, unsuppressSQL, pseudonym, label); err != nil {
		return fmt.Errorf("unsuppress label %s of %s: %w", label, pseudonym, err)
	}
	return tx.bump(ctx)
}

// Suspend implements guard.Tx.Suspend.
func (tx Tx) Suspend(ctx context.Context, s policy.Suspension) error {
	if err := portrait.CheckSuspension(s); err != nil {
		return err
	}
	if s.Kind == "" || s.ID == "" {
		return portrait.Errorf(portrait.EINVALID, "suspend: want a kind (purpose, field, label, model, usecase) and an id")
	}
	at := s.At
	if at.IsZero() {
		at = time.Now()
	}
	if _, err := tx.exec(ctx, suspendSQL, s.Kind, s.ID, s.Reason, s.By, tx.D.Time(at)); err != nil {
		return fmt.Errorf("suspend %s %s: %w", s.Kind, s.ID, err)
	}
	return tx.bump(ctx)
}

// Lift implements guard.Tx.Lift.
func (tx Tx) Lift(ctx context.Context, kind, id string) error {
	n, err := tx.exec(ctx, liftSQL, kind, id)
	if err != nil {
		return fmt.Errorf("lift %s %s: %w", kind, id, err)
	}
	if n == 0 {
		return portrait.Errorf(portrait.ENOTFOUND, "lift: %s %s is not suspended", kind, id)
	}
	return tx.bump(ctx)
}
