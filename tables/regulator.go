package tables

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/regulator"
)

// Regulator holds the regulator node's tables (regulator.Store,
// regulator.OrderStore, regulator.Docs): they hold no personal data, so
// no grant guards them. An engine's DB embeds it.
type Regulator struct {
	Read  DB // the read pool
	Write DB // writes, each committed on its own
	// InTx runs fn in one write transaction, committed if fn returns nil.
	InTx func(ctx context.Context, fn func(DB) error) error
}

const companyCols = `id, name, token_hash, created, coalesce(origin, ''), log_key, receipt_key, catalog_digest, algorithms, size, checkpoint, contact`

func scanCompany(sc Row) (c regulator.Company, err error) {
	return c, sc.Scan(&c.ID, &c.Name, &c.TokenHash, Time(&c.Created), &c.Origin, &c.LogKey, &c.ReceiptKey, &c.CatalogDigest,
		(*[]byte)(&c.Algorithms), &c.Size, &c.Checkpoint, Time(&c.Contact))
}

// PutCompany implements regulator.Store.PutCompany.
func (t Regulator) PutCompany(ctx context.Context, c regulator.Company) error {
	_, err := t.Write.exec(ctx, `INSERT INTO reg_companies (id, name, token_hash, created) VALUES (?, ?, ?, ?)`,
		c.ID, c.Name, c.TokenHash, t.Write.D.Time(c.Created))
	if t.Write.D.Unique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "company %s is already enrolled", c.ID)
	} else if err != nil {
		return fmt.Errorf("enrol company: %w", err)
	}
	return nil
}

// Company implements regulator.Store.Company.
func (t Regulator) Company(ctx context.Context, id string) (regulator.Company, error) {
	return t.company(ctx, "id", id)
}

// CompanyBy implements regulator.Store.CompanyBy.
func (t Regulator) CompanyBy(ctx context.Context, field string, value []byte) (regulator.Company, error) {
	switch field {
	case "token":
		return t.company(ctx, "token_hash", value)
	case "origin":
		return t.company(ctx, "origin", string(value))
	}
	return regulator.Company{}, fmt.Errorf("company by %q: no such field", field)
}

func (t Regulator) company(ctx context.Context, col string, v any) (regulator.Company, error) {
	c, err := scanCompany(t.Read.queryRow(ctx, `SELECT `+companyCols+` FROM reg_companies WHERE `+col+` = ?`, v))
	if t.Read.D.NoRows(err) {
		return c, portrait.Errorf(portrait.ENOTFOUND, "no such company")
	} else if err != nil {
		return c, fmt.Errorf("read company: %w", err)
	}
	return c, nil
}

// Companies implements regulator.Store.Companies.
func (t Regulator) Companies(ctx context.Context) ([]regulator.Company, error) {
	rows, err := t.Read.query(ctx, `SELECT `+companyCols+` FROM reg_companies ORDER BY created, id`)
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
func (t Regulator) FileCompany(ctx context.Context, id string, f regulator.Filing, at time.Time) error {
	n, err := t.Write.exec(ctx, `UPDATE reg_companies SET origin = ?, log_key = ?, receipt_key = ?, catalog_digest = ?, algorithms = ?, contact = ? WHERE id = ?`,
		f.Origin, f.LogKey, f.ReceiptKey, f.CatalogDigest, []byte(f.Algorithms), t.Write.D.Time(at), id)
	if t.Write.D.Unique(err) {
		return portrait.Errorf(portrait.ECONFLICT, "log origin %q is filed by another company", f.Origin)
	} else if err != nil {
		return fmt.Errorf("file company %s: %w", id, err)
	}
	if n != 1 {
		return portrait.Errorf(portrait.ENOTFOUND, "no such company")
	}
	return nil
}

// Witness implements regulator.Store.Witness.
func (t Regulator) Witness(ctx context.Context, id string, old, size int64, cp []byte, at time.Time) error {
	n, err := t.Write.exec(ctx, `UPDATE reg_companies SET size = ?, checkpoint = ?, contact = ? WHERE id = ? AND size = ?`,
		size, cp, t.Write.D.Time(at), id, old)
	if err != nil {
		return fmt.Errorf("witness %s: %w", id, err)
	}
	if n != 1 {
		return portrait.Errorf(portrait.ECONFLICT, "the witnessed size of company %s is no longer %d", id, old)
	}
	return nil
}

// PutMirror implements regulator.Store.PutMirror, in one transaction.
// FOR UPDATE serialises uploads of one company across PostgreSQL nodes;
// SQLite's write transaction is IMMEDIATE, which excludes every other
// writer, and its dialect drops the clause.
func (t Regulator) PutMirror(ctx context.Context, id string, from int64, entries []portrait.LogEntry) error {
	return t.InTx(ctx, func(tx DB) error {
		var witnessed, n int64
		err := tx.queryRow(ctx, `SELECT size, (SELECT count(*) FROM reg_mirror WHERE company = ?) FROM reg_companies WHERE id = ? FOR UPDATE`, id, id).Scan(&witnessed, &n)
		if tx.D.NoRows(err) {
			return portrait.Errorf(portrait.ENOTFOUND, "no such company")
		} else if err != nil {
			return fmt.Errorf("mirror %s: %w", id, err)
		}
		if from < witnessed || from > n {
			return portrait.Errorf(portrait.ECONFLICT, "mirror upload at %d: want an index from the witnessed size %d to the mirror size %d", from, witnessed, n)
		}
		if _, err := tx.exec(ctx, `DELETE FROM reg_mirror WHERE company = ? AND idx >= ?`, id, from); err != nil {
			return fmt.Errorf("mirror %s: %w", id, err)
		}
		for i, e := range entries {
			if e.Index != from+int64(i) {
				return portrait.Errorf(portrait.EINVALID, "mirror upload: entry %d has index %d, want %d", i, e.Index, from+int64(i))
			}
			if _, err := tx.exec(ctx, `INSERT INTO reg_mirror (company, idx, data, hashes) VALUES (?, ?, ?, ?)`, id, e.Index, e.Data, e.Hashes); err != nil {
				return fmt.Errorf("mirror %s entry %d: %w", id, e.Index, err)
			}
		}
		return nil
	})
}

// MirrorSize implements regulator.Store.MirrorSize.
func (t Regulator) MirrorSize(ctx context.Context, id string) (int64, error) {
	var n int64
	if err := t.Read.queryRow(ctx, `SELECT count(*) FROM reg_mirror WHERE company = ?`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("mirror size %s: %w", id, err)
	}
	return n, nil
}

// MirrorEntries implements regulator.Store.MirrorEntries.
func (t Regulator) MirrorEntries(ctx context.Context, id string, from, to int64) ([]portrait.LogEntry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "mirror entries [%d, %d): want 0 <= from <= to", from, to)
	}
	rows, err := t.Read.query(ctx, `SELECT idx, data, hashes FROM reg_mirror WHERE company = ? AND idx >= ? AND idx < ? ORDER BY idx`, id, from, to)
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
func (t Regulator) MirrorHashes(ctx context.Context, id string, indexes []int64) ([][32]byte, error) {
	recs, err := audit.HashRecords(indexes)
	if err != nil || len(recs) == 0 {
		return make([][32]byte, len(indexes)), err
	}
	rows, err := t.Read.query(ctx, `SELECT idx, hashes FROM reg_mirror WHERE company = ? AND idx = ANY(?)`, id, t.Read.D.List64(recs))
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
func (t Regulator) PutOrder(ctx context.Context, o regulator.OrderRecord) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if _, err := t.Write.exec(ctx, `INSERT INTO reg_orders (id, company, created, body) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body`, o.ID, o.Company, t.Write.D.Time(o.Issued), body); err != nil {
		return fmt.Errorf("put order %s: %w", o.ID, err)
	}
	return nil
}

// Order implements regulator.OrderStore.Order.
func (t Regulator) Order(ctx context.Context, id string) (regulator.OrderRecord, error) {
	var body []byte
	var o regulator.OrderRecord
	err := t.Read.queryRow(ctx, `SELECT body FROM reg_orders WHERE id = ?`, id).Scan(&body)
	if t.Read.D.NoRows(err) {
		return o, portrait.Errorf(portrait.ENOTFOUND, "no order %s", id)
	} else if err != nil {
		return o, fmt.Errorf("read order: %w", err)
	}
	return o, json.Unmarshal(body, &o)
}

// Orders implements regulator.OrderStore.Orders.
func (t Regulator) Orders(ctx context.Context, company string) ([]regulator.OrderRecord, error) {
	rows, err := t.Read.query(ctx, `SELECT body FROM reg_orders WHERE company = ? ORDER BY created, id`, company)
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

// PutDoc implements regulator.Docs.PutDoc.
func (t Regulator) PutDoc(ctx context.Context, d regulator.Doc) error {
	if _, err := t.Write.exec(ctx, `INSERT INTO reg_docs (kind, id, company, created, body) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body`, d.Kind, d.ID, d.Company, t.Write.D.Time(d.Created), d.Body); err != nil {
		return fmt.Errorf("put %s %s: %w", d.Kind, d.ID, err)
	}
	return nil
}

// Doc implements regulator.Docs.Doc.
func (t Regulator) Doc(ctx context.Context, kind, id string) (regulator.Doc, error) {
	d := regulator.Doc{Kind: kind, ID: id}
	err := t.Read.queryRow(ctx, `SELECT company, created, body FROM reg_docs WHERE kind = ? AND id = ?`, kind, id).Scan(&d.Company, Time(&d.Created), &d.Body)
	if t.Read.D.NoRows(err) {
		return d, portrait.Errorf(portrait.ENOTFOUND, "no %s %s", kind, id)
	} else if err != nil {
		return d, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	return d, nil
}

// Docs implements regulator.Docs.Docs.
func (t Regulator) Docs(ctx context.Context, kind, company string) ([]regulator.Doc, error) {
	rows, err := t.Read.query(ctx, `SELECT id, company, created, body FROM reg_docs WHERE kind = ? AND (? = '' OR company = ?) ORDER BY created, id`, kind, company, company)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, err)
	}
	defer rows.Close()
	out := []regulator.Doc{}
	for rows.Next() {
		d := regulator.Doc{Kind: kind}
		if err := rows.Scan(&d.ID, &d.Company, Time(&d.Created), &d.Body); err != nil {
			return nil, fmt.Errorf("read %s: %w", kind, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
