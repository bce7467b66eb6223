package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
	"github.com/portrait-dev/portrait/tables"
)

//go:embed migrations/*.sql
var migrations embed.FS

// engine runs Portrait's SQL on a PostgreSQL database (guard.Engine);
// Open returns it guarded, as a DB.
type engine struct {
	tables.DB // the shared SQL, over the pool
	pool      *pgxpool.Pool
	// floor bounds EventsAfter's scan by id (after.go).
	floor idFloor
}

var (
	_ guard.Engine = (*engine)(nil)
	_ guard.Tx     = (*txn)(nil)
)

// DB is a Portrait store in a PostgreSQL database, shared by any number of
// stateless nodes: the engine behind the guard, which checks every grant
// (invariant 2), with the regulator's tables beside it.
type DB struct {
	*guard.Store
	tables.Regulator
}

var _ portrait.Store = (*DB)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// DSN; pgx options such as pool_max_conns and run-time parameters such as
// search_path may be added) and applies any migration it lacks.
func Open(ctx context.Context, url string) (*DB, error) {
	e, err := open(ctx, url)
	if err != nil {
		return nil, err
	}
	return &DB{Store: guard.New(e), Regulator: e.regulator()}, nil
}

func open(ctx context.Context, url string) (*engine, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w (want a URL such as postgres://user@host/db)", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db := &engine{DB: shared(pool), pool: pool}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return db, nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_version. An advisory lock keyed by the schema serialises nodes
// that start together, so each migration runs once.
func (db *engine) migrate(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('portrait migrate ' || current_schema()))`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := shared(tx).Migrate(ctx, migrations); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close implements guard.Engine.Close.
func (db *engine) Close() error {
	db.pool.Close()
	return nil
}

// Update implements guard.Engine.Update.
func (db *engine) Update(ctx context.Context, fn func(guard.Tx) error) error {
	ptx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			ptx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
	}()
	wtx := &writeTx{Tx: ptx}
	if err := fn(&txn{Tx: tables.Tx{DB: shared(wtx)}, tx: wtx}); err != nil {
		if rerr := ptx.Rollback(context.WithoutCancel(ctx)); rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return err
	}
	if err := wtx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// txn is one write transaction (guard.Tx): the shared SQL over it, and
// the writes that are PostgreSQL's own.
type txn struct {
	tables.Tx
	tx *writeTx
	// head is the log's size in the transaction, once read (known).
	head  int64
	known bool
	// xid is set once the transaction surely has a transaction id (a row
	// it locked or wrote): InsertEvents takes one first otherwise.
	xid bool
}

// querier is what the pool and a transaction share, so that reads run the
// same inside and outside a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ts stores the zero time as NULL.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromTS reads a nullable timestamptz as a UTC time, NULL as the zero time.
func fromTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// blob stores an empty byte slice as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func isUnique(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23505"
}
