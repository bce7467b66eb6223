package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/regulator"
)

var _ regulator.Docs = (*DB)(nil)

// PutDoc implements regulator.Docs.PutDoc.
func (t regulatorTables) PutDoc(ctx context.Context, d regulator.Doc) error {
	if _, err := t.db.pool.Exec(ctx, `INSERT INTO reg_docs (kind, id, company, created, body) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`, d.Kind, d.ID, d.Company, d.Created, d.Body); err != nil {
		return fmt.Errorf("put %s %s: %w", d.Kind, d.ID, err)
	}
	return nil
}

// Doc implements regulator.Docs.Doc.
func (t regulatorTables) Doc(ctx context.Context, kind, id string) (regulator.Doc, error) {
	d := regulator.Doc{Kind: kind, ID: id}
	err := t.db.pool.QueryRow(ctx, `SELECT company, created, body FROM reg_docs WHERE kind = $1 AND id = $2`, kind, id).Scan(&d.Company, &d.Created, &d.Body)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, portrait.Errorf(portrait.ENOTFOUND, "no %s %s", kind, id)
	} else if err != nil {
		return d, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	d.Created = d.Created.UTC()
	return d, nil
}

// Docs implements regulator.Docs.Docs.
func (t regulatorTables) Docs(ctx context.Context, kind, company string) ([]regulator.Doc, error) {
	rows, err := t.db.pool.Query(ctx, `SELECT id, company, created, body FROM reg_docs WHERE kind = $1 AND ($2 = '' OR company = $2) ORDER BY created, id`, kind, company)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, err)
	}
	defer rows.Close()
	out := []regulator.Doc{}
	for rows.Next() {
		d := regulator.Doc{Kind: kind}
		if err := rows.Scan(&d.ID, &d.Company, &d.Created, &d.Body); err != nil {
			return nil, fmt.Errorf("read %s: %w", kind, err)
		}
		d.Created = d.Created.UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}
