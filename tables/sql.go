package tables

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// Rows is what a query returns on either engine: *sql.Rows (wrapped, as
// its Close returns an error) and pgx.Rows both fit it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Row is one row of QueryRow; *sql.Row and pgx.Row both fit it.
type Row interface {
	Scan(dest ...any) error
}

// Querier runs SQL on an engine's pool or inside its transaction. The
// query text it receives is already in the engine's dialect
// (Dialect.SQL). Exec returns the number of rows affected.
//
// An interface rather than database/sql for both engines: PostgreSQL
// keeps pgx's own pool, COPY and batches for the paths that are engine
// specific, and the shared SQL runs over the same connections.
type Querier interface {
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
	Exec(ctx context.Context, query string, args ...any) (int64, error)
}

// Dialect is what differs in the SQL text and values of the two engines.
// Shared queries are written with ? placeholders and list membership as
// "= ANY(?)", with the list passed through List.
type Dialect interface {
	// SQL rewrites a shared query into the engine's text; it is called on
	// every query, so an implementation remembers its answers.
	SQL(query string) string
	// List encodes strings as the one parameter of "= ANY(?)".
	List(xs []string) any
	// List64 is List for integers.
	List64(xs []int64) any
	// Time encodes a time parameter; the zero time is NULL.
	Time(t time.Time) any
	// StringsDest is a Scan destination for a list of strings stored in
	// one column (JSON text or a text[]).
	StringsDest(p *[]string) any
	// NoRows reports whether err says a QueryRow found no row.
	NoRows(err error) bool
	// Unique reports whether err is a unique-key violation.
	Unique(err error) bool
	// EventDeletes are the statements that delete a subject's events,
	// each with the subject's EventKey as its one parameter: SQLite writes
	// events in sorted runs and clusters them into another table, and a
	// subject's events may be in both.
	EventDeletes() []string
	// EventKey is how the event tables store a pseudonym (SQLite keeps a
	// hexadecimal one as its bytes).
	EventKey(pseudonym portrait.Pseudonym) any
}

// Time is a Scan destination for a time column of either engine: UTC
// unix nanoseconds (SQLite) or a timestamptz (PostgreSQL); NULL is the
// zero time, and the time read is in UTC.
func Time(p *time.Time) sql.Scanner { return (*timeDest)(p) }

type timeDest time.Time

func (d *timeDest) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*d = timeDest{}
	case int64:
		*d = timeDest(time.Unix(0, v).UTC())
	case time.Time:
		*d = timeDest(v.UTC())
	default:
		return fmt.Errorf("scan time: cannot read %T", v)
	}
	return nil
}

// DB is the SQL the two engines share, run through q in dialect d. An
// engine embeds it, over its read pool, so that its methods implement
// those of guard.Engine; a transaction makes one over itself.
type DB struct {
	Q Querier
	D Dialect
}

func (db DB) query(ctx context.Context, query string, args ...any) (Rows, error) {
	return db.Q.Query(ctx, db.D.SQL(query), args...)
}

func (db DB) queryRow(ctx context.Context, query string, args ...any) Row {
	return db.Q.QueryRow(ctx, db.D.SQL(query), args...)
}

func (db DB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	return db.Q.Exec(ctx, db.D.SQL(query), args...)
}

// queryAll runs query and reads every row with scan; an error says what
// was being read.
func queryAll[T any](ctx context.Context, db DB, what string, scan func(Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := collect(rows, scan)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// collect reads every row of rows with scan, closing rows.
func collect[T any](rows Rows, scan func(Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
