package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/tables"
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

// labelWrites are PutLabels' arguments and order, reused from call to
// call; its upserts (one per size in labelChunks) are the engine's
// prepared statements (bulk.go), run on the driver connection of
// the commit group's transaction, whose connection a call borrows, so
// one call runs at a time.
type labelWrites struct {
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
	err := tx.g.conn.Raw(func(dc any) error { return tx.db.labels.put(ctx, &tx.db.bulk, dc, values) })
	if err != nil {
		return fmt.Errorf("put %d labels (first %s of subject %s): %w", len(values), values[0].Label, values[0].Pseudonym, err)
	}
	return nil
}

func (l *labelWrites) put(ctx context.Context, stmts *bulkStmts, dc any, values []portrait.LabelValue) error {
	l.keys = l.keys[:0]
	for i := range values {
		l.keys = append(l.keys, int32(i))
	}
	slices.SortStableFunc(l.keys, func(a, b int32) int { return tables.LabelOrder(&values[a], &values[b]) })
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
		st, err := stmts.stmt(ctx, dc, upsertLabels, n)
		if err != nil {
			return err
		}
		l.args = l.args[:0]
		for _, i := range rows {
			v := &values[i]
			l.args = appendArgs(l.args, string(v.Pseudonym), v.Label, int64(v.Version), v.Sealed, v.Computed.UnixNano(), nanos(v.Expires))
		}
		if _, err := st.(driver.StmtExecContext).ExecContext(ctx, l.args); err != nil {
			return err
		}
	}
	clear(l.args) // the sealed values are the caller's
	return nil
}
