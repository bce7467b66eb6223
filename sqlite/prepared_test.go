package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
	"github.com/portrait-dev/portrait/tables"
)

// Open prepares every write-path statement once, on the write pool, and
// each text only once.
func TestWriteStatementsPrepared(t *testing.T) {
	db := openTest(t)
	seen := map[string]bool{}
	for _, q := range writeQueries {
		if seen[q] {
			t.Errorf("writeQueries lists %.60q twice", q)
		}
		seen[q] = true
		if db.writes[q] == nil {
			t.Errorf("%.60q was not prepared at Open", q)
		}
	}
	if len(db.writes) != len(seen) {
		t.Errorf("Open prepared %d statements, want %d", len(db.writes), len(seen))
	}
}

// A Tx method whose text Open did not prepare fails loudly rather than
// parsing it on every call.
func TestUnpreparedStatementRefused(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	err := db.Update(ctx, func(tx guard.Tx) error {
		_, err := tx.(*txn).exec(ctx, `DELETE FROM labels`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "not prepared at Open") {
		t.Fatalf("exec of an unprepared statement = %v, want a refusal", err)
	}
}

// A Tx's LogSize and LogHashes (tables.DB over prepared) run statements
// prepared at Open only while the texts tables sends in this dialect are
// among writeQueries; otherwise they would silently be parsed again.
func TestLogQueriesArePrepared(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	err := db.Update(ctx, func(tx guard.Tx) error {
		rec := &recorder{q: prepared{tx.(*txn)}}
		if _, err := shared(rec).LogSize(ctx); err != nil {
			return err
		}
		// The log is empty, so the hash is missing: only the query matters.
		shared(rec).LogHashes(ctx, []int64{0})
		if len(rec.seen) != 2 {
			t.Errorf("ran %d queries, want 2", len(rec.seen))
		}
		for _, q := range rec.seen {
			if tx.(*txn).db.writes[q] == nil {
				t.Errorf("query %q is not prepared at Open", q)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is a tables.Querier that notes the text of every query.
type recorder struct {
	q    tables.Querier
	seen []string
}

func (r *recorder) Query(ctx context.Context, query string, args ...any) (tables.Rows, error) {
	r.seen = append(r.seen, query)
	return r.q.Query(ctx, query, args...)
}

func (r *recorder) QueryRow(ctx context.Context, query string, args ...any) tables.Row {
	r.seen = append(r.seen, query)
	return r.q.QueryRow(ctx, query, args...)
}

func (r *recorder) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	r.seen = append(r.seen, query)
	return r.q.Exec(ctx, query, args...)
}

// LP-3: PutLabels writes any number of values in one statement: binary
// sealed values survive the JSON parameter byte for byte, a zero expiry
// stays NULL, and a (subject, label) repeated in one call keeps its last
// value, as one-by-one upserts would.
func TestPutLabelsBatch(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	sealed := func(i int) []byte {
		b := []byte{0, 0xff, '"', '\\', byte(i), byte(i >> 8)}
		return append(b, fmt.Sprintf("value-%d", i)...)
	}
	tests := []struct {
		name   string
		n      int // values for subjects s0..s(n-1), one label each
		repeat bool
	}{
		{"one", 1, false},
		{"past the old chunk of 128", 300, false},
		{"repeated subject and label", 5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t)
			var values []portrait.LabelValue
			var subjects []portrait.SubjectKey
			var grants []policy.Grant
			for i := range tc.n {
				p := fmt.Sprintf("s%d", i)
				subjects = append(subjects, portrait.SubjectKey{Pseudonym: portrait.Pseudonym(p), WrappedKey: []byte("k")})
				grants = append(grants, storetest.Grant(t, portrait.Pseudonym(p), policy.Read))
				lv := portrait.LabelValue{Grant: storetest.Grant(t, portrait.Pseudonym(p), policy.Derive), Pseudonym: portrait.Pseudonym(p), Label: "fan", Version: i,
					Sealed: sealed(i), Computed: base.Add(time.Duration(i) * time.Second)}
				if i%2 == 1 {
					lv.Expires = base.Add(time.Hour)
				}
				values = append(values, lv)
				if tc.repeat {
					again := lv
					again.Version, again.Sealed = i+1000, sealed(i+1000)
					values = append(values, again)
				}
			}
			err := db.Update(ctx, func(tx guard.Tx) error {
				if err := tx.EnsureSubjects(ctx, subjects); err != nil {
					return err
				}
				return tx.PutLabels(ctx, values)
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := guard.New(db).LabelsFor(ctx, grants)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.n {
				p := fmt.Sprintf("s%d", i)
				want := values[i]
				if tc.repeat {
					want = values[2*i+1]
				}
				ls := got[portrait.Pseudonym(p)]
				if len(ls) != 1 {
					t.Fatalf("labels of %s = %+v, want one", p, ls)
				}
				l := ls[0]
				if l.Version != want.Version || !bytes.Equal(l.Sealed, want.Sealed) || !l.Computed.Equal(want.Computed) || !l.Expires.Equal(want.Expires) {
					t.Errorf("label of %s = v%d %q computed %v expires %v; want v%d %q computed %v expires %v",
						p, l.Version, l.Sealed, l.Computed, l.Expires, want.Version, want.Sealed, want.Computed, want.Expires)
				}
			}
		})
	}
}
