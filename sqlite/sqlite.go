package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// The pragmas are in the DSN so that the driver applies them to every
// pooled connection, not only the first. secure_delete zeroes deleted
// content so erased values do not linger in free pages (SR-3).
const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
	"&_pragma=secure_delete(ON)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)"

// DB is a Portrait store in one SQLite file.
//
// Writes go through a pool of one connection whose transactions begin
// IMMEDIATE: SQLite has a single writer anyway, and queueing in-process is
// cheaper than spinning in the busy handler. Reads use their own pool and
// see the last committed state (WAL).
type DB struct {
	path        string
	read        *sql.DB
	write       *sql.DB
	insertEvent *sql.Stmt // on write; one row, for events with an idempotency key
	insertMany  *sql.Stmt // on write; eventChunk rows, for events without one
	stmts       sync.Map  // query text → *sql.Stmt on read, prepared on first use
}

var (
	_ portrait.Store = (*DB)(nil)
	_ portrait.Tx    = (*Tx)(nil)
)

// Open opens or creates the SQLite database at path and applies any
// migration it lacks.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil, fmt.Errorf("open sqlite %q: want the path of a database file (an in-memory database cannot be shared by the read and write pools)", path)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite %q: the path must not contain '?'; Portrait sets the connection options itself", path)
	}
	db := &DB{path: path}
	var err error
	if db.write, err = sql.Open("sqlite", path+"?"+pragmas+"&_txlock=immediate"); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.write.SetMaxOpenConns(1)
	if db.read, err = sql.Open("sqlite", path+"?"+pragmas); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.read.SetMaxOpenConns(max(4, runtime.NumCPU()))
	if err := db.migrateRetry(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.insertEvent, err = db.write.PrepareContext(ctx,
		`INSERT INTO events (pseudonym, type, time, idem, sealed, expires) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err == nil {
		db.insertMany, err = db.write.PrepareContext(ctx, insertEventsSQL(eventChunk))
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: prepare: %w", path, err)
	}
	return db, nil
}

// migrateRetry runs migrate, trying again while another process holds
// the file: SQLite answers SQLITE_BUSY without calling the busy handler
// when switching a new file to WAL or when it would deadlock, so two
// processes opening one new database can collide here.
func (db *DB) migrateRetry(ctx context.Context) error {
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		err := db.migrate(ctx)
		var e *sqlite.Error
		if err == nil || !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY || wait > 2*time.Second {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// migrate applies the embedded migrations not yet recorded in
// schema_version. It runs in one IMMEDIATE transaction, so two processes
// opening the same new file apply each migration once.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a version number such as 0002_", base)
		}
		if v <= current {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied) VALUES (?, ?)`, v, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Close implements portrait.Store.Close.
func (db *DB) Close() error {
	var errs []error
	db.stmts.Range(func(_, v any) bool {
		errs = append(errs, v.(*sql.Stmt).Close())
		return true
	})
	for _, st := range []*sql.Stmt{db.insertEvent, db.insertMany} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// CheckpointWAL copies the write-ahead log into the database file and
// truncates it, so that after an erasure the WAL holds no old page images
// (SR-3). It is named apart from Checkpoint, which returns the audit log's
// signed checkpoint.
func (db *DB) CheckpointWAL(ctx context.Context) error {
	var busy, logFrames, done int
	if err := db.write.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("checkpoint wal of %s: %w", db.path, err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint wal of %s: readers kept it busy; retry", db.path)
	}
	return nil
}

// stmt returns the read-pool statement for query, preparing it once:
// parsing SQL was a visible share of a per-subject derivation.
func (db *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := db.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is QueryRowContext on a prepared statement; a preparation
// error surfaces from Scan, as database/sql does.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.stmt(ctx, query)
	if err != nil {
		return db.read.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// Update implements portrait.Store.Update.
func (db *DB) Update(ctx context.Context, fn func(portrait.Tx) error) error {
	stx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			stx.Rollback()
			panic(p)
		}
	}()
	if err := fn(&Tx{db: db, tx: stx}); err != nil {
		if rerr := stx.Rollback(); rerr != nil {
			return errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Tx is one write transaction; see portrait.Tx.
type Tx struct {
	db *DB
	tx *sql.Tx
}

// querier is what *sql.DB and *sql.Tx share, so that reads run the same
// inside and outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nanos stores t as UTC unix nanoseconds; the zero time is NULL.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// blob stores an empty byte slice as NULL.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func isUnique(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}
