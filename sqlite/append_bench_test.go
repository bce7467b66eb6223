package sqlite

import (
	"context"
	"crypto/rand"
	mrand "math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/guard"
)

// BenchmarkAppendCost measures what appending a governed batch (1,000
// events of 100 subjects, ~90-byte sealed values with an expiry) costs the
// one writer in candidate layouts for the append path (issue 14, target
// 1, session 6): CPU per event of the process.
//
//	go test ./sqlite -run '^$' -bench AppendCost -benchtime 100x
func BenchmarkAppendCost(b *testing.B) {
	type variant struct {
		name   string
		table  string // created after Open
		insert string // row tuple prefix: INSERT … INTO x (cols) VALUES
		sorted bool   // rows sorted by (pseudonym, id)
		run    bool   // first column is the run
		// dir also lists each (subject, run) of the batch in a table
		// keyed (pseudonym, run): a directory that would let a subject's
		// read seek only the runs that hold it, so that runs need no
		// merging to bound reads (session 7).
		dir      bool
		subjects int // distinct subjects the batch's events are drawn from; 0: 100, one event in turn
	}
	cols := `(id, pseudonym, type, time, idem, sealed, expires)`
	for _, v := range []variant{
		// The store's own run table, as ingest writes it: a sorted run.
		{name: "events_new", insert: `INSERT INTO events_new (run, id, pseudonym, type, time, idem, sealed, expires)`, sorted: true, run: true},
		{name: "rowid-no-index", table: `CREATE TABLE x (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER)`,
			insert: `INSERT INTO x ` + cols},
		{name: "rowid-no-index-ignore", table: `CREATE TABLE x (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER)`,
			insert: `INSERT OR IGNORE INTO x ` + cols},
		{name: "rowid-partial-idem", table: `CREATE TABLE x (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER);
			CREATE UNIQUE INDEX x_idem ON x (pseudonym, idem) WHERE idem IS NOT NULL`,
			insert: `INSERT INTO x ` + cols},
		{name: "rowid-subject-index", table: `CREATE TABLE x (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER);
			CREATE INDEX x_subject ON x (pseudonym)`,
			insert: `INSERT OR IGNORE INTO x ` + cols},
		{name: "runs", table: `CREATE TABLE x (run INTEGER NOT NULL, id INTEGER NOT NULL, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER, PRIMARY KEY (run, pseudonym, id)) WITHOUT ROWID`,
			insert: `INSERT INTO x (run, id, pseudonym, type, time, idem, sealed, expires)`, sorted: true, run: true},
		{name: "runs-ignore", table: `CREATE TABLE x (run INTEGER NOT NULL, id INTEGER NOT NULL, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER, PRIMARY KEY (run, pseudonym, id)) WITHOUT ROWID`,
			insert: `INSERT OR IGNORE INTO x (run, id, pseudonym, type, time, idem, sealed, expires)`, sorted: true, run: true},
		{name: "runs-ignore-1000-subjects", table: `CREATE TABLE x (run INTEGER NOT NULL, id INTEGER NOT NULL, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER, PRIMARY KEY (run, pseudonym, id)) WITHOUT ROWID`,
			insert: `INSERT OR IGNORE INTO x (run, id, pseudonym, type, time, idem, sealed, expires)`, sorted: true, run: true, subjects: 1000},
		{name: "runs-directory", table: `CREATE TABLE x (run INTEGER NOT NULL, id INTEGER NOT NULL, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER, PRIMARY KEY (run, pseudonym, id)) WITHOUT ROWID; CREATE TABLE d (pseudonym BLOB NOT NULL, run INTEGER NOT NULL, PRIMARY KEY (pseudonym, run)) WITHOUT ROWID`,
			insert: `INSERT OR IGNORE INTO x (run, id, pseudonym, type, time, idem, sealed, expires)`, sorted: true, run: true, dir: true},
		{name: "runs-directory-1000-subjects", table: `CREATE TABLE x (run INTEGER NOT NULL, id INTEGER NOT NULL, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER, PRIMARY KEY (run, pseudonym, id)) WITHOUT ROWID; CREATE TABLE d (pseudonym BLOB NOT NULL, run INTEGER NOT NULL, PRIMARY KEY (pseudonym, run)) WITHOUT ROWID`,
			insert: `INSERT OR IGNORE INTO x (run, id, pseudonym, type, time, idem, sealed, expires)`, sorted: true, run: true, dir: true, subjects: 1000},
		{name: "rowid-sorted-ignore", table: `CREATE TABLE x (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, idem BLOB, sealed BLOB NOT NULL, expires INTEGER)`,
			insert: `INSERT OR IGNORE INTO x ` + cols, sorted: true},
	} {
		b.Run(v.name, func(b *testing.B) {
			stillMover(b)
			db, err := Open(context.Background(), filepath.Join(b.TempDir(), "portrait.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := db.e
			if v.table != "" {
				if _, err := e.write.Exec(v.table); err != nil {
					b.Fatal(err)
				}
			}
			k := 7
			if v.run {
				k = 8
			}
			q := v.insert + ` VALUES ` + strings.TrimSuffix(strings.Repeat("("+strings.TrimSuffix(strings.Repeat("?,", k), ",")+"),", 64), ",")
			st, err := e.write.Prepare(q)
			if err != nil {
				b.Fatal(err)
			}
			subs := make([][]byte, max(v.subjects, 100))
			for i := range subs {
				subs[i] = make([]byte, 16)
				rand.Read(subs[i])
			}
			sealed := make([]byte, 90)
			rand.Read(sealed)
			var id int64
			c0 := cpuTime(b)
			for b.Loop() {
				type row struct {
					id int64
					p  []byte
				}
				rows := make([]row, 1024)
				for i := range rows {
					id++
					rows[i] = row{id, subs[i%100]}
					if v.subjects != 0 {
						rows[i].p = subs[mrand.IntN(v.subjects)]
					}
				}
				if v.sorted {
					slices.SortFunc(rows, func(a, b row) int { return strings.Compare(string(a.p), string(b.p)) })
					for i := range rows {
						rows[i].id = id - 1023 + int64(i)
					}
				}
				if err := e.Update(context.Background(), func(t guard.Tx) error {
					tx := t.(*txn)
					s := tx.tx.Stmt(st)
					args := make([]any, 0, 64*k)
					for i, r := range rows {
						if v.run {
							args = append(args, id)
						}
						args = append(args, r.id, r.p, "view", r.id, nil, sealed, r.id+1e9)
						if (i+1)%64 == 0 {
							if _, err := s.Exec(args...); err != nil {
								return err
							}
							args = args[:0]
						}
					}
					if v.dir {
						// One row per distinct subject of the run, in
						// key order (rows are sorted by subject).
						for i, r := range rows {
							if i > 0 && string(rows[i-1].p) == string(r.p) {
								continue
							}
							args = append(args, r.p, id)
						}
						for len(args) > 0 {
							n := min(len(args)/2, 64)
							q := `INSERT OR IGNORE INTO d (pseudonym, run) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?),", n), ",")
							if _, err := tx.tx.Exec(q, args[:2*n]...); err != nil {
								return err
							}
							args = args[2*n:]
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-c0).Nanoseconds())/float64(b.N*1024), "cpu-ns/event")
			b.ReportMetric(float64(b.N*1024)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
