package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
)

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMoveCost splits what clustering costs per event into the
// append (ingest's transaction) and the move, and measures the variants
// issue 14 suggested for a cheaper move, on the store itself: batches of
// 1,000 events of 100 subjects (BenchmarkIngest's shape, ~90-byte sealed
// values with an expiry) appended ten at a time, then moved. Every
// variant reports CPU per event (getrusage: the process's, so the
// background checkpoint is in it), which a shared machine disturbs far
// less than wall time.
//
//	go test ./sqlite -run '^$' -bench MoveCost -benchtime 15x
func BenchmarkMoveCost(b *testing.B) {
	type variant struct {
		name    string
		page    int    // page size of a new file; 0: SQLite's default
		setup   string // run on the write connection after Open
		batches int    // batches of 1,000 per move
		move    func(tb testing.TB, e *engine, n int)
	}
	store := func(tb testing.TB, e *engine, n int) {
		for more := true; more; {
			var err error
			if _, _, more, err = e.moveOnce(context.Background(), n); err != nil {
				tb.Fatal(err)
			}
		}
	}
	// journal is the move as session 5 ran it: a plain INSERT, which may
	// abort and so keeps a statement journal of every page it touches.
	journal := func(tb testing.TB, e *engine, n int) {
		defer func(v string) { moveInsert = v }(moveInsert)
		moveInsert = `INSERT`
		store(tb, e, n)
	}
	// mergeRuns is the LSM's step instead of the move: the runs merged,
	// sorted, into one new run at the right edge of events_new (a fresh
	// run number above every key), then the old runs deleted.
	var merged int64
	mergeRuns := func(tb testing.TB, e *engine, n int) {
		if err := e.Update(context.Background(), func(t guard.Tx) error {
			tx := t.(*txn)
			var last, run int64
			if err := tx.tx.QueryRow(`SELECT max(run) FROM event_runs`).Scan(&last); err != nil {
				return err
			}
			if err := tx.tx.QueryRow(reserveEventIDs, 1).Scan(&run); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`INSERT INTO events_new (run, `+eventColumns+`) SELECT ?, `+eventColumns+` FROM events_new WHERE run > ? AND run <= ? ORDER BY pseudonym, id`, run, merged, last); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`DELETE FROM events_new WHERE run > ? AND run <= ?`, merged, last); err != nil {
				return err
			}
			_, err := tx.tx.Exec(`DELETE FROM event_runs WHERE run > ? AND run <= ?`, merged, last)
			merged = run
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	// perRun moves run by run: each run is already in (pseudonym, id)
	// order, so no statement sorts.
	perRun := func(tb testing.TB, e *engine, n int) {
		if err := e.Update(context.Background(), func(t guard.Tx) error {
			tx := t.(*txn)
			runs, err := runNumbers(tx)
			if err != nil {
				return err
			}
			for _, r := range runs {
				if _, err := tx.tx.Exec(`INSERT OR IGNORE INTO events (`+eventColumns+`) SELECT `+eventColumns+` FROM events_new WHERE run = ? ORDER BY run, pseudonym, id`, r); err != nil {
					return err
				}
				if _, err := tx.tx.Exec(`DELETE FROM events_new WHERE run = ?`, r); err != nil {
					return err
				}
			}
			_, err = tx.tx.Exec(`DELETE FROM event_runs`)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	// unionMove is the move with the sort replaced by a merge of the
	// runs, each already in (pseudonym, id) order: a compound SELECT of
	// one arm per run with ORDER BY, which SQLite runs as a merge.
	unionMove := func(tb testing.TB, e *engine, n int) {
		if err := e.Update(context.Background(), func(t guard.Tx) error {
			tx := t.(*txn)
			runs, err := runNumbers(tx)
			if err != nil || len(runs) == 0 {
				return err
			}
			var arms []string
			for _, r := range runs {
				arms = append(arms, fmt.Sprintf(`SELECT %s FROM events_new WHERE run = %d`, eventColumns, r))
			}
			last := runs[len(runs)-1]
			if _, err := tx.tx.Exec(moveExpirySQL, last); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`INSERT OR IGNORE INTO events (` + eventColumns + `) ` + strings.Join(arms, " UNION ALL ") + ` ORDER BY 2, 1`); err != nil {
				return err
			}
			if _, err := tx.tx.Exec(`DELETE FROM events_new WHERE run <= ?`, last); err != nil {
				return err
			}
			_, err = tx.tx.Exec(`DELETE FROM event_runs`)
			return err
		}); err != nil {
			tb.Fatal(err)
		}
	}
	for _, v := range []variant{
		{name: "store", move: store},
		{name: "statement-journal", move: journal},
		{name: "moves-of-50000", batches: 50, move: store},
		{name: "expires-index", setup: `CREATE INDEX events_expires ON events (expires) WHERE expires IS NOT NULL`, move: store},
		{name: "per-run", move: perRun},
		{name: "merge-arms", move: unionMove},
		{name: "merge-runs", setup: `DROP INDEX events_new_idem`, move: mergeRuns},
		{name: "cache-32MB", setup: `PRAGMA cache_size=-32768`, move: store},
		{name: "page-8KB", page: 8192, move: store},
		{name: "page-16KB", page: 16384, move: store},
		{name: "mmap-256MB", setup: `PRAGMA mmap_size=268435456`, move: store},
		{name: "no-cache-spill", setup: `PRAGMA cache_spill=OFF`, move: store},
		// What zeroing costs (SR-3 needs it: not a candidate).
		{name: "secure-delete-off", setup: `PRAGMA secure_delete=OFF`, move: store},
	} {
		b.Run(v.name, func(b *testing.B) {
			merged = 0
			path := filepath.Join(b.TempDir(), "portrait.db")
			if v.page != 0 {
				raw, err := sql.Open("sqlite", path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := raw.Exec(fmt.Sprintf(`PRAGMA page_size=%d; PRAGMA journal_mode=WAL; CREATE TABLE x(a); DROP TABLE x`, v.page)); err != nil {
					b.Fatal(err)
				}
				raw.Close()
			}
			stillMover(b)
			db, err := Open(context.Background(), path)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := db.e
			if v.setup != "" {
				if _, err := e.write.Exec(v.setup); err != nil {
					b.Fatal(err)
				}
			}
			batches := max(v.batches, 10)
			subs := make([]portrait.Pseudonym, 100)
			for i := range subs {
				var k [16]byte
				rand.Read(k[:])
				subs[i] = portrait.Pseudonym(fmt.Sprintf("%x", k))
			}
			sealed := make([]byte, 90)
			rand.Read(sealed)
			id, n := 0, 0
			var app, mv time.Duration
			for b.Loop() {
				c0 := cpuTime(b)
				for range batches {
					evs := make([]portrait.StoredEvent, 1000)
					for i := range evs {
						id++
						evs[i] = portrait.StoredEvent{Pseudonym: subs[id%100], Type: "view", Time: time.Unix(int64(id), 0), Sealed: sealed,
							Expires: time.Unix(int64(id)+1e8, 0)}
					}
					if err := e.Update(context.Background(), func(tx guard.Tx) error {
						_, err := tx.InsertEvents(context.Background(), evs)
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
				c1 := cpuTime(b)
				v.move(b, e, batches*1000)
				app += c1 - c0
				mv += cpuTime(b) - c1
				n += batches * 1000
			}
			b.ReportMetric(float64(app.Nanoseconds())/float64(n), "append-cpu-ns/event")
			b.ReportMetric(float64(mv.Nanoseconds())/float64(n), "move-cpu-ns/event")
		})
	}
}

// BenchmarkMoveShape measures the move's CPU per event against how many
// events of each subject one move carries, with sustained HTTP ingest's
// shape (portrait load --subjects 1000: every run of 1,000 events holds
// each of 1,000 subjects once, 150-byte sealed values): a move writes a
// subject's last clustered page once however many of its events it
// brings, so larger moves cost less per event; sliced, a move of 100,000
// keeps that while each transaction carries about 10,000 (move.go).
//
//	go test ./sqlite -run '^$' -bench MoveShape -benchtime 3x
func BenchmarkMoveShape(b *testing.B) {
	for _, v := range []struct {
		name                   string
		batch, slice, subjects int
	}{
		{"moves-of-10000", 10_000, 10_000, 1000},
		{"moves-of-100000-whole", 100_000, 1 << 30, 1000},
		{"moves-of-100000-in-slices-of-10000", 100_000, 10_000, 1000},
		// BenchmarkIngest's shape: 100 subjects, so a move of 10,000
		// already brings each subject 100 events, a few pages' worth.
		{"100-subjects-moves-of-10000", 10_000, 10_000, 100},
		{"100-subjects-moves-of-100000-in-slices-of-10000", 100_000, 10_000, 100},
	} {
		b.Run(v.name, func(b *testing.B) {
			stillMover(b)
			db, err := Open(context.Background(), filepath.Join(b.TempDir(), "portrait.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e := db.e
			e.mover.slice = v.slice
			subs := make([]portrait.Pseudonym, v.subjects)
			for i := range subs {
				var k [16]byte
				rand.Read(k[:])
				subs[i] = portrait.Pseudonym(fmt.Sprintf("%x", k))
			}
			sealed := make([]byte, 150)
			rand.Read(sealed)
			id := 0
			appendRuns := func(runs int) {
				for range runs {
					evs := make([]portrait.StoredEvent, 1000)
					for i := range evs {
						id++
						evs[i] = portrait.StoredEvent{Pseudonym: subs[i%len(subs)], Type: "view", Time: time.Unix(int64(id), 0), Sealed: sealed,
							Expires: time.Unix(int64(id)+1e8, 0)}
					}
					if err := e.Update(context.Background(), func(tx guard.Tx) error {
						_, err := tx.InsertEvents(context.Background(), evs)
						return err
					}); err != nil {
						b.Fatal(err)
					}
				}
			}
			move := func(limit int) {
				for more := true; more; {
					if _, _, more, err = e.moveOnce(context.Background(), limit); err != nil {
						b.Fatal(err)
					}
				}
			}
			appendRuns(200) // every subject has clustered pages before the clock starts
			move(v.batch)
			var cpu time.Duration
			n := 0
			for b.Loop() {
				appendRuns(200)
				c0 := cpuTime(b)
				move(v.batch)
				cpu += cpuTime(b) - c0
				n += 200 * 1000
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "move-cpu-ns/event")
		})
	}
}

// runNumbers lists the runs of event_runs, oldest first.
func runNumbers(tx *txn) ([]int64, error) {
	rows, err := tx.tx.Query(`SELECT run FROM event_runs ORDER BY run`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []int64
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// BenchmarkMovePack measures a prototype of a packed clustered layout
// (issue 14, target 1, session 10: can `ratio`, the move charged, reach
// 0.7?) against today's move. Variants:
//   - insert-select: today's move (moveOnce), one clustered row per event;
//   - pack: the move reads the moved runs as one range in Go (in the
//     table's (run, pseudonym, id) order, so no sort: a subject's events
//     of later runs have larger ids) and writes ONE row per subject and
//     slice into a WITHOUT ROWID table keyed (pseudonym, first id),
//     holding the subject's events encoded one after another; the
//     expiry statement and the DELETE are today's;
//   - pack-rowid: the same packs in a rowid table keyed by first id with
//     an index by (pseudonym, first) (packedRowidTable says why);
//   - drop: the expiry statement and the DELETE alone, nothing written:
//     the floor under any move, packed or not, that reads its runs back
//     and zeroes them;
//   - append-packed: no runs and no move: each batch packed per subject
//     straight into the rowid table by the writing transaction (what
//     ingest's append would have to become; not the move's to change).
//   - hybrid: append-packed for the subjects with at least 4 events in
//     the batch, today's run (and move) for the rest.
//
// Two shapes: BenchmarkIngest's (100 subjects, 1,000-event runs, moves
// of 10,000: each subject gets 10 events a run and 100 a move) and a
// large population (10⁵ subjects, runs of 1,000 distinct subjects, moves
// of 100,000 in slices of 10,000 as the engine's mover makes them: one
// event per subject a run and a move). Both start with 200 runs already
// moved, so the trees have depth. Reported per event: the append's and
// the move's process CPU, events per clustered row, file bytes; and the
// CPU of reading one subject's every event (an access export's read,
// before unsealing).
//
//	go test ./sqlite -run '^$' -bench MovePack -benchtime 20x    # 10⁵: -benchtime 3x
func BenchmarkMovePack(b *testing.B) {
	for _, s := range []struct {
		name                    string
		subjects, batch, before int // before: runs of 1,000 moved before the clock
		perMove                 int // runs per move
	}{
		{"subjects-100", 100, 10_000, 200, 10},
		{"subjects-100000", 100_000, 100_000, 200, 100},
	} {
		for _, how := range []string{"insert-select", "pack", "pack-rowid", "drop", "append-packed", "hybrid"} {
			pack := how == "pack" || how == "pack-rowid" || how == "drop" // moved by packOnce
			b.Run(s.name+"/"+how, func(b *testing.B) {
				stillMover(b)
				db, err := Open(context.Background(), filepath.Join(b.TempDir(), "portrait.db"))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				e := db.e
				if _, err := e.write.Exec(packedTable + `; ` + packedRowidTable); err != nil {
					b.Fatal(err)
				}
				subs := make([]portrait.Pseudonym, s.subjects)
				for i := range subs {
					var k [16]byte
					rand.Read(k[:])
					subs[i] = portrait.Pseudonym(fmt.Sprintf("%x", k))
				}
				sealed := make([]byte, 90)
				rand.Read(sealed)
				id, off := 0, 0
				appendRuns := func(runs int) {
					for range runs {
						evs := make([]portrait.StoredEvent, 1000)
						for i := range evs {
							id++
							var p portrait.Pseudonym
							if s.subjects <= 1000 {
								p = subs[id%s.subjects]
							} else {
								p = subs[(off+i)%s.subjects] // 1,000 distinct subjects a run
							}
							evs[i] = portrait.StoredEvent{Pseudonym: p, Type: "view", Time: time.Unix(int64(id), 0), Sealed: sealed,
								Expires: time.Unix(int64(id)+1e8, 0)}
						}
						off += 1000
						if how == "append-packed" {
							if err := appendPacked(context.Background(), e, evs); err != nil {
								b.Fatal(err)
							}
							continue
						}
						if how == "hybrid" {
							if err := appendHybrid(context.Background(), e, evs); err != nil {
								b.Fatal(err)
							}
							continue
						}
						if err := e.Update(context.Background(), func(tx guard.Tx) error {
							_, err := tx.InsertEvents(context.Background(), evs)
							return err
						}); err != nil {
							b.Fatal(err)
						}
					}
				}
				move := func() {
					for more := how != "append-packed"; more; {
						var err error
						if pack {
							_, more, err = packOnce(context.Background(), e, s.batch, how)
						} else {
							_, _, more, err = e.moveOnce(context.Background(), s.batch)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				for r := 0; r < s.before; r += s.perMove {
					appendRuns(s.perMove)
					move()
				}
				var app, mv time.Duration
				n := 0
				for b.Loop() {
					c0 := cpuTime(b)
					appendRuns(s.perMove)
					c1 := cpuTime(b)
					move()
					app += c1 - c0
					mv += cpuTime(b) - c1
					n += s.perMove * 1000
				}
				// Rows of the clustered table(s) the variant writes.
				tbls := map[string][]string{"insert-select": {"events"}, "pack": {"events_packed"}, "pack-rowid": {"events_packed_rowid"},
					"append-packed": {"events_packed_rowid"}, "hybrid": {"events", "events_packed_rowid"}}[how]
				var rows int64
				for _, t := range tbls {
					var n int64
					if err := e.write.QueryRow(`SELECT count(*) FROM ` + t).Scan(&n); err != nil {
						b.Fatal(err)
					}
					rows += n
				}
				var pages, pageSize int64
				if err := e.write.QueryRow(`SELECT page_count, page_size FROM pragma_page_count, pragma_page_size`).Scan(&pages, &pageSize); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(app.Nanoseconds())/float64(n), "append-cpu-ns/event")
				b.ReportMetric(float64(mv.Nanoseconds())/float64(n), "move-cpu-ns/event")
				if rows > 0 {
					b.ReportMetric(float64(id)/float64(rows), "events/row")
				}
				b.ReportMetric(float64(pages*pageSize)/float64(id), "file-B/event")
				if how != "drop" {
					// An access export's read of one subject, every
					// event's columns (unpacked, for a pack), CPU per read.
					key := eventKey(subs[0])
					c0, got := cpuTime(b), 0
					for range 20 {
						got = 0
						for _, t := range tbls {
							got += readSubject(b, e, t, key)
						}
					}
					b.ReportMetric(float64((cpuTime(b)-c0).Microseconds())/20, "read-subject-cpu-µs")
					b.ReportMetric(float64(got), "read-subject-events")
				}
			})
		}
	}
}

// packedTable is the prototype's clustered table: one row per subject
// and move slice, keyed by the subject and its first event's id, with
// what a read filters by before unpacking (last id, time range, earliest
// expiry).
const packedTable = `CREATE TABLE events_packed (
	pseudonym BLOB NOT NULL,
	first     INTEGER NOT NULL,
	last      INTEGER NOT NULL,
	n         INTEGER NOT NULL,
	tmin      INTEGER NOT NULL,
	tmax      INTEGER NOT NULL,
	expires   INTEGER,
	pack      BLOB NOT NULL,
	PRIMARY KEY (pseudonym, first)
) WITHOUT ROWID`

// packedRowidTable is packedTable as a rowid table keyed by the pack's
// first id, with an index by subject: a WITHOUT ROWID table compares
// keys by reading each cell's whole record, overflow pages and all, so
// every seek past a pack larger than a quarter page (about 1 KB) read
// the packs it passed; here the packs are appended at the table's right
// edge (later moves have larger ids), and the index holds only the key.
const packedRowidTable = `CREATE TABLE events_packed_rowid (
	first     INTEGER PRIMARY KEY,
	pseudonym BLOB NOT NULL,
	last      INTEGER NOT NULL,
	n         INTEGER NOT NULL,
	tmin      INTEGER NOT NULL,
	tmax      INTEGER NOT NULL,
	expires   INTEGER,
	pack      BLOB NOT NULL
);
CREATE INDEX events_packed_by_subject ON events_packed_rowid (pseudonym, first)`

// packer groups events by subject into the prototype's packs: per
// event the id's delta from the previous, type, time, idempotency key
// (length+1, 0 for none), sealed bytes and expiry (+1, 0 for none).
type packer struct {
	packs map[string]*pack
}

type pack struct {
	key                     []byte
	first, last, tmin, tmax int64
	n                       int
	exp                     sql.NullInt64
	buf                     []byte
}

func (pk *packer) add(p []byte, id int64, typ []byte, t int64, idem, sealed []byte, exp sql.NullInt64) {
	if pk.packs == nil {
		pk.packs = map[string]*pack{}
	}
	k := pk.packs[string(p)]
	if k == nil {
		k = &pack{key: []byte(string(p)), first: id, tmin: t, tmax: t}
		pk.packs[string(p)] = k
	}
	k.buf = binary.AppendUvarint(k.buf, uint64(id-k.last))
	k.last = id
	k.buf = binary.AppendUvarint(k.buf, uint64(len(typ)))
	k.buf = append(k.buf, typ...)
	k.buf = binary.AppendVarint(k.buf, t)
	if idem == nil {
		k.buf = append(k.buf, 0)
	} else {
		k.buf = binary.AppendUvarint(k.buf, uint64(len(idem))+1)
		k.buf = append(k.buf, idem...)
	}
	k.buf = binary.AppendUvarint(k.buf, uint64(len(sealed)))
	k.buf = append(k.buf, sealed...)
	if exp.Valid {
		k.buf = binary.AppendVarint(k.buf, exp.Int64+1)
		if !k.exp.Valid || exp.Int64 < k.exp.Int64 {
			k.exp = exp
		}
	} else {
		k.buf = append(k.buf, 0)
	}
	k.tmin, k.tmax = min(k.tmin, t), max(k.tmax, t)
	k.n++
}

// write inserts the packs into tbl in key order, one INSERT each.
func (pk *packer) write(ctx context.Context, tx *txn, tbl string) error {
	keys := make([]string, 0, len(pk.packs))
	for k := range pk.packs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	st, err := tx.tx.PrepareContext(ctx, `INSERT INTO `+tbl+` (pseudonym, first, last, n, tmin, tmax, expires, pack) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, s := range keys {
		k := pk.packs[s]
		if _, err := st.ExecContext(ctx, k.key, k.first, k.last, k.n, k.tmin, k.tmax, k.exp, k.buf); err != nil {
			return err
		}
	}
	return nil
}

// appendPacked is the append without runs and without a move: the
// batch's events packed per subject straight into events_packed_rowid in
// the writing transaction (ids reserved as InsertEvents reserves them).
func appendPacked(ctx context.Context, e *engine, evs []portrait.StoredEvent) error {
	return e.Update(ctx, func(t guard.Tx) error { return packEvents(ctx, t.(*txn), evs) })
}

// appendHybrid packs the events of each subject with at least
// packAtLeast events in the batch, as appendPacked does, and writes the
// rest as today's run (InsertEvents), to be moved; one transaction.
func appendHybrid(ctx context.Context, e *engine, evs []portrait.StoredEvent) error {
	const packAtLeast = 4
	count := map[portrait.Pseudonym]int{}
	for _, ev := range evs {
		count[ev.Pseudonym]++
	}
	packed, run := make([]portrait.StoredEvent, 0, len(evs)), make([]portrait.StoredEvent, 0, len(evs))
	for _, ev := range evs {
		if count[ev.Pseudonym] >= packAtLeast {
			packed = append(packed, ev)
		} else {
			run = append(run, ev)
		}
	}
	return e.Update(ctx, func(t guard.Tx) error {
		if len(run) > 0 {
			if _, err := t.InsertEvents(ctx, run); err != nil {
				return err
			}
		}
		if len(packed) == 0 {
			return nil
		}
		return packEvents(ctx, t.(*txn), packed)
	})
}

// packEvents reserves ids for evs and writes them as packs.
func packEvents(ctx context.Context, tx *txn, evs []portrait.StoredEvent) error {
	{
		var next int64
		if err := tx.tx.QueryRowContext(ctx, reserveEventIDs, len(evs)).Scan(&next); err != nil {
			return err
		}
		var pk packer
		for i, ev := range evs {
			k, _ := eventKey(ev.Pseudonym).([]byte)
			exp := sql.NullInt64{Int64: ev.Expires.UnixNano(), Valid: !ev.Expires.IsZero()}
			pk.add(k, next-int64(len(evs))+int64(i), []byte(ev.Type), ev.Time.UnixNano(), nil, ev.Sealed, exp)
		}
		return pk.write(ctx, tx, "events_packed_rowid")
	}
}

// readSubject reads every event of one subject from the clustered table
// tbl, each row's columns for events, each pack's events decoded for a
// packed table, and returns how many it read.
func readSubject(tb testing.TB, e *engine, tbl string, key any) int {
	q := `SELECT ` + eventColumns + ` FROM events WHERE pseudonym = ?`
	if tbl != "events" {
		q = `SELECT pack FROM ` + tbl + ` WHERE pseudonym = ? ORDER BY first`
	}
	rows, err := e.read.Query(q, key)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if tbl == "events" {
			var id, t int64
			var p, typ, idem, sealed sql.RawBytes
			var exp sql.NullInt64
			if err := rows.Scan(&id, &p, &typ, &t, &idem, &sealed, &exp); err != nil {
				tb.Fatal(err)
			}
			n++
			continue
		}
		var pack sql.RawBytes
		if err := rows.Scan(&pack); err != nil {
			tb.Fatal(err)
		}
		for len(pack) > 0 {
			next := func(signed bool) int64 {
				var v int64
				var k int
				if signed {
					v, k = binary.Varint(pack)
				} else {
					var u uint64
					u, k = binary.Uvarint(pack)
					v = int64(u)
				}
				if k <= 0 {
					tb.Fatal("bad pack")
				}
				pack = pack[k:]
				return v
			}
			next(false)                  // id delta
			pack = pack[next(false):]    // type
			next(true)                   // time
			if l := next(false); l > 0 { // idem
				pack = pack[l-1:]
			}
			pack = pack[next(false):] // sealed
			next(true)                // expires
			n++
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// packOnce is moveOnce with the prototype's slice move.
// With drop, it only runs the expiry statement and the DELETE, and writes
// nothing: the floor under any move that reads its runs back and zeroes
// them, however cheap its clustered write.
func packOnce(ctx context.Context, db *engine, limit int, how string) (moved int, more bool, err error) {
	moved, _, more, err = db.moveSlices(ctx, limit, func(tx *txn, ctx context.Context, last int64, bound any) (int, bool, error) {
		return packMove(ctx, tx, last, bound, how)
	})
	return moved, more, err
}

// packMove is txn.move writing packed rows.
func packMove(ctx context.Context, tx *txn, last int64, bound any, how string) (moved int, more bool, err error) {
	drop := how == "drop"
	where, args := `run <= ?1`, []any{last}
	if bound != nil {
		where, args = `run IN (SELECT run FROM event_runs WHERE run <= ?1) AND pseudonym < ?2`, []any{last, bound}
	}
	all := false
	if bound == nil {
		if err := tx.tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM event_runs WHERE run > ?)`, last).Scan(&all); err != nil {
			return 0, true, err
		}
	}
	del, delArgs := `DELETE FROM events_new WHERE `+where, args
	if all {
		del, delArgs = `DELETE FROM events_new`, nil
	}
	if _, err := tx.tx.ExecContext(ctx, moveExpiryInto+where+moveExpiryGroup, args...); err != nil {
		return 0, true, err
	}
	// The range read, in table order: grouped by subject in Go.
	var pk packer
	q := `SELECT ` + eventColumns + ` FROM events_new WHERE ` + where
	if drop {
		q += ` AND 0`
	}
	rows, err := tx.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, true, err
	}
	var in int64
	for rows.Next() {
		var id, t int64
		var p, typ, idem, sealed sql.RawBytes
		var exp sql.NullInt64
		if err := rows.Scan(&id, &p, &typ, &t, &idem, &sealed, &exp); err != nil {
			rows.Close()
			return 0, true, err
		}
		in++
		pk.add(p, id, typ, t, idem, sealed, exp)
	}
	if err := rows.Err(); err != nil {
		return 0, true, err
	}
	tbl := "events_packed"
	if how == "pack-rowid" {
		tbl = "events_packed_rowid"
	}
	if err := pk.write(ctx, tx, tbl); err != nil {
		return 0, true, err
	}
	res, err := tx.tx.ExecContext(ctx, del, delArgs...)
	if err != nil {
		return 0, true, err
	}
	out, err := res.RowsAffected()
	if err != nil {
		return 0, true, err
	}
	if drop {
		in = out
	}
	if in != out {
		return 0, true, fmt.Errorf("packed %d but would delete %d", in, out)
	}
	if bound != nil {
		return int(in), true, nil
	}
	if _, err := tx.tx.ExecContext(ctx, `DELETE FROM event_runs WHERE run <= ?`, last); err != nil {
		return 0, true, err
	}
	if err := tx.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM event_runs)`).Scan(&more); err != nil {
		return 0, true, err
	}
	return int(in), more, nil
}
