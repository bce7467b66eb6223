package sqlite

import (
	"strings"
	"testing"
)

// The reads of "events after a mark" (incremental derivation) seek the
// runs whose last id is past the mark through event_runs_by_last
// (migration 0073) instead of comparing the mark with every run waiting
// to be moved, and the page read takes each subject's pseudonym and mark
// out of its JSON once (the materialised m), not once per run.
func TestEventsAfterPlan(t *testing.T) {
	db := openTest(t)
	for _, c := range []struct {
		name, query string
		args        []any
		want        []string
	}{
		{"one subject", eventsAfterOneSQL, []any{"p", 0}, []string{"event_runs_by_last (last>?)"}},
		{"page", eventsAfterSQL, []any{`[["p",0],["q",0]]`}, []string{"MATERIALIZE m", "event_runs_by_last (last>?)"}},
	} {
		rows, err := db.read.Query(`EXPLAIN QUERY PLAN `+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "\n")
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: plan lacks %q:\n%s", c.name, w, got)
			}
		}
		if strings.Contains(got, "SCAN r") {
			t.Errorf("%s: plan scans every run:\n%s", c.name, got)
		}
	}
}
