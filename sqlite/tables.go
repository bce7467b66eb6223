package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/tables"
)

// dialect is SQLite's tables.Dialect: lists are one JSON array parameter
// expanded with json_each, times are UTC unix nanoseconds.
type dialect struct{ sqls sync.Map }

// lite is the dialect of every SQLite engine; it remembers the rewritten
// query texts, which are the keys of the prepared-statement caches.
var lite = new(dialect)

func (d *dialect) SQL(q string) string {
	if s, ok := d.sqls.Load(q); ok {
		return s.(string)
	}
	s := strings.ReplaceAll(q, "= ANY(?)", "IN (SELECT value FROM json_each(?))")
	// A write transaction is IMMEDIATE: it excludes every other writer
	// from its start, so row locks have nothing to add.
	s = strings.TrimSuffix(strings.TrimSuffix(s, " FOR UPDATE"), " FOR SHARE")
	d.sqls.Store(q, s)
	return s
}

func (*dialect) List(xs []string) any        { return list(xs) }
func (*dialect) List64(xs []int64) any       { return list64(xs) }
func (*dialect) Time(t time.Time) any        { return nanos(t) }
func (*dialect) StringsDest(p *[]string) any { return (*jsonStrings)(p) }
func (*dialect) NoRows(err error) bool       { return errors.Is(err, sql.ErrNoRows) }
func (*dialect) Unique(err error) bool       { return isUnique(err) }

// EventDeletes delete a subject's events from the clustered table and
// from every run (migration 0060), seeking the subject in each run listed
// rather than scanning them, and the subject's earliest clustered expiry
// (migration 0070); EventKey is eventKey.
func (*dialect) EventDeletes() []string {
	return []string{`DELETE FROM events WHERE pseudonym = ?`, `DELETE FROM event_expiry WHERE pseudonym = ?`,
		`DELETE FROM events_new WHERE run IN (SELECT run FROM event_runs) AND pseudonym = ?`}
}
func (*dialect) EventKey(pseudonym portrait.Pseudonym) any { return eventKey(pseudonym) }

// jsonStrings reads a list of strings stored as a JSON array.
type jsonStrings []string

func (p *jsonStrings) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case nil:
		*p = nil
		return nil
	default:
		return fmt.Errorf("scan strings: cannot read %T", v)
	}
	return json.Unmarshal(b, (*[]string)(p))
}

// rows adapts *sql.Rows to tables.Rows.
type rows struct{ *sql.Rows }

func (r rows) Close() { r.Rows.Close() }

// reads is the engine's read pool as a tables.Querier, through its cache
// of prepared statements.
type reads struct{ db *engine }

func (q reads) Query(ctx context.Context, query string, args ...any) (tables.Rows, error) {
	r, err := q.db.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (q reads) QueryRow(ctx context.Context, query string, args ...any) tables.Row {
	return q.db.queryRow(ctx, query, args...)
}

func (q reads) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return affected(q.db.read.ExecContext(ctx, query, args...))
}

// Query, QueryRow and Exec make prepared a tables.Querier over the
// transaction, running the statements prepared at Open where they are.
func (p prepared) Query(ctx context.Context, query string, args ...any) (tables.Rows, error) {
	r, err := p.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (p prepared) QueryRow(ctx context.Context, query string, args ...any) tables.Row {
	return p.QueryRowContext(ctx, query, args...)
}

func (p prepared) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return affected(p.ExecContext(ctx, query, args...))
}

func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func shared(q tables.Querier) tables.DB { return tables.DB{Q: q, D: lite} }
