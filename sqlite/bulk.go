package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
)

// bulkStmts are the bulk writes' statements as the driver's own, prepared
// on the write connection's driver connection (database/sql's Conn.Raw)
// once per kind and row count and kept there: through database/sql each
// statement boxed and converted its arguments again, and a batch's last,
// shorter statement was parsed again. The event inserts (insert.go) and
// the label upserts (labels.go) run from here, inside a commit group's
// transaction, on the single write connection.
//
// Close must finalise them before it closes that connection: SQLite keeps
// a connection with statements not finalised open (sqlite3_close_v2), and
// with it the write-ahead log, which the last connection to close
// otherwise checkpoints and removes.
type bulkStmts struct {
	mu   sync.Mutex // the map against Close
	conn any        // the driver connection they were prepared on
	by   map[stmtKey]driver.Stmt
}

// stmtKey names a kept statement: what it writes, and how many rows.
type stmtKey struct {
	kind stmtKind
	rows int
}

type stmtKind uint8

const (
	insertEvents        stmtKind = iota // insertEventsSQL
	insertKeyed                         // insertIdemSQL
	insertEventsOneType                 // insertEventsSQL, one type
	insertKeyedOneType                  // insertIdemSQL, one type
	upsertLabels                        // putLabelsSQL
)

var kindSQL = [...]func(rows int) string{
	insertEvents:        func(n int) string { return insertEventsSQL(n, rowShape{}) },
	insertKeyed:         func(n int) string { return insertIdemSQL(n, rowShape{keyed: true}) },
	insertEventsOneType: func(n int) string { return insertEventsSQL(n, rowShape{oneType: true}) },
	insertKeyedOneType:  func(n int) string { return insertIdemSQL(n, rowShape{keyed: true, oneType: true}) },
	upsertLabels:        putLabelsSQL,
}

// stmt returns the statement of kind for rows rows on dc, preparing it on
// first use. A new connection (database/sql replaced a broken one) drops
// the statements of the old, which closed with it.
func (p *bulkStmts) stmt(ctx context.Context, dc any, kind stmtKind, rows int) (driver.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != dc {
		p.conn, p.by = dc, map[stmtKey]driver.Stmt{}
	}
	k := stmtKey{kind, rows}
	if st := p.by[k]; st != nil {
		return st, nil
	}
	prep, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("driver connection %T cannot prepare with a context", dc)
	}
	st, err := prep.PrepareContext(ctx, kindSQL[kind](rows))
	if err != nil {
		return nil, err
	}
	_, execs := st.(driver.StmtExecContext)
	_, queries := st.(driver.StmtQueryContext)
	if !execs || !queries {
		st.Close()
		return nil, fmt.Errorf("driver statement %T cannot execute and query with a context", st)
	}
	p.by[k] = st
	return st, nil
}

// close finalises the statements; the engine is closing, and its write
// connection is idle.
func (p *bulkStmts) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, st := range p.by {
		errs = append(errs, st.Close())
	}
	p.conn, p.by = nil, nil
	return errors.Join(errs...)
}

// appendArgs appends vs to a bulk statement's arguments, numbered on from
// those already there.
func appendArgs(args []driver.NamedValue, vs ...driver.Value) []driver.NamedValue {
	for _, v := range vs {
		args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: v})
	}
	return args
}
