// Package sqlitetest gives tests plain access to a Portrait SQLite file,
// to change it behind the store's back (the tamper experiments of package
// storetest). It keeps the SQLite driver on the SQLite side: the shared
// suite does not import it.
package sqlitetest

import (
	"database/sql"
	"testing"

	_ "modernc.org/sqlite" // the raw edits go straight to the file
)

// Raw returns a plain connection to the SQLite file at path (a
// storetest.Raw), closed when tb ends.
func Raw(tb testing.TB, path string) *DB {
	tb.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &DB{db}
}

// DB is a plain connection to a SQLite file.
type DB struct{ db *sql.DB }

// Exec runs q, whose parameters are written "?", and fails tb on error.
func (db *DB) Exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	if _, err := db.db.Exec(q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// Bytes returns the one value q selects, and fails tb on error.
func (db *DB) Bytes(tb testing.TB, q string) []byte {
	tb.Helper()
	var b []byte
	if err := db.db.QueryRow(q).Scan(&b); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return b
}
