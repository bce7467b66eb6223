package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	portrait "github.com/portrait-dev/portrait"
)

// writeTx is a write transaction that holds back label deletions and
// sends them as one statement before the transaction's next statement or
// its commit, whichever comes first. Incremental derivation deletes the
// labels a subject lost one subject at a time (guard.Tx.DeleteLabels):
// under HTTP ingest those were 6,000 round trips per 100,000 events, each
// costing the node and the backend more than the delete itself. Every
// statement of the transaction runs after the deletions queued before
// it, so what any statement reads or writes is what it would have been
// had each deletion run at once; an error in the deferred statement
// fails the statement or commit that sent it, and Update rolls back.
type writeTx struct {
	pgx.Tx
	// Pending deletions, one (subject, label) pair per row.
	delSubjects, delLabels []string
}

// deleteLabels queues the deletion of a subject's labels.
func (t *writeTx) deleteLabels(pseudonym portrait.Pseudonym, labels []string) {
	for _, l := range labels {
		t.delSubjects = append(t.delSubjects, string(pseudonym))
		t.delLabels = append(t.delLabels, l)
	}
}

// flush sends the queued deletions.
func (t *writeTx) flush(ctx context.Context) error {
	if len(t.delSubjects) == 0 {
		return nil
	}
	n := len(t.delSubjects)
	_, err := t.Tx.Exec(ctx, `DELETE FROM labels l USING unnest($1::text[], $2::text[]) AS d(pseudonym, label)
		WHERE l.pseudonym = d.pseudonym AND l.label = d.label`, t.delSubjects, t.delLabels)
	t.delSubjects, t.delLabels = t.delSubjects[:0], t.delLabels[:0]
	if err != nil {
		return fmt.Errorf("delete %d labels: %w", n, err)
	}
	return nil
}

func (t *writeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.Tx.Exec(ctx, sql, args...)
}

func (t *writeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t *writeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.flush(ctx); err != nil {
		return errRow{err}
	}
	return t.Tx.QueryRow(ctx, sql, args...)
}

func (t *writeTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.Tx.CopyFrom(ctx, table, columns, src)
}

func (t *writeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.flush(ctx); err != nil {
		return errBatch{err}
	}
	return t.Tx.SendBatch(ctx, b)
}

func (t *writeTx) Commit(ctx context.Context) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	return t.Tx.Commit(ctx)
}

// errRow carries a failed flush to the caller of QueryRow, which reports
// errors through the row it returns.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// errBatch carries a failed flush to the caller of SendBatch: every
// result of the batch, and its Close, is that error.
type errBatch struct{ err error }

func (b errBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b errBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b errBatch) QueryRow() pgx.Row                { return errRow(b) }
func (b errBatch) Close() error                     { return b.err }
func (b errBatch) Tx() pgx.Tx                       { return nil } // the batch begins no transaction
