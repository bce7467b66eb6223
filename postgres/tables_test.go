package postgres

import "testing"

// The shared queries' ? placeholders become $1, $2, … in order.
func TestDialectNumbersPlaceholders(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT n FROM generation`:                   `SELECT n FROM generation`,
		`SELECT a FROM t WHERE b = ? AND c = ANY(?)`: `SELECT a FROM t WHERE b = $1 AND c = ANY($2)`,
		`UPDATE t SET a = ? WHERE id = ? AND a < ?`:  `UPDATE t SET a = $1 WHERE id = $2 AND a < $3`,
	} {
		if got := pg.SQL(in); got != want {
			t.Errorf("SQL(%q) = %q, want %q", in, got, want)
		}
		if got := pg.SQL(in); got != want { // remembered
			t.Errorf("second SQL(%q) = %q, want %q", in, got, want)
		}
	}
}
