package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
)

// rawInserts are InsertEvents' arguments, in a slice reused from one
// batch to the next, and its scratch; the statements are the engine's
// prepared ones (bulk.go). Only the group commit's leader uses them,
// inside Conn.Raw on the group's connection, the single write connection.
//
// A statement's arguments are its run, once, then each row's own
// (rowSQL): the run is the same for every row of a batch, and an event
// without an idempotency key has none, so neither is bound per row. The
// driver binds each argument on its own (a call into SQLite, and a C copy
// of every text and blob), which was 8 % of governed ingest's CPU.
type rawInserts struct {
	args []driver.NamedValue
	rows int // rows in args
	row  []driver.Value
	// InsertEvents' scratch: each event's key, the events in key order,
	// the batch's distinct keys and types as arguments.
	keys  []any
	order []int
	memo  map[string]any
}

// scratch returns InsertEvents' scratch for n events.
func (w *rawInserts) scratch(n int) (keys []any, order []int, memo map[string]any) {
	if cap(w.keys) < n {
		w.keys, w.order = make([]any, n), make([]int, n)
	}
	if w.memo == nil {
		w.memo = make(map[string]any)
	}
	return w.keys[:n], w.order[:n], w.memo
}

// clearScratch drops what the scratch refers to, keeping its memory; a
// very large batch does not leave its slices or map behind.
func (w *rawInserts) clearScratch() {
	clear(w.keys[:cap(w.keys)])
	if cap(w.keys) > 1<<14 {
		w.keys, w.order = nil, nil
	}
	if len(w.memo) > 1024 {
		w.memo = nil
	}
	clear(w.memo)
}

// begin starts a statement's arguments with the batch's run.
func (w *rawInserts) begin(run any) {
	w.args, w.rows = w.args[:0], 0
	w.args = append(w.args, driver.NamedValue{Ordinal: 1, Value: run})
}

// add appends one row's arguments after the run (rowSQL gives their
// order): the values database/sql's default conversion passed on for them
// (int64, string, []byte, nil).
func (w *rawInserts) add(vs ...any) {
	for _, v := range vs {
		w.args = append(w.args, driver.NamedValue{Ordinal: len(w.args) + 1, Value: v})
	}
	w.rows++
}

// flush writes the rows in args, as InsertEvents describes, and starts
// the next statement's arguments with the same run. A keyed row written
// marks its event inserted (first is the batch's first id).
func (w *rawInserts) flush(ctx context.Context, stmts *bulkStmts, dc any, keyed bool, first int64, inserted []bool) error {
	n := w.rows
	if n == 0 {
		return nil
	}
	defer func() { // holding no event
		run := w.args[0].Value
		clear(w.args)
		w.begin(run)
	}()
	kind := insertEvents
	if keyed {
		kind = insertKeyed
	}
	st, err := stmts.stmt(ctx, dc, kind, n)
	if err != nil {
		return fmt.Errorf("insert %d events: %w", n, err)
	}
	if keyed {
		rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, w.args)
		if err != nil {
			return fmt.Errorf("insert %d events with a key: %w", n, err)
		}
		defer rows.Close()
		if w.row == nil {
			w.row = make([]driver.Value, 1)
		}
		for {
			if err := rows.Next(w.row); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("insert %d events with a key: %w", n, err)
			}
			id, ok := w.row[0].(int64)
			if i := id - first; !ok || i < 0 || i >= int64(len(inserted)) || inserted[i] {
				return fmt.Errorf("insert %d events with a key: unexpected id %v written", n, w.row[0])
			} else {
				inserted[i] = true
			}
		}
	}
	res, err := st.(driver.StmtExecContext).ExecContext(ctx, w.args)
	if err != nil {
		return fmt.Errorf("insert %d events: %w", n, err)
	}
	if got, err := res.RowsAffected(); err != nil || got != int64(n) {
		return fmt.Errorf("insert %d events: %d written (%v)", n, got, err)
	}
	return nil
}

// rowSQL is one row of events_new's multi-row inserts: the run is
// parameter 1 in every row; an event without a key has a NULL one. Each
// plain ? is numbered one past the highest before it, so the arguments
// are the run and then the rows' own, in order.
func rowSQL(keyed bool) string {
	if keyed {
		return "(?1, ?, ?, ?, ?, ?, ?, ?)"
	}
	return "(?1, ?, ?, ?, ?, NULL, ?, ?)"
}

// insertRows is head, n rows of rowSQL(keyed) and tail.
func insertRows(head string, n int, keyed bool, tail string) string {
	row := rowSQL(keyed)
	return head + row + strings.Repeat(", "+row, n-1) + tail
}
