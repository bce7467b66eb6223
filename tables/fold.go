package tables

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
)

// rowsChunk is how many rows one multi-row INSERT of EnsureSubjects or
// PutItems carries: one statement, one round trip on PostgreSQL. SQLite
// has the one-row and the full statement prepared at Open (WriteSQL).
const rowsChunk = 64

// The heads of the multi-row INSERTs; InsertRows completes them.
const (
	ensureSubjectsHead = `INSERT INTO subjects (pseudonym, wrapped_key, sealed_id, created) VALUES `
	ensureSubjectsTail = ` ON CONFLICT DO NOTHING`
	putItemsHead       = `INSERT INTO items (id, categories, attributes, price, updated) VALUES `
	putItemsTail       = `
	ON CONFLICT (id) DO UPDATE SET categories = excluded.categories, attributes = excluded.attributes, price = excluded.price, updated = excluded.updated`
	saveCheckpointSQL = `INSERT INTO checkpoints (note, created) VALUES (?, ?)`
)

// InsertRows returns head, n rows of cols placeholders, then tail.
func InsertRows(head string, n, cols int, tail string) string {
	row := "(?" + strings.Repeat(", ?", cols-1) + ")"
	return head + row + strings.Repeat(", "+row, n-1) + tail
}

// foldSQL are the statements of the writes below with a fixed text.
var foldSQL = []string{
	InsertRows(ensureSubjectsHead, 1, 4, ensureSubjectsTail), InsertRows(ensureSubjectsHead, rowsChunk, 4, ensureSubjectsTail),
	InsertRows(putItemsHead, 1, 5, putItemsTail), InsertRows(putItemsHead, rowsChunk, 5, putItemsTail),
	saveCheckpointSQL,
}

// EnsureSubjects implements guard.Tx.EnsureSubjects: a subject already
// stored keeps its first key.
func (tx Tx) EnsureSubjects(ctx context.Context, subjects []portrait.SubjectKey) error {
	for _, s := range subjects {
		if s.Pseudonym == "" || len(s.WrappedKey) == 0 {
			return portrait.Errorf(portrait.EINVALID, "ensure subject %q: a subject needs a pseudonym and a wrapped data key", s.Pseudonym)
		}
	}
	now := time.Now()
	for len(subjects) > 0 {
		n := min(len(subjects), rowsChunk)
		args := make([]any, 0, 4*n)
		for _, s := range subjects[:n] {
			created := s.Created
			if created.IsZero() {
				created = now
			}
			args = append(args, s.Pseudonym, s.WrappedKey, s.SealedID, tx.D.Time(created))
		}
		if _, err := tx.exec(ctx, InsertRows(ensureSubjectsHead, n, 4, ensureSubjectsTail), args...); err != nil {
			return fmt.Errorf("ensure %d subjects (first %s): %w", n, subjects[0].Pseudonym, err)
		}
		subjects = subjects[n:]
	}
	return nil
}

// PutItems implements guard.Tx.PutItems. An item given twice keeps its
// last version, as one-by-one upserts would (PostgreSQL refuses to
// upsert a row twice in one statement).
func (tx Tx) PutItems(ctx context.Context, items []portrait.Item) error {
	last := make(map[string]int, len(items))
	for i, it := range items {
		if err := it.Validate(); err != nil {
			return err
		}
		if it.ID == "" {
			return portrait.Errorf(portrait.EINVALID, "put items: an item has no id")
		}
		last[it.ID] = i
	}
	args := make([]any, 0, 5*min(len(last), rowsChunk))
	flush := func() error {
		n := len(args) / 5
		if n == 0 {
			return nil
		}
		if _, err := tx.exec(ctx, InsertRows(putItemsHead, n, 5, putItemsTail), args...); err != nil {
			return fmt.Errorf("put %d items (first %v): %w", n, args[0], err)
		}
		args = args[:0]
		return nil
	}
	for i, it := range items {
		if last[it.ID] != i {
			continue
		}
		cats, attrs := it.Categories, it.Attributes
		if cats == nil {
			cats = []string{}
		}
		if attrs == nil {
			attrs = map[string]any{}
		}
		ab, err := json.Marshal(attrs)
		if err != nil {
			return portrait.Errorf(portrait.EINVALID, "put item %s: attributes must be JSON values: %v", it.ID, err)
		}
		args = append(args, it.ID, tx.D.List(cats), string(ab), it.Price, tx.D.Time(it.Updated))
		if len(args) == 5*rowsChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// SaveCheckpoint implements guard.Tx.SaveCheckpoint.
func (tx Tx) SaveCheckpoint(ctx context.Context, note []byte) error {
	if len(note) == 0 {
		return portrait.Errorf(portrait.EINVALID, "save checkpoint: the note is empty")
	}
	if _, err := tx.exec(ctx, saveCheckpointSQL, note, tx.D.Time(time.Now())); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// EndSessions implements guard.Tx.EndSessions. Records past their keep
// time go first: nothing they ended could still be valid. Ending a
// session again keeps the later of the two times.
func (tx Tx) EndSessions(ctx context.Context, id []byte, issuedBefore, keepUntil time.Time) error {
	if len(id) == 0 {
		return fmt.Errorf("end sessions: no session id")
	}
	if _, err := tx.exec(ctx, `DELETE FROM ended_sessions WHERE keep_until < ?`, time.Now().Unix()); err != nil {
		return fmt.Errorf("end sessions: prune: %w", err)
	}
	_, err := tx.exec(ctx, `INSERT INTO ended_sessions (id, issued_before, keep_until) VALUES (?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET
		issued_before = CASE WHEN excluded.issued_before > ended_sessions.issued_before THEN excluded.issued_before ELSE ended_sessions.issued_before END,
		keep_until = CASE WHEN excluded.keep_until > ended_sessions.keep_until THEN excluded.keep_until ELSE ended_sessions.keep_until END`,
		id, issuedBefore.Unix(), keepUntil.Unix())
	if err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// SessionEnded implements guard.Engine.SessionEnded, in one query. The
// ids are bytes, which SQLite's JSON lists cannot carry, so they are
// bound one parameter each.
func (db DB) SessionEnded(ctx context.Context, issued time.Time, ids ...[]byte) (bool, error) {
	if len(ids) == 0 {
		return false, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, issued.Unix())
	for _, id := range ids {
		args = append(args, id)
	}
	q := `SELECT EXISTS (SELECT 1 FROM ended_sessions WHERE issued_before >= ? AND id IN (?` + strings.Repeat(`, ?`, len(ids)-1) + `))`
	var ended bool
	if err := db.queryRow(ctx, q, args...).Scan(&ended); err != nil {
		return false, fmt.Errorf("read ended sessions: %w", err)
	}
	return ended, nil
}
