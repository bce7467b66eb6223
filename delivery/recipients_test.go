package delivery_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/storetest"
)

// eachStoreEnv runs fn on SQLite and, when configured, PostgreSQL.
func eachStoreEnv(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			if pg && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			fn(t, newEnvOn(t, pg))
		})
	}
}

// logDeliveries appends one delivery record per pseudonym, as the
// dispatcher logs a join, and returns the first index.
func logDeliveries(t testing.TB, e *env, action, destination string, pss ...portrait.Pseudonym) int64 {
	t.Helper()
	ctx := context.Background()
	recs := make([]audit.Record, len(pss))
	for i, ps := range pss {
		recs[i] = audit.Record{Kind: "delivery", Time: time.Now().UTC(), Actor: "system:delivery", Pseudonym: ps, Action: action, Purpose: "personalization",
			Detail: map[string]any{"destination": destination, "audience": "sports"}}
	}
	var first int64
	err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		first, err = e.log.Append(ctx, tx, recs...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return first
}

func destinations(t *testing.T, e *env, ps portrait.Pseudonym) []string {
	t.Helper()
	rs, err := delivery.Recipients(context.Background(), e.store.(delivery.LogIndex), e.log, ps)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Destination)
	}
	return out
}

// Recipients reads a subject's delivery records through the index of log
// records by subject: records appended after an export are indexed by the
// next one; a "left" record adds nothing; an index row pointing at
// another subject's record is refused, not believed.
func TestRecipientsIndexed(t *testing.T) {
	eachStoreEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ann, ben := portrait.Pseudonym(strings.Repeat("a", 64)), portrait.Pseudonym(strings.Repeat("b", 64))
		logDeliveries(t, e, "joined", "ads", ann, ben)
		if got := destinations(t, e, ann); !slices.Equal(got, []string{"ads"}) {
			t.Fatalf("ann's recipients: %v", got)
		}
		idx := e.store.(delivery.LogIndex)
		size, _ := idx.LogSize(ctx)
		if _, upto, err := idx.LogSubjectIndex(ctx, "delivery", ann); err != nil || upto != size {
			t.Fatalf("index up to %d (%v), log size %d", upto, err, size)
		}
		logDeliveries(t, e, "left", "ads", ann)
		benCRM := logDeliveries(t, e, "joined", "crm", ben)
		logDeliveries(t, e, "joined", "crm", ann)
		if got := destinations(t, e, ann); !slices.Equal(got, []string{"ads", "crm"}) {
			t.Fatalf("ann's recipients after more records: %v", got)
		}
		if got := destinations(t, e, ben); !slices.Equal(got, []string{"ads", "crm"}) {
			t.Fatalf("ben's recipients: %v", got)
		}
		if got := destinations(t, e, portrait.Pseudonym(strings.Repeat("c", 64))); len(got) != 0 {
			t.Fatalf("a subject never delivered: %v", got)
		}
		// A forged index row: ann → ben's record.
		size, _ = idx.LogSize(ctx)
		err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			return tx.(interface {
				IndexLogSubjects(ctx context.Context, kind string, upto int64, pss []portrait.Pseudonym, idxs []int64) error
			}).IndexLogSubjects(ctx, "delivery", size, []portrait.Pseudonym{ann}, []int64{benCRM})
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := delivery.Recipients(ctx, idx, e.log, ann); err == nil || !strings.Contains(err.Error(), "another subject") {
			t.Fatalf("a forged index row: %v, want a refusal", err)
		}
	})
}

// scanRecipients is Recipients as it was before the index: every delivery
// record in the log read and verified, kept if it names ps.
func scanRecipients(ctx context.Context, e *env, ps portrait.Pseudonym) (int, error) {
	size, err := e.store.LogSize(ctx)
	if err != nil {
		return 0, err
	}
	es, err := e.log.ReadVerifiedKinds(ctx, e.store, []string{"delivery"}, 0, size)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, en := range es {
		if en.Record.Action == "joined" && en.Record.Pseudonym == ps {
			n++
		}
	}
	return n, nil
}

// TestRecipientsCost measures one subject's recipients with 10⁴ delivery
// records in the log, read by scanning every delivery record (before) and
// through the index (after). Opt-in: PORTRAIT_BENCH=1.
func TestRecipientsCost(t *testing.T) {
	if os.Getenv("PORTRAIT_BENCH") == "" {
		t.Skip("PORTRAIT_BENCH is not set")
	}
	eachStoreEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const records, subjects = 10000, 1000
		for chunk := 0; chunk < records; chunk += 500 {
			pss := make([]portrait.Pseudonym, 500)
			for i := range pss {
				pss[i] = portrait.Pseudonym(fmt.Sprintf("%064x", (chunk+i)%subjects))
			}
			logDeliveries(t, e, "joined", fmt.Sprintf("dest-%d", chunk/500), pss...)
		}
		idx := e.store.(delivery.LogIndex)
		start := time.Now()
		if _, err := delivery.Recipients(ctx, idx, e.log, portrait.Pseudonym(fmt.Sprintf("%064x", 0))); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		const rounds = 20
		var scan, indexed time.Duration
		for i := range rounds {
			ps := portrait.Pseudonym(fmt.Sprintf("%064x", i*37%subjects))
			start := time.Now()
			n, err := scanRecipients(ctx, e, ps)
			if err != nil {
				t.Fatal(err)
			}
			scan += time.Since(start)
			start = time.Now()
			rs, err := delivery.Recipients(ctx, idx, e.log, ps)
			if err != nil {
				t.Fatal(err)
			}
			indexed += time.Since(start)
			if len(rs) != n {
				t.Fatalf("%s: index finds %d recipients, the scan %d", ps, len(rs), n)
			}
		}
		t.Logf("%d delivery records, %d subjects: scan %.2f ms/export, index %.2f ms/export (%.0f×); first export indexing all %.0f ms",
			records, subjects, ms(scan/rounds), ms(indexed/rounds), float64(scan)/float64(indexed), ms(first))
	})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
