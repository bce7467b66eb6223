package sqlite

import "testing"

// Lists expand through json_each, and FOR UPDATE, which SQLite does not
// parse, is dropped: its write transactions are IMMEDIATE.
func TestDialectRewrites(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT a FROM t WHERE b = ?`:                `SELECT a FROM t WHERE b = ?`,
		`SELECT a FROM t WHERE b = ANY(?) AND c = ?`: `SELECT a FROM t WHERE b IN (SELECT value FROM json_each(?)) AND c = ?`,
		`SELECT size FROM t WHERE id = ? FOR UPDATE`: `SELECT size FROM t WHERE id = ?`,
	} {
		if got := lite.SQL(in); got != want {
			t.Errorf("SQL(%q) = %q, want %q", in, got, want)
		}
	}
}
