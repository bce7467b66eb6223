package tables

import (
	"context"
	"fmt"
	"strings"

	portrait "github.com/portrait-dev/portrait"
)

// LogSubjectIndex returns the indexes of the log records of kind that
// name pseudonym, as far as the index has been filled, and how far that
// is (entries below upto are indexed). Nothing here is verified: the
// caller checks each entry against the log (audit.Log.CheckEntries).
func (db DB) LogSubjectIndex(ctx context.Context, kind string, pseudonym portrait.Pseudonym) (idxs []int64, upto int64, err error) {
	rows, err := db.query(ctx, `SELECT upto FROM log_subjects_head WHERE kind = ?`, kind)
	if err != nil {
		return nil, 0, fmt.Errorf("read log index head: %w", err)
	}
	ups, err := collect(rows, func(r Rows) (n int64, err error) { return n, r.Scan(&n) })
	if err != nil {
		return nil, 0, fmt.Errorf("read log index head: %w", err)
	}
	if len(ups) > 0 {
		upto = ups[0]
	}
	rows, err = db.query(ctx, `SELECT idx FROM log_subjects WHERE kind = ? AND pseudonym = ? AND idx < ? ORDER BY idx`, kind, string(pseudonym), upto)
	if err != nil {
		return nil, 0, fmt.Errorf("read log index: %w", err)
	}
	idxs, err = collect(rows, func(r Rows) (n int64, err error) { return n, r.Scan(&n) })
	if err != nil {
		return nil, 0, fmt.Errorf("read log index: %w", err)
	}
	return idxs, upto, nil
}

// LogEntriesAt returns the log entries at idxs, in index order; it is an
// error if one is missing.
func (db DB) LogEntriesAt(ctx context.Context, idxs []int64) ([]portrait.LogEntry, error) {
	if len(idxs) == 0 {
		return []portrait.LogEntry{}, nil
	}
	rows, err := db.query(ctx, `SELECT idx, kind, data, hashes FROM log_entries WHERE idx = ANY(?) ORDER BY idx`, db.D.List64(idxs))
	if err != nil {
		return nil, fmt.Errorf("read log entries: %w", err)
	}
	out, err := collect(rows, scanEntry)
	if err != nil {
		return nil, fmt.Errorf("read log entries: %w", err)
	}
	if len(out) != len(idxs) {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "log entries: %d asked for, the log holds %d of them", len(idxs), len(out))
	}
	return out, nil
}

// indexRowsPerInsert keeps an insert's parameters (three a row) under
// SQLite's limit of 32,766; smaller inserts take a quarter of the rows,
// down to one.
const indexRowsPerInsert = 1024

// IndexLogSubjects adds to the index of log records by subject that the
// record of kind at idxs[i] names pseudonyms[i], and records that the
// entries of kind below upto are indexed. Rows already there are kept,
// and upto never moves back, so two nodes indexing the same entries at
// once agree.
func (t Tx) IndexLogSubjects(ctx context.Context, kind string, upto int64, pseudonyms []portrait.Pseudonym, idxs []int64) error {
	if len(pseudonyms) != len(idxs) {
		return fmt.Errorf("index log records by subject: %d pseudonyms for %d entries", len(pseudonyms), len(idxs))
	}
	for len(idxs) > 0 {
		// Statements of a few fixed sizes: the engines remember every
		// statement text they see.
		n := indexRowsPerInsert
		for n > len(idxs) {
			n /= 4
		}
		var q strings.Builder
		q.WriteString(`INSERT INTO log_subjects (kind, pseudonym, idx) VALUES `)
		args := make([]any, 0, 3*n)
		for i := range n {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?)")
			args = append(args, kind, string(pseudonyms[i]), idxs[i])
		}
		q.WriteString(` ON CONFLICT DO NOTHING`)
		if _, err := t.exec(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("index log records by subject: %w", err)
		}
		pseudonyms, idxs = pseudonyms[n:], idxs[n:]
	}
	if _, err := t.exec(ctx, `INSERT INTO log_subjects_head (kind, upto) VALUES (?, ?)
		ON CONFLICT (kind) DO UPDATE SET upto = excluded.upto WHERE log_subjects_head.upto < excluded.upto`, kind, upto); err != nil {
		return fmt.Errorf("index log records by subject: %w", err)
	}
	return nil
}
