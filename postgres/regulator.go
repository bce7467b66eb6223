package postgres

import (
	"context"
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
// database, on the pool.
func (db *engine) regulator() tables.Regulator {
	return tables.Regulator{Read: db.DB, Write: db.DB, InTx: db.inTx}
}

// inTx runs fn in one transaction.
func (db *engine) inTx(ctx context.Context, fn func(tables.DB) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(shared(tx)); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
