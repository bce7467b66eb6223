package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// A Tamper is one way of changing a stored audit log behind the server's
// back, with SQL on the database itself, as someone with access to it
// would (issue 9 §1).
type Tamper struct {
	Name string
	// Entry is the entry a check must name; -1 when it names the log as
	// a whole (its head was wound back).
	Entry int64
	Do    func(tb testing.TB, db Raw)
}

// Tampers are the experiments on a log of size entries (at least 3):
// edit a record's data, swap two records, delete the last record and wind
// the head back, change a record's kind column.
func Tampers(size int64) []Tamper {
	return []Tamper{
		{"edit", 1, func(tb testing.TB, db Raw) {
			EditLogEntry(tb, db, 1, func(data []byte) []byte {
				// Move the record's time back a millennium: still a record.
				i := bytes.Index(data, []byte(`"time":"2`))
				if i < 0 {
					tb.Fatalf("entry 1 has no time: %s", data)
				}
				out := bytes.Clone(data)
				out[i+len(`"time":"`)] = '1'
				return out
			})
		}},
		{"swap", 1, func(tb testing.TB, db Raw) {
			db.Exec(tb, `UPDATE log_entries SET idx = -1 WHERE idx = 1`)
			db.Exec(tb, `UPDATE log_entries SET idx = 1 WHERE idx = 2`)
			db.Exec(tb, `UPDATE log_entries SET idx = 2 WHERE idx = -1`)
		}},
		{"truncate", -1, func(tb testing.TB, db Raw) {
			db.Exec(tb, fmt.Sprintf(`DELETE FROM log_entries WHERE idx = %d`, size-1))
			db.Exec(tb, fmt.Sprintf(`UPDATE log_head SET size = %d`, size-1))
		}},
		{"kind", 1, func(tb testing.TB, db Raw) {
			db.Exec(tb, `UPDATE log_entries SET kind = 'tampered' WHERE idx = 1`)
		}},
	}
}

// EditLogEntry replaces the data of log entry index with edit(data),
// leaving its hashes as they are.
func EditLogEntry(tb testing.TB, db Raw, index int64, edit func([]byte) []byte) {
	tb.Helper()
	data := db.Bytes(tb, fmt.Sprintf(`SELECT data FROM log_entries WHERE idx = %d`, index))
	db.Exec(tb, fmt.Sprintf(`UPDATE log_entries SET data = ? WHERE idx = %d`, index), edit(data))
}

// Raw is a plain connection to a store's database, for changing it
// behind the store's back as someone with access to the database would.
// Parameters are written "?". Each engine's test code provides one:
// sqlitetest.Raw for SQLite, PostgresRaw here for PostgreSQL; a failure
// fails tb.
type Raw interface {
	Exec(tb testing.TB, q string, args ...any)
	Bytes(tb testing.TB, q string) []byte
}

// PostgresRaw returns a Raw on the PostgreSQL database at url, closed
// when tb ends.
func PostgresRaw(tb testing.TB, url string) Raw {
	tb.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return pgRaw{c}
}

type pgRaw struct{ c *pgx.Conn }

func (db pgRaw) Exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	for i := range args {
		q = strings.Replace(q, "?", fmt.Sprintf("$%d", i+1), 1)
	}
	if _, err := db.c.Exec(context.Background(), q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

func (db pgRaw) Bytes(tb testing.TB, q string) []byte {
	tb.Helper()
	var b []byte
	if err := db.c.QueryRow(context.Background(), q).Scan(&b); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return b
}

// RunTamper runs the tamper experiments on a store: each is detected by a
// full check (the server's start-up check), and a Log that verified the
// log before the change refuses the changed records (or, for a wound-back
// head, to sign) with audit.ErrTampered naming the entry. open returns a
// fresh, empty store and a Raw on its database.
func RunTamper(t *testing.T, open func(t *testing.T) (portrait.Store, Raw)) {
	const size = 6
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	for _, tt := range Tampers(size) {
		t.Run(tt.Name, func(t *testing.T) {
			ctx := context.Background()
			s, raw := open(t)
			l, err := audit.New("portrait.test/log", key)
			if err != nil {
				t.Fatal(err)
			}
			kinds := []string{"apikey", "mark", "catalog", "decision", "mark", "decision"}
			for i, k := range kinds {
				rec := audit.Record{Kind: k, Time: time.Date(2026, 12, 6, 0, 0, i, 0, time.UTC), Pseudonym: "p1", Action: "set"}
				if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { _, err := l.Append(ctx, tx, rec); return err }); err != nil {
					t.Fatal(err)
				}
			}
			note, err := l.Sign(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, note) }); err != nil {
				t.Fatal(err)
			}
			if _, err := l.ReadVerified(ctx, s, 0, size); err != nil {
				t.Fatalf("honest read: %v", err)
			}
			fresh, _ := audit.New("portrait.test/log", key)
			if _, err := fresh.Check(ctx, s); err != nil {
				t.Fatalf("honest start-up check: %v", err)
			}

			tt.Do(t, raw)

			wantTamper := func(what string, err error) {
				t.Helper()
				var te *audit.TamperError
				if !errors.Is(err, audit.ErrTampered) || !errors.As(err, &te) {
					t.Fatalf("%s after %s: %v, want audit.ErrTampered", what, tt.Name, err)
				}
				// A swap is named exactly by the full check; a verified
				// read, which must take proof hashes from the store, may
				// name a neighbour.
				if te.Index != tt.Entry && !(tt.Name == "swap" && what != "start-up check" && te.Index >= 0 && te.Index <= 2) {
					t.Fatalf("%s after %s names entry %d (%v), want %d", what, tt.Name, te.Index, err, tt.Entry)
				}
				if portrait.ErrorCode(err) != portrait.EUNAVAILABLE {
					t.Fatalf("%s: code %q, want %q", what, portrait.ErrorCode(err), portrait.EUNAVAILABLE)
				}
			}
			fresh, _ = audit.New("portrait.test/log", key)
			_, err = fresh.Check(ctx, s)
			wantTamper("start-up check", err)
			if fresh.Failures() != 1 {
				t.Fatalf("Failures() = %d after one failed check, want 1", fresh.Failures())
			}

			// The Log that verified the log before the change.
			if tt.Entry < 0 {
				_, err = l.Sign(ctx, s)
				wantTamper("signing", err)
				return
			}
			_, err = l.ReadVerified(ctx, s, 0, size)
			wantTamper("verified read", err)
			_, err = l.ReadVerifiedKinds(ctx, s, []string{"mark", "catalog", "tampered"}, 0, size)
			wantTamper("verified read by kind", err)
			// A Log starting from the stored checkpoint, without a full check.
			lazy, _ := audit.New("portrait.test/log", key)
			_, err = lazy.ReadVerifiedKinds(ctx, s, []string{"mark", "catalog", "tampered"}, 0, size)
			wantTamper("verified read by kind from the signed checkpoint", err)
		})
	}
}
