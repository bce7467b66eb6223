package storetest

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
)

// EnvCheckEntries turns on RunCheckLarge: the number of log entries to
// check (10000000 for the figure in docs/BENCHMARKS.md).
const EnvCheckEntries = "PORTRAIT_CHECK_ENTRIES"

// RunCheckLarge measures the server's start-up check (audit.Verifier.Check)
// over a log of $PORTRAIT_CHECK_ENTRIES realistic records, filling the
// store up to that size first (in transactions of 10,000 appends, with a
// checkpoint signed every 10⁵ entries as serve publishes them). It skips
// unless the variable is set: at 10⁷ entries filling takes many minutes.
func RunCheckLarge(t *testing.T, s portrait.Store) {
	n, err := strconv.ParseInt(os.Getenv(EnvCheckEntries), 10, 64)
	if err != nil || n <= 0 {
		t.Skip(EnvCheckEntries + " is not set to a number of entries")
	}
	ctx := context.Background()
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	l, err := audit.New("portrait.bench/log", key)
	if err != nil {
		t.Fatal(err)
	}
	have, err := s.LogSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	allow := true
	for have < n {
		batch := min(10_000, n-have)
		recs := make([]audit.Record, batch)
		for i := range recs {
			x := have + int64(i)
			recs[i] = audit.Record{Kind: "decision", Time: time.Date(2026, 12, 6, 0, 0, 0, int(x), time.UTC), Actor: "operator:operator-1a2b3c4d",
				Pseudonym: portrait.Pseudonym(fmt.Sprintf("%032x", x*2654435761)), Purpose: "credit", Action: "decide", Allow: &allow,
				Codes: []string{"AD-1", "CN-11"}, Digest: fmt.Sprintf("%064x", x), Detail: map[string]any{"usecase": "credit_limit", "outcome": "approve"}}
		}
		if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { _, err := l.Append(ctx, tx, recs...); return err }); err != nil {
			t.Fatal(err)
		}
		have += batch
		if have%100_000 == 0 || have == n {
			note, err := l.Sign(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, note) }); err != nil {
				t.Fatal(err)
			}
			if have%1_000_000 == 0 {
				t.Logf("filled %d entries in %v", have, time.Since(start).Round(time.Second))
			}
		}
	}
	fresh, _ := audit.New("portrait.bench/log", key)
	res, err := fresh.Check(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("start-up check: %d entries against the signed checkpoint of %d in %v (%.0f entries/s)",
		res.Entries, res.Checkpoint, res.Elapsed.Round(time.Millisecond), float64(res.Entries)/res.Elapsed.Seconds())
}
