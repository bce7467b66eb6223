package ingest_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// floorDSN opens a database with the store's pragmas on the store's driver.
const floorDSN = "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(16384)"

// floor is the minimal pipeline of issue 14: decode NDJSON with
// encoding/json and insert the events with multi-row INSERTs (64 rows a
// statement, as the store) into a plain rowid table with no index, on the
// same SQLite driver. Governed ingest is measured against it.
type floor struct{ db *sql.DB }

func newFloor(tb testing.TB) *floor {
	db, err := sql.Open("sqlite", filepath.Join(tb.TempDir(), "floor.db")+floorDSN)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE events (subject TEXT NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL, fields BLOB)`); err != nil {
		tb.Fatal(err)
	}
	return &floor{db: db}
}

type floorEvent struct {
	Subject string          `json:"subject"`
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Fields  json.RawMessage `json:"fields"`
}

func (f *floor) ingest(tb testing.TB, body []byte) {
	var evs []floorEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var e floorEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatal(err)
		}
		evs = append(evs, e)
	}
	tx, err := f.db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	for chunk := evs; len(chunk) > 0; {
		n := min(len(chunk), 64)
		q := "INSERT INTO events (subject, type, time, fields) VALUES " + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?),", n), ",")
		args := make([]any, 0, 4*n)
		for _, e := range chunk[:n] {
			args = append(args, e.Subject, e.Type, e.Time.UnixNano(), []byte(e.Fields))
		}
		if _, err := tx.Exec(q, args...); err != nil {
			tb.Fatal(err)
		}
		chunk = chunk[n:]
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkEventLayout measures, on the store's driver and pragmas, what
// inserting a governed-sized batch costs in the store's layout (events
// clustered by subject: WITHOUT ROWID keyed by 16-byte pseudonym and id)
// and in the append-then-cluster layout designed in DESIGN-NOTES
// (issue 14): a rowid table in arrival order with an index on the
// pseudonym, moved into the clustered table in bulk, sorted, by a
// background step. Both tables start with LAYOUT_ROWS rows over
// LAYOUT_SUBJECTS subjects (default 200,000 / 10,000). Sub-benchmarks:
//
//   - clustered, append: batches of 1,000 events of 100 subjects (events/s);
//   - cluster: moving 10,000 appended events into the clustered table (events/s);
//   - read-clustered, read-both: one subject's events from the clustered
//     table alone, and from both tables as reads would in the new layout.
func BenchmarkEventLayout(b *testing.B) {
	rows, subjects := envInt("LAYOUT_ROWS", 200_000), envInt("LAYOUT_SUBJECTS", 10_000)
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "layout.db")+floorDSN+"&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE events (id INTEGER NOT NULL, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL,
			idem BLOB, sealed BLOB NOT NULL, expires INTEGER, PRIMARY KEY (pseudonym, id)) WITHOUT ROWID`,
		`CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL`,
		`CREATE TABLE events_new (id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, type TEXT NOT NULL, time INTEGER NOT NULL,
			idem BLOB, sealed BLOB NOT NULL, expires INTEGER)`,
		`CREATE INDEX events_new_subject ON events_new (pseudonym)`,
		`CREATE INDEX events_new_expires ON events_new (expires) WHERE expires IS NOT NULL`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	pseudonyms := make([][]byte, subjects)
	for i := range pseudonyms {
		pseudonyms[i] = make([]byte, 16)
		rand.Read(pseudonyms[i])
	}
	sealed := make([]byte, 120) // a sealed view event: nonce, fields, tag
	rand.Read(sealed)
	var id int64
	t0 := time.Now().UnixNano()
	// insert writes n events of 100 random subjects, 64 rows a statement.
	insert := func(tx *sql.Tx, table string, n int) {
		subs := make([][]byte, 100)
		for i := range subs {
			subs[i] = pseudonyms[mrand.IntN(subjects)]
		}
		for left := n; left > 0; {
			k := min(left, 64)
			q := "INSERT INTO " + table + " (id, pseudonym, type, time, idem, sealed, expires) VALUES " +
				strings.TrimSuffix(strings.Repeat("(?, ?, 'view', ?, NULL, ?, ?),", k), ",")
			args := make([]any, 0, 5*k)
			for i := range k {
				id++
				args = append(args, id, subs[(n-left+i)*100/n], t0+id, sealed, t0+id+int64(365*24*time.Hour))
			}
			if _, err := tx.Exec(q, args...); err != nil {
				b.Fatal(err)
			}
			left -= k
		}
	}
	batch := func(table string, n int) {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		insert(tx, table, n)
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	// Fill the clustered table as the background step would leave it.
	for done := 0; done < rows; done += 10_000 {
		batch("events_new", min(10_000, rows-done))
		cluster(b, db)
	}
	b.ResetTimer()
	b.Run("clustered", func(b *testing.B) {
		for b.Loop() {
			batch("events", 1000)
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			batch("events_new", 1000)
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("cluster", func(b *testing.B) {
		var moved time.Duration
		for range b.N {
			batch("events_new", 10_000)
			start := time.Now()
			cluster(b, db)
			moved += time.Since(start)
		}
		b.ReportMetric(float64(b.N*10_000)/moved.Seconds(), "events/s")
	})
	// A subject's events as the store reads them, with 5,000 appended
	// events not yet clustered.
	batch("events_new", 5000)
	read := func(b *testing.B, q string) {
		stmt, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		defer stmt.Close()
		n := 0
		for b.Loop() {
			rs, err := stmt.Query(pseudonyms[mrand.IntN(subjects)])
			if err != nil {
				b.Fatal(err)
			}
			for rs.Next() {
				var id int64
				var s []byte
				if err := rs.Scan(&id, &s); err != nil {
					b.Fatal(err)
				}
				n++
			}
			rs.Close()
		}
		b.ReportMetric(float64(n)/float64(b.N), "events/op")
	}
	b.Run("read-clustered", func(b *testing.B) {
		read(b, `SELECT id, sealed FROM events WHERE pseudonym = ?1 ORDER BY id`)
	})
	b.Run("read-both", func(b *testing.B) {
		read(b, `SELECT id, sealed FROM events WHERE pseudonym = ?1
			UNION ALL SELECT id, sealed FROM events_new WHERE pseudonym = ?1 ORDER BY id`)
	})
}

// cluster moves every appended event into the clustered table, sorted,
// in one transaction: the background step of the append-then-cluster
// layout.
func cluster(tb testing.TB, db *sql.DB) {
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO events SELECT id, pseudonym, type, time, idem, sealed, expires FROM events_new ORDER BY pseudonym, id`,
		`DELETE FROM events_new`,
	} {
		if _, err := tx.Exec(q); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// cpuTime is the CPU time the process has used (user and system), which
// on a shared machine varies far less than wall time.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// written is how many bytes the process has handed to write system calls
// so far (wchar in /proc/self/io), 0 where that is not available: SQLite
// writes only its WAL and, when it checkpoints, the database, so the
// difference across a batch is what the batch cost the disk.
func written() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
