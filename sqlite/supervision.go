package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/regulator"
)

var _ regulator.Docs = (*DB)(nil)

// PutDoc implements regulator.Docs.PutDoc.
func (t regulatorTables) PutDoc(ctx context.Context, d regulator.Doc) error {
	if _, err := t.db.write.ExecContext(ctx, `INSERT INTO reg_docs (kind, id, company, created, body) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`, d.Kind, d.ID, d.Company, nanos(d.Created), d.Body); err != nil {
		return fmt.Errorf("put %s %s: %w", d.Kind, d.ID, err)
	}
	return nil
}

// Doc implements regulator.Docs.Doc.
func (t regulatorTables) Doc(ctx context.Context, kind, id string) (regulator.Doc, error) {
	d := regulator.Doc{Kind: kind, ID: id}
	var created sql.NullInt64
	err := t.db.queryRow(ctx, `SELECT company, created, body FROM reg_docs WHERE kind = ? AND id = ?`, kind, id).Scan(&d.Company, &created, &d.Body)
	if errors.Is(err, sql.ErrNoRows) {
		return d, portrait.Errorf(portrait.ENOTFOUND, "no %s %s", kind, id)
	} else if err != nil {
		return d, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	d.Created = fromNanos(created)
	return d, nil
}

// Docs implements regulator.Docs.Docs.
func (t regulatorTables) Docs(ctx context.Context, kind, company string) ([]regulator.Doc, error) {
	rows, err := t.db.query(ctx, `SELECT id, company, created, body FROM reg_docs WHERE kind = ? AND (? = '' OR company = ?) ORDER BY created, id`, kind, company, company)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, err)
	}
	defer rows.Close()
	out := []regulator.Doc{}
	for rows.Next() {
		d := regulator.Doc{Kind: kind}
		var created sql.NullInt64
		if err := rows.Scan(&d.ID, &d.Company, &created, &d.Body); err != nil {
			return nil, fmt.Errorf("read %s: %w", kind, err)
		}
		d.Created = fromNanos(created)
		out = append(out, d)
	}
	return out, rows.Err()
}
