package postgres

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// distributed are the tables docs/SCALING.md §3 distributes by pseudonym
// on Citus whose every statement must name the pseudonym, so that Citus
// routes it to one shard. decisions, reviews and cases are distributed
// too but are also read and updated by their own id (a review queue, a
// decision by id): those statements span the shards, which Citus does,
// at staff rates; they are not checked here.
var distributed = []string{"events", "subjects", "profile", "labels", "consents", "suppressions", "protected"}

// multiShard are the statements allowed to span every shard, each with
// the reason; a substring identifies the statement.
var multiShard = map[string]string{
	"expires IS NOT NULL AND expires <=":     "the retention sweep reads the events due on every shard, on one node, in pages",
	"WHERE pseudonym > ? ORDER BY pseudonym": "the subject listing of batch derivation and the monitors pages through every shard",
	"pseudonym BETWEEN ? AND ?":              "a batch derivation page's states, read with its listing as a range of every shard",
}

var (
	sqlLiteral = regexp.MustCompile("`[^`]*`")
	namesKey   = regexp.MustCompile(`(?i)\bpseudonym\s*(=|IN\b)`)
	insertsKey = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+\w+\s*\(\s*pseudonym\b`)
)

// TestDistributedQueriesNameTheKey scans the SQL of packages tables and
// postgres — the SQL a PostgreSQL store runs — and requires every
// statement on a distributed table to filter by, or insert, the
// distribution column (pseudonym), so that moving to Citus needs no query
// changed: each is routed to one shard. A statement that must span the
// shards is listed in multiShard with why.
func TestDistributedQueriesNameTheKey(t *testing.T) {
	var files []string
	for _, dir := range []string{".", "../tables"} {
		fs, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	found := map[string]int{}
	used := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, loc := range sqlLiteral.FindAllIndex(src, -1) {
			q := string(src[loc[0]+1 : loc[1]-1])
			line := 1 + strings.Count(string(src[:loc[0]]), "\n")
			for _, table := range distributed {
				on := regexp.MustCompile(`(?i)\b(FROM|INTO|UPDATE|JOIN)\s+` + table + `\b`)
				if !on.MatchString(q) {
					continue
				}
				found[table]++
				if namesKey.MatchString(q) || insertsKey.MatchString(q) {
					continue
				}
				allowed := false
				for sub := range multiShard {
					if strings.Contains(q, sub) {
						allowed, used[sub] = true, true
					}
				}
				if !allowed {
					t.Errorf("%s:%d: a statement on %s that does not name the pseudonym (it would run on every Citus shard):\n%s", f, line, table, strings.TrimSpace(q))
				}
			}
		}
	}
	if found["events"] < 5 {
		t.Errorf("only %d statements on events found: has the SQL moved out of tables and postgres?", found["events"])
	}
	for sub, why := range multiShard {
		if !used[sub] {
			t.Errorf("multiShard lists a statement no longer found (%s): %q", why, sub)
		}
	}
}
