package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	portrait "github.com/portrait-dev/portrait"
)

// labelChunks are the row counts of the label upserts, largest first:
// PutLabels writes a batch as few statements as these sizes allow (1,000
// values: three of 256, seven of 32, two of 4), and so keeps four
// statements prepared, whatever the sizes of the batches. 256 rows bind
// 1,536 values, well under SQLite's limit of 32,766.
var labelChunks = [...]int{256, 32, 4, 1}

// putLabelsSQL upserts n rows bound as parameters, in order: SQLite
// applies a multi-row upsert row by row, so a repeated (subject, label)
// keeps the last value, as one-by-one upserts would.
func putLabelsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO labels (pseudonym, label, version, sealed, computed, expires) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (pseudonym, label) DO UPDATE SET version = excluded.version, sealed = excluded.sealed, computed = excluded.computed, expires = excluded.expires`)
	return b.String()
}

// labelStmts are PutLabels' upserts (one per size in labelChunks), prepared on the write connection's
// driver connection (database/sql's Conn.Raw, the technique of the batch
// read, ScanEvents) and kept there: each statement by its row count, the
// connection they belong to, and the arguments, reused from call to
// call. A call runs inside a commit group's transaction, whose
// connection it borrows, so one call runs at a time; the mutex only
// keeps Close from racing one.
type labelStmts struct {
	mu   sync.Mutex
	conn any                 // the driver connection the statements are prepared on
	by   map[int]driver.Stmt // by row count
	args []driver.NamedValue
	keys []int32 // the values' order, by key
}

// PutLabels implements guard.Tx.PutLabels (the guard has checked that
// each value's grant allows Derive for its subject). A derivation page
// writes thousands of values. They go in key order — (subject, label),
// the table's key — so that a page's rows, whose subjects are
// consecutive, fill each leaf of the table once instead of being
// scattered over the leaves of the subjects in the page in the order
// the labels were computed; the order is stable, so a (subject, label)
// repeated in the batch still keeps its last value. And they go in
// through the driver connection itself: each value is bound as the
// driver's own value, with no database/sql conversion, boxing or
// statement lookup per row.
func (tx *txn) PutLabels(ctx context.Context, values []portrait.LabelValue) error {
	if len(values) == 0 {
		return nil
	}
	err := tx.g.conn.Raw(func(dc any) error { return tx.db.labels.put(ctx, dc, values) })
	if err != nil {
		return fmt.Errorf("put %d labels (first %s of subject %s): %w", len(values), values[0].Label, values[0].Pseudonym, err)
	}
	return nil
}

func (l *labelStmts) put(ctx context.Context, dc any, values []portrait.LabelValue) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != dc {
		// A new connection (the first call, or database/sql replaced a
		// broken one): the statements of the old are dropped with it.
		l.conn, l.by = dc, map[int]driver.Stmt{}
	}
	l.keys = l.keys[:0]
	for i := range values {
		l.keys = append(l.keys, int32(i))
	}
	slices.SortStableFunc(l.keys, func(a, b int32) int {
		va, vb := &values[a], &values[b]
		return cmp.Or(strings.Compare(string(va.Pseudonym), string(vb.Pseudonym)), strings.Compare(va.Label, vb.Label))
	})
	for at := 0; at < len(l.keys); {
		n := labelChunks[len(labelChunks)-1]
		for _, c := range labelChunks {
			if c <= len(l.keys)-at {
				n = c
				break
			}
		}
		rows := l.keys[at : at+n]
		at += n
		st, err := l.stmt(ctx, dc, n)
		if err != nil {
			return err
		}
		l.args = l.args[:0]
		for _, i := range rows {
			v := &values[i]
			var expires driver.Value
			if !v.Expires.IsZero() {
				expires = v.Expires.UnixNano()
			}
			n := len(l.args)
			l.args = append(l.args,
				driver.NamedValue{Ordinal: n + 1, Value: string(v.Pseudonym)},
				driver.NamedValue{Ordinal: n + 2, Value: v.Label},
				driver.NamedValue{Ordinal: n + 3, Value: int64(v.Version)},
				driver.NamedValue{Ordinal: n + 4, Value: v.Sealed},
				driver.NamedValue{Ordinal: n + 5, Value: v.Computed.UnixNano()},
				driver.NamedValue{Ordinal: n + 6, Value: expires})
		}
		if _, err := st.(driver.StmtExecContext).ExecContext(ctx, l.args); err != nil {
			return err
		}
	}
	clear(l.args) // the sealed values are the caller's
	return nil
}

// stmt returns the upsert of n rows on dc, preparing it on first use.
func (l *labelStmts) stmt(ctx context.Context, dc any, n int) (driver.Stmt, error) {
	if st := l.by[n]; st != nil {
		return st, nil
	}
	prep, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("driver connection %T cannot prepare with a context", dc)
	}
	st, err := prep.PrepareContext(ctx, putLabelsSQL(n))
	if err != nil {
		return nil, err
	}
	if _, ok := st.(driver.StmtExecContext); !ok {
		st.Close()
		return nil, fmt.Errorf("driver statement %T cannot execute with a context", st)
	}
	l.by[n] = st
	return st, nil
}

// close finalizes the statements on their connection, before Close
// closes it: SQLite keeps a connection with statements not finalized
// open (sqlite3_close_v2), and with it the write-ahead log.
func (l *labelStmts) close(ctx context.Context, write *sql.DB) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.by) == 0 {
		return nil
	}
	conn, err := write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("close label statements: %w", err)
	}
	defer conn.Close()
	var errs []error
	err = conn.Raw(func(dc any) error {
		if dc != l.conn {
			return nil // that connection is gone, and its statements with it
		}
		for _, st := range l.by {
			errs = append(errs, st.Close())
		}
		return nil
	})
	l.conn, l.by = nil, nil
	return errors.Join(append(errs, err)...)
}
