package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// rawInserts are InsertEvents' arguments, in a slice reused from one
// batch to the next, and its scratch; the statements are the engine's
// prepared ones (bulk.go). Only the group commit's leader uses them,
// inside Conn.Raw on the group's connection, the single write connection.
//
// A statement's arguments are the run, the type when the whole batch has
// one, then each row's own (rowShape): what is the same for every row of
// a batch is bound once, and an event without an idempotency key has none
// to bind. The driver binds each argument on its own (a call into SQLite
// under the connection's mutex, and a C copy of every text and blob,
// unbound again after the statement), which was 8 % of governed ingest's
// CPU with eight arguments a row.
type rawInserts struct {
	args   []driver.NamedValue
	shared int // arguments at the head of args that every row uses
	rows   int // rows in args
	row    []driver.Value
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

// begin starts a statement's arguments with those shared by every row:
// the run, and the type if the batch has one.
func (w *rawInserts) begin(shared ...driver.Value) {
	w.args, w.rows = w.args[:0], 0
	w.args = appendArgs(w.args, shared...)
	w.shared = len(shared)
}

// add appends one event's own arguments, in the order rowShape.row
// numbers them: its type only when the batch has several (typ is unused
// otherwise), its idempotency key only in a keyed statement. The values
// are those database/sql's default conversion passed on (int64, string,
// []byte, nil).
func (w *rawInserts) add(s rowShape, id int64, key, typ any, at int64, idem, sealed []byte, expires any) {
	w.args = appendArgs(w.args, id, key)
	if !s.oneType {
		w.args = appendArgs(w.args, typ)
	}
	w.args = appendArgs(w.args, at)
	if s.keyed {
		w.args = appendArgs(w.args, idem)
	}
	w.args = appendArgs(w.args, sealed, expires)
	w.rows++
}

// flush writes the rows in args, as InsertEvents describes, and starts
// the next statement's arguments with the same run. A keyed row written
// marks its event inserted (first is the batch's first id).
func (w *rawInserts) flush(ctx context.Context, stmts *bulkStmts, dc any, shape rowShape, first int64, inserted []bool) error {
	n := w.rows
	if n == 0 {
		return nil
	}
	defer func() { // holding no event
		var shared [2]driver.Value
		for i := range w.shared {
			shared[i] = w.args[i].Value
		}
		clear(w.args)
		w.begin(shared[:w.shared]...)
	}()
	kind, keyed := shape.kind(), shape.keyed
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

// rowShape is the form of a batch's rows in events_new's multi-row
// inserts: with or without an idempotency key, and with one type for the
// whole batch or a type per row.
type rowShape struct{ keyed, oneType bool }

func (s rowShape) kind() stmtKind {
	switch {
	case s.keyed && s.oneType:
		return insertKeyedOneType
	case s.keyed:
		return insertKeyed
	case s.oneType:
		return insertEventsOneType
	}
	return insertEvents
}

// row is one row of the statement: the run is parameter 1 in every row
// and the batch's one type parameter 2; an event without a key has a NULL
// one; the rest are the row's own parameters. A plain ? is numbered one
// past the highest before it, so the first row numbers its own from 2 or
// 3 on, and the rows after it are plain ?: the arguments are the shared
// ones and then the rows', in order, and only the first row's parameters
// have names for the driver to read.
func (s rowShape) row(first bool) string {
	var b strings.Builder
	next := 2
	if s.oneType {
		next = 3
	}
	own := func() string {
		if !first {
			return "?"
		}
		next++
		return "?" + strconv.Itoa(next-1)
	}
	b.WriteString("(?1, ")
	b.WriteString(own()) // id
	b.WriteString(", ")
	b.WriteString(own()) // pseudonym
	b.WriteString(", ")
	if s.oneType {
		b.WriteString("?2")
	} else {
		b.WriteString(own())
	}
	b.WriteString(", ")
	b.WriteString(own()) // time
	b.WriteString(", ")
	if s.keyed {
		b.WriteString(own())
	} else {
		b.WriteString("NULL")
	}
	b.WriteString(", ")
	b.WriteString(own()) // sealed
	b.WriteString(", ")
	b.WriteString(own()) // expires
	b.WriteString(")")
	return b.String()
}

// insertRows is head, n rows of shape and tail.
func insertRows(head string, n int, shape rowShape, tail string) string {
	return head + shape.row(true) + strings.Repeat(", "+shape.row(false), n-1) + tail
}
