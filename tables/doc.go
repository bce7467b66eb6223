// Package tables holds what the SQLite and PostgreSQL engines share about
// Portrait's tables: how rows become domain values and back. It keeps
// invariant 7 — both engines behave the same — by giving each behaviour
// one implementation; an engine keeps only what really differs between
// them (bulk insert, group commit, migrations, WAL).
//
// Nothing here checks a grant: package guard does, before an engine is
// called (invariant 2).
package tables
