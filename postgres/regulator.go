package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/regulator"
)

var _ regulator.Store = (*DB)(nil)

// regulatorTables holds the regulator node's tables (regulator.Store,
// regulator.OrderStore): they hold no personal data, so no grant guards them.
type regulatorTables struct{ db *engine }

const companyCols = `id, name, token_hash, created, coalesce(origin, ''), log_key, receipt_key, catalog_digest, algorithms, size, checkpoint, contact`

func scanCompany(sc interface{ Scan(...any) error }) (regulator.Company, error) {
	var c regulator.Company
	var contact *time.Time
	err := sc.Scan(&c.ID, &c.Name, &c.TokenHash, &c.Created, &c.Origin, &c.LogKey, &c.ReceiptKey, &c.CatalogDigest,
		(*[]byte)(&c.Algorithms), &c.Size, &c.Checkpoint, &contact)
	if contact != nil {
		c.Contact = contact.UTC()
	}
	c.Created = c.Created.UTC()
	return c, err
}

// PutCompany implements regulator.Store.PutCompany.
func (t regulatorTables) PutCompany(ctx context.Context, c regulator.Company) error {
	_, err := t.db.pool.Exec(ctx, `INSERT INTO reg_companies (id, name, token_hash, created) VALUES ($1, $2, $3, $4)`,
		c.ID, c.Name, c.TokenHash, c.Created)
	if isUnique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "company %s is already enrolled", c.ID)
	} else if err != nil {
		return fmt.Errorf("enrol company: %w", err)
	}
	return nil
}

// Company implements regulator.Store.Company.
func (t regulatorTables) Company(ctx context.Context, id string) (regulator.Company, error) {
	return t.company(ctx, "id", id)
}

// CompanyBy implements regulator.Store.CompanyBy.
func (t regulatorTables) CompanyBy(ctx context.Context, field string, value []byte) (regulator.Company, error) {
	switch field {
	case "token":
		return t.company(ctx, "token_hash", value)
	case "origin":
		return t.company(ctx, "origin", string(value))
	}
	return regulator.Company{}, fmt.Errorf("company by %q: no such field", field)
}

func (t regulatorTables) company(ctx context.Context, col string, v any) (regulator.Company, error) {
	c, err := scanCompany(t.db.pool.QueryRow(ctx, `SELECT `+companyCols+` FROM reg_companies WHERE `+col+` = $1`, v))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, portrait.Errorf(portrait.ENOTFOUND, "no such company")
	} else if err != nil {
		return c, fmt.Errorf("read company: %w", err)
	}
	return c, nil
}

// Companies implements regulator.Store.Companies.
func (t regulatorTables) Companies(ctx context.Context) ([]regulator.Company, error) {
	rows, err := t.db.pool.Query(ctx, `SELECT `+companyCols+` FROM reg_companies ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("read companies: %w", err)
	}
	defer rows.Close()
	var out []regulator.Company
	for rows.Next() {
		c, err := scanCompany(rows)
		if err != nil {
			return nil, fmt.Errorf("read companies: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// FileCompany implements regulator.Store.FileCompany.
func (t regulatorTables) FileCompany(ctx context.Context, id string, f regulator.Filing, at time.Time) error {
	res, err := t.db.pool.Exec(ctx, `UPDATE reg_companies SET origin = $1, log_key = $2, receipt_key = $3, catalog_digest = $4, algorithms = $5, contact = $6 WHERE id = $7`,
		f.Origin, f.LogKey, f.ReceiptKey, f.CatalogDigest, []byte(f.Algorithms), at, id)
	if isUnique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "log origin %q is filed by another company", f.Origin)
	} else if err != nil {
		return fmt.Errorf("file company %s: %w", id, err)
	}
	if res.RowsAffected() != 1 {
		return portrait.Errorf(portrait.ENOTFOUND, "no such company")
	}
	return nil
}

// Witness implements regulator.Store.Witness.
func (t regulatorTables) Witness(ctx context.Context, id string, old, size int64, cp []byte, at time.Time) error {
	res, err := t.db.pool.Exec(ctx, `UPDATE reg_companies SET size = $1, checkpoint = $2, contact = $3 WHERE id = $4 AND size = $5`,
		size, cp, at, id, old)
	if err != nil {
		return fmt.Errorf("witness %s: %w", id, err)
	}
	if res.RowsAffected() != 1 {
		return portrait.Errorf(portrait.ECONFLICT, "the witnessed size of company %s is no longer %d", id, old)
	}
	return nil
}

// PutMirror implements regulator.Store.PutMirror.
func (t regulatorTables) PutMirror(ctx context.Context, id string, from int64, entries []portrait.LogEntry) (err error) {
	tx, err := t.db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("mirror %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(ctx)
		}
	}()
	var witnessed, n int64
	// FOR UPDATE serialises uploads of one company across nodes.
	if err := tx.QueryRow(ctx, `SELECT size, (SELECT count(*) FROM reg_mirror WHERE company = $1) FROM reg_companies WHERE id = $2 FOR UPDATE`, id, id).Scan(&witnessed, &n); errors.Is(err, pgx.ErrNoRows) {
		return portrait.Errorf(portrait.ENOTFOUND, "no such company")
	} else if err != nil {
		return fmt.Errorf("mirror %s: %w", id, err)
	}
	if from < witnessed || from > n {
		return portrait.Errorf(portrait.ECONFLICT, "mirror upload at %d: want an index from the witnessed size %d to the mirror size %d", from, witnessed, n)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM reg_mirror WHERE company = $1 AND idx >= $2`, id, from); err != nil {
		return fmt.Errorf("mirror %s: %w", id, err)
	}
	for i, e := range entries {
		if e.Index != from+int64(i) {
			return portrait.Errorf(portrait.EINVALID, "mirror upload: entry %d has index %d, want %d", i, e.Index, from+int64(i))
		}
		if _, err := tx.Exec(ctx, `INSERT INTO reg_mirror (company, idx, data, hashes) VALUES ($1, $2, $3, $4)`, id, e.Index, e.Data, e.Hashes); err != nil {
			return fmt.Errorf("mirror %s entry %d: %w", id, e.Index, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("mirror %s: %w", id, err)
	}
	return nil
}

// MirrorSize implements regulator.Store.MirrorSize.
func (t regulatorTables) MirrorSize(ctx context.Context, id string) (int64, error) {
	var n int64
	if err := t.db.pool.QueryRow(ctx, `SELECT count(*) FROM reg_mirror WHERE company = $1`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("mirror size %s: %w", id, err)
	}
	return n, nil
}

// MirrorEntries implements regulator.Store.MirrorEntries.
func (t regulatorTables) MirrorEntries(ctx context.Context, id string, from, to int64) ([]portrait.LogEntry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "mirror entries [%d, %d): want 0 <= from <= to", from, to)
	}
	rows, err := t.db.pool.Query(ctx, `SELECT idx, data, hashes FROM reg_mirror WHERE company = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`, id, from, to)
	if err != nil {
		return nil, fmt.Errorf("read mirror: %w", err)
	}
	defer rows.Close()
	out := make([]portrait.LogEntry, 0, min(to-from, 1<<16))
	for rows.Next() {
		var e portrait.LogEntry
		if err := rows.Scan(&e.Index, &e.Data, &e.Hashes); err != nil {
			return nil, fmt.Errorf("read mirror: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read mirror: %w", err)
	}
	if int64(len(out)) != to-from {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "mirror entries [%d, %d): the mirror holds only %d of them", from, to, len(out))
	}
	return out, nil
}

// MirrorHashes implements regulator.Store.MirrorHashes.
func (t regulatorTables) MirrorHashes(ctx context.Context, id string, indexes []int64) ([][32]byte, error) {
	recs, err := audit.HashRecords(indexes)
	if err != nil || len(recs) == 0 {
		return make([][32]byte, len(indexes)), err
	}
	rows, err := t.db.pool.Query(ctx, `SELECT idx, hashes FROM reg_mirror WHERE company = $1 AND idx = ANY($2)`, id, recs)
	if err != nil {
		return nil, fmt.Errorf("read mirror hashes: %w", err)
	}
	defer rows.Close()
	m := make(map[int64][]byte, len(recs))
	for rows.Next() {
		var idx int64
		var h []byte
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, fmt.Errorf("read mirror hashes: %w", err)
		}
		m[idx] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read mirror hashes: %w", err)
	}
	return audit.PickHashes(indexes, m)
}

// PutOrder implements regulator.OrderStore.PutOrder.
func (t regulatorTables) PutOrder(ctx context.Context, o regulator.OrderRecord) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if _, err := t.db.pool.Exec(ctx, `INSERT INTO reg_orders (id, company, created, body) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body`, o.ID, o.Company, o.Issued, body); err != nil {
		return fmt.Errorf("put order %s: %w", o.ID, err)
	}
	return nil
}

// Order implements regulator.OrderStore.Order.
func (t regulatorTables) Order(ctx context.Context, id string) (regulator.OrderRecord, error) {
	var body []byte
	var o regulator.OrderRecord
	err := t.db.pool.QueryRow(ctx, `SELECT body FROM reg_orders WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, portrait.Errorf(portrait.ENOTFOUND, "no order %s", id)
	} else if err != nil {
		return o, fmt.Errorf("read order: %w", err)
	}
	return o, json.Unmarshal(body, &o)
}

// Orders implements regulator.OrderStore.Orders.
func (t regulatorTables) Orders(ctx context.Context, company string) ([]regulator.OrderRecord, error) {
	rows, err := t.db.pool.Query(ctx, `SELECT body FROM reg_orders WHERE company = $1 ORDER BY created, id`, company)
	if err != nil {
		return nil, fmt.Errorf("read orders: %w", err)
	}
	defer rows.Close()
	out := []regulator.OrderRecord{}
	for rows.Next() {
		var body []byte
		var o regulator.OrderRecord
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("read orders: %w", err)
		}
		if err := json.Unmarshal(body, &o); err != nil {
			return nil, fmt.Errorf("read orders: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
