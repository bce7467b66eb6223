package derive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

var updateGolden = flag.Bool("derive.golden", false, "TestBatchGolden: rewrite testdata/batch.golden from this build")

// TestBatchGolden runs batch derivation twice over a generated population
// — consents to one, two or three purposes, withdrawals, objections,
// suppressed labels, profile fields, views, searches and purchases in and
// out of every label's window, subjects with no events — in pages of 7,
// on both stores, and requires exactly what the batch code of session 5
// (main 7ab133a) stored and recorded on the same data: every label's
// sealed plaintext byte for byte, the labels stored and removed, the
// summaries and the audit records of both runs. Between the runs one
// subject withdraws, one objects and one restores a label. The golden
// file was written by that code (-derive.golden); any change to the
// batch path must leave it as it is.
func TestBatchGolden(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		got := goldenRuns(t, e)
		path := filepath.Join("testdata", "batch.golden")
		if *updateGolden && strings.HasSuffix(t.Name(), "sqlite") {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		checkGolden(t, got)
	})
}

// checkGolden fails t unless got is testdata/batch.golden.
func checkGolden(t *testing.T, got []byte) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", "batch.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("line %d differs from the golden output:\ngot  %s\nwant %s", i+1, g, w)
			}
		}
	}
}

// goldenRuns builds the population, runs batch derivation twice and
// returns what was stored and recorded, one line per fact.
func goldenRuns(t *testing.T, e *env) []byte {
	ctx := context.Background()
	// A fixed master key: pseudonyms, and so pages and their audit
	// records, are the same in every run.
	master := bytes.Repeat([]byte{7}, keys.MasterSize)
	var err error
	if e.keys, err = keys.New(master); err != nil {
		t.Fatal(err)
	}
	if e.log, err = audit.New("portrait.test/log", e.keys.LogKey()); err != nil {
		t.Fatal(err)
	}
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: e.log, Keys: e.keys}, consent.Options{Now: e.clock}); err != nil {
		t.Fatal(err)
	}
	in := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
	eng, err := derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, derive.Options{Now: e.clock, PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 64
	who := make([]string, n)
	categories := []string{"sports", "books", "music", "garden", "sports"}
	for i := range n {
		w := fmt.Sprintf("g%03d", i)
		who[i] = w
		for _, p := range []struct {
			purpose string
			chance  int
		}{{"personalization", 85}, {"marketing", 45}, {"credit", 30}} {
			if rng.IntN(100) < p.chance {
				e.consent(t, w, p.purpose, policy.Granted)
			}
		}
		if i%11 == 3 {
			e.consent(t, w, "personalization", policy.Withdrawn)
		}
		var items []ingest.Item
		for range rng.IntN(30) {
			// Microseconds: PostgreSQL keeps no more.
			at := e.now.Add(-time.Duration(rng.Int64N(int64(420 * 24 * time.Hour)))).Truncate(time.Microsecond)
			var ev portrait.Event
			switch k := rng.IntN(10); {
			case k < 6:
				ev = view(w, categories[rng.IntN(len(categories))], 0, at)
				ev.Fields["price"] = float64(rng.IntN(900)) / 4
				if rng.IntN(3) == 0 {
					ev.Fields["device"] = "d-" + w
				}
			case k < 9:
				ev = purchase(w, float64(rng.IntN(400000))/100, at)
				ev.Fields["quantity"] = float64(1 + rng.IntN(4))
			default:
				ev = portrait.Event{SubjectID: w, Type: "search", Time: at, Fields: map[string]any{"search_query": "q<" + w + ">&\"x\""}}
			}
			items = append(items, ingest.Item{Event: ev})
		}
		if i%9 == 0 { // a sports fan
			for k := range 6 {
				items = append(items, ingest.Item{Event: view(w, "sports", time.Duration(k+1)*26*time.Hour, e.now)})
			}
		}
		if i%4 == 1 {
			items = append(items, ingest.Item{Event: portrait.Event{SubjectID: w, Type: "profile", Time: e.now.Add(-time.Duration(i) * time.Hour),
				Fields: map[string]any{"age": float64(20 + i%50), "income": float64(1000 * (i % 23)), "city": "杭州"}}})
		}
		if len(items) > 0 {
			if _, _, err := in.Ingest(ctx, operator, items); err != nil {
				t.Fatal(err)
			}
		}
		ps := e.keys.Pseudonym(w)
		switch {
		case i%13 == 5:
			if err := e.ledger.SetFlags(ctx, operator, ps, portrait.Flags{ObjectProfiling: true, Personalization: 100}, consent.KindObjection); err != nil {
				t.Fatal(err)
			}
		case i%17 == 2:
			if err := e.ledger.Suppress(ctx, operator, ps, "sports_fan", true); err != nil {
				t.Fatal(err)
			}
		case i%19 == 4:
			if err := e.ledger.Suppress(ctx, operator, ps, "rfm", true); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out bytes.Buffer
	run := func(name string) {
		from, err := e.store.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := eng.All(ctx, nil)
		fmt.Fprintf(&out, "%s: error %v\n", name, err)
		fmt.Fprintf(&out, "%s: subjects %d events %d written %d removed %d failed %d failures %q errors %q\n",
			name, sum.Subjects, sum.Events, sum.Written, sum.Removed, sum.Failed, sum.Failures, sum.Errors)
		to, err := e.store.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		datas, err := e.log.Entries(ctx, e.store, from, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range datas {
			r, err := audit.Decode(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := r.Detail["fit_ms"]; ok {
				r.Detail["fit_ms"] = "(time taken)"
			}
			detail, _ := json.Marshal(r.Detail)
			fmt.Fprintf(&out, "%s: audit %s %s %s %s %s\n", name, r.Kind, r.Action, r.Actor, r.Time.UTC().Format(time.RFC3339Nano), detail)
		}
		for _, w := range who {
			ps := e.keys.Pseudonym(w)
			c, lvs := e.accessLabels(t, w)
			slices.SortFunc(lvs, func(a, b portrait.LabelValue) int { return strings.Compare(a.Label, b.Label) })
			var ids []string
			for _, lv := range lvs {
				ids = append(ids, lv.Label)
			}
			fmt.Fprintf(&out, "%s: %s stored %v\n", name, w, ids)
			for _, lv := range lvs {
				plain, err := c.Open(lv.Sealed, derive.AD(ps, lv.Label))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&out, "%s: %s %s v%d computed %s expires %s %s\n", name, w, lv.Label, lv.Version,
					lv.Computed.UTC().Format(time.RFC3339Nano), lv.Expires.UTC().Format(time.RFC3339Nano), plain)
			}
		}
	}
	run("first")
	// Between the runs: a withdrawal, an objection and a restored label.
	e.consent(t, who[0], "personalization", policy.Withdrawn)
	if err := e.ledger.SetFlags(ctx, operator, e.keys.Pseudonym(who[1]), portrait.Flags{ObjectProfiling: true, Personalization: 100}, consent.KindObjection); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Unsuppress(ctx, operator, e.keys.Pseudonym(who[2]), "sports_fan"); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(36 * time.Hour)
	run("second")
	return out.Bytes()
}
