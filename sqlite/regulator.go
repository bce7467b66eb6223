package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/tables"
)

var (
	_ regulator.Store      = (*DB)(nil)
	_ regulator.OrderStore = (*DB)(nil)
	_ regulator.Docs       = (*DB)(nil)
)

// regulator is the regulator node's tables (tables.Regulator) in this
// file: reads on the read pool, writes on the write pool outside the
// commit groups, which Portrait's own Update runs.
func (db *engine) regulator() tables.Regulator {
	return tables.Regulator{Read: db.DB, Write: shared(plain{db.write}), InTx: db.inTx}
}

// inTx runs fn in one IMMEDIATE transaction on the write pool.
func (db *engine) inTx(ctx context.Context, fn func(tables.DB) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(shared(plain{tx})); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// plain is a *sql.DB or *sql.Tx as a tables.Querier, parsing every
// statement: the regulator's writes are rare.
type plain struct{ q querier }

func (p plain) Query(ctx context.Context, query string, args ...any) (tables.Rows, error) {
	r, err := p.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (p plain) QueryRow(ctx context.Context, query string, args ...any) tables.Row {
	return p.q.QueryRowContext(ctx, query, args...)
}

func (p plain) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return affected(p.q.ExecContext(ctx, query, args...))
}

var _ querier = (*sql.Tx)(nil)
