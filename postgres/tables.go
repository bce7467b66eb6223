package postgres

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/tables"
)

// dialect is PostgreSQL's tables.Dialect: $n placeholders, lists as
// arrays, times as timestamptz.
type dialect struct{ sqls sync.Map }

var pg = new(dialect)

// SQL numbers the shared queries' ? placeholders ($1, $2, …). The shared
// queries hold no ? in a literal or an operator.
func (d *dialect) SQL(q string) string {
	if s, ok := d.sqls.Load(q); ok {
		return s.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	s := pseudonymList.ReplaceAllString(b.String(), "pseudonym IN (SELECT unnest($$$1::text[]))")
	d.sqls.Store(q, s)
	return s
}

// pseudonymList finds a shared query's list of pseudonyms, which SQL
// rewrites as a join with the array's elements. pgx prepares every
// statement, and after five runs PostgreSQL may keep a generic plan, in
// which "= ANY($1)" on a table it thinks small (a few thousand subjects)
// is a sequential scan that compares every row with every element of the
// array in turn: 10 ms for 1,000 pseudonyms against 1,000 subjects, where
// the join hashes the array once (0.6 ms) or probes the key per element,
// whatever the plan. It was a sixth of PostgreSQL's CPU under HTTP ingest
// (docs/BENCHMARKS.md, "PostgreSQL over HTTP, session 7").
var pseudonymList = regexp.MustCompile(`\bpseudonym = ANY\(\$(\d+)\)`)

func (*dialect) List(xs []string) any        { return xs }
func (*dialect) List64(xs []int64) any       { return xs }
func (*dialect) Time(t time.Time) any        { return ts(t) }
func (*dialect) StringsDest(p *[]string) any { return p }
func (*dialect) NoRows(err error) bool       { return errors.Is(err, pgx.ErrNoRows) }
func (*dialect) Unique(err error) bool       { return isUnique(err) }

// EventDeletes and EventKey: events live in one table, partitioned by
// pseudonym (migration 0030), keyed by the pseudonym's text.
func (*dialect) EventDeletes() []string                    { return []string{`DELETE FROM events WHERE pseudonym = ?`} }
func (*dialect) EventKey(pseudonym portrait.Pseudonym) any { return string(pseudonym) }

// conn is a pool or a transaction as a tables.Querier.
type conn struct{ q querier }

func (c conn) Query(ctx context.Context, query string, args ...any) (tables.Rows, error) {
	r, err := c.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (c conn) QueryRow(ctx context.Context, query string, args ...any) tables.Row {
	return c.q.QueryRow(ctx, query, args...)
}

func (c conn) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := c.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func shared(q querier) tables.DB { return tables.DB{Q: conn{q}, D: pg} }
