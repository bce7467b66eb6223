package importer_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	portrait "github.com/portrait-dev/portrait"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/examples/cdnow"
	"github.com/portrait-dev/portrait/importer"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/sqlite"
)

var operator = policy.Caller{Role: policy.Operator, ID: "import-test"}

type env struct {
	cat    *catalog.Catalog
	store  *sqlite.DB
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	in     *ingest.Ingester
	eng    *derive.Engine
}

// newEnv wires a fresh SQLite store with the demo catalog and a clock
// fixed at now.
func newEnv(tb testing.TB, now time.Time) *env {
	tb.Helper()
	ctx := context.Background()
	e := &env{}
	var err error
	if e.cat, err = catalog.Load("../examples/demo/catalog.yaml", label.Check); err != nil {
		tb.Fatal(err)
	}
	if e.store, err = sqlite.Open(ctx, filepath.Join(tb.TempDir(), "portrait.db")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.store.Close() })
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	if e.keys, err = keys.New(master); err != nil {
		tb.Fatal(err)
	}
	e.point = policy.New(e.cat)
	log, err := audit.New("portrait.test/log", e.keys.LogKey())
	if err != nil {
		tb.Fatal(err)
	}
	clock := func() time.Time { return now }
	if e.ledger, err = consent.New(consent.Deps{Store: e.store, Point: e.point, Log: log, Keys: e.keys}, consent.Options{Now: clock}); err != nil {
		tb.Fatal(err)
	}
	e.in = ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: log}, ingest.Options{Now: clock})
	if e.eng, err = derive.New(derive.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: log}, derive.Options{Now: clock, PageSize: 1000}); err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestCSVRowErrors(t *testing.T) {
	e := newEnv(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	data := `user,kind,when,item,cost
u1,view,2025-12-31T10:00:00Z,shoe,12.5
u2,view,yesterday,shoe,1
u3,view,2025-12-31T10:00:00Z,shoe,cheap
u4,nosuch,2025-12-31T10:00:00Z,shoe,1
,view,2025-12-31T10:00:00Z,shoe,1
u6,view,2025-12-31T10:00:00Z
`
	o := importer.Options{Format: importer.CSV, Subject: "user", Type: "kind", Time: "when",
		Map: map[string]string{"item": "item", "cost": "price"}, Source: "t.csv"}
	rep, err := importer.Import(context.Background(), e.in, e.cat, operator, strings.NewReader(data), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 6 || rep.Accepted != 1 || rep.Rejected != 5 {
		t.Errorf("report %+v", rep)
	}
	want := []importer.RowError{
		{Line: 3, Field: "when", Code: "invalid_time"},
		{Line: 4, Field: "price", Code: "wrong_type"},
		{Line: 7, Code: "malformed"},
		{Line: 6, Field: "user", Code: "no_subject"},
		{Line: 5, Code: "undeclared_event_type", Requirement: "CM-1"},
	}
	for _, w := range want {
		found := slices.ContainsFunc(rep.Errors, func(g importer.RowError) bool {
			return g.Line == w.Line && g.Field == w.Field && g.Code == w.Code && g.Requirement == w.Requirement && g.Reason != ""
		})
		if !found {
			t.Errorf("no row error %+v in %+v", w, rep.Errors)
		}
	}
	// The same file again stores nothing twice.
	rep, err = importer.Import(context.Background(), e.in, e.cat, operator, strings.NewReader(data), o)
	if err != nil || rep.Duplicates != 1 || rep.Accepted != 0 {
		t.Errorf("second import: %+v %v", rep, err)
	}
}

func TestHeaderRefusals(t *testing.T) {
	e := newEnv(t, time.Now())
	for _, tc := range []struct {
		data string
		o    importer.Options
		says string
	}{
		{"subject,type,time,shoe_size\n", importer.Options{Format: importer.CSV}, `column "shoe_size" is not a declared field`},
		{"subject,type,time,x\n", importer.Options{Format: importer.CSV, Map: map[string]string{"x": "shoe_size"}}, `field "shoe_size" is not declared`},
		{"subject,type,time\n", importer.Options{Format: importer.CSV, Map: map[string]string{"y": "item"}}, `column "y", which the header does not have`},
		{"type,time,item\n", importer.Options{Format: importer.CSV}, `no subject column "subject"`},
		{"subject,time\n", importer.Options{Format: importer.CSV, EventType: "click"}, `--type "click" is not a declared event type`},
		{"", importer.Options{Format: importer.CSV}, "the file is empty"},
		{"", importer.Options{Format: "xlsx"}, `format "xlsx"`},
	} {
		_, err := importer.Import(context.Background(), e.in, e.cat, operator, strings.NewReader(tc.data), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q %+v: got %v, want %q", tc.data, tc.o, err, tc.says)
		}
	}
}

func TestNDJSON(t *testing.T) {
	e := newEnv(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	data := `{"subject":"a","type":"view","time":"2025-12-31T10:00:00Z","fields":{"item":"x"}}

{"subject":"b","type":"view","time":"2025-12-31T10:00:00Z","fields":{"shoe":"x"}}
not json
`
	rep, err := importer.Import(context.Background(), e.in, e.cat, operator, strings.NewReader(data), importer.Options{Format: importer.NDJSON})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 3 || rep.Accepted != 1 || rep.Rejected != 2 || len(rep.Errors) != 2 ||
		rep.Errors[0].Line != 4 && rep.Errors[1].Line != 4 {
		t.Errorf("report %+v", rep)
	}
}

// cdnowLog is the CDNOW purchase log shipped in the repository (and
// embedded in the binary), decompressed once.
func cdnowLog(tb testing.TB) []byte {
	tb.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(cdnow.Log))
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// cdnowEnd is the day after the last purchase in the CDNOW log.
var cdnowEnd = time.Date(1998, 7, 1, 0, 0, 0, 0, time.UTC)

type cdnowRow struct {
	id     string
	at     time.Time
	amount float64
}

// readCDNOW parses the log independently of the importer.
func readCDNOW(tb testing.TB) []cdnowRow {
	var rows []cdnowRow
	sc := bufio.NewScanner(bytes.NewReader(cdnowLog(tb)))
	sc.Scan() // header
	for sc.Scan() {
		c := strings.Fields(sc.Text())
		if len(c) != 4 {
			continue
		}
		at, err := time.Parse("20060102", c[1])
		if err != nil {
			tb.Fatal(err)
		}
		amt, err := strconv.ParseFloat(c[3], 64)
		if err != nil {
			tb.Fatal(err)
		}
		rows = append(rows, cdnowRow{c[0], at, amt})
	}
	return rows
}

// loadCDNOW grants personalization to every customer, then imports the log.
func loadCDNOW(tb testing.TB, e *env, rows []cdnowRow) importer.Report {
	tb.Helper()
	ctx := context.Background()
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.id] {
			continue
		}
		seen[r.id] = true
		if _, err := e.ledger.Record(ctx, operator, consent.ByID(r.id), consent.Change{Purpose: "personalization", Status: policy.Granted, NoticeVersion: "1"}); err != nil {
			tb.Fatal(err)
		}
	}
	rep, err := importer.Import(ctx, e.in, e.cat, operator, bytes.NewReader(cdnowLog(tb)), importer.Options{Format: importer.CDNOW, Source: "CDNOW_master.txt"})
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

// storedLabels decrypts every stored label of every subject.
func storedLabels(tb testing.TB, e *env) map[string]map[string]derive.Stored {
	tb.Helper()
	ctx := context.Background()
	out := map[string]map[string]derive.Stored{}
	for after := portrait.Pseudonym(""); ; {
		page, err := e.store.Pseudonyms(ctx, after, 5000)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		after = page[len(page)-1]
		subs, err := e.store.Subjects(ctx, page)
		if err != nil {
			tb.Fatal(err)
		}
		for _, ps := range page {
			d := e.point.Decide(policy.Request{State: &policy.State{Pseudonym: ps}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
			lvs, err := e.store.Labels(ctx, d.Grant)
			if err != nil {
				tb.Fatal(err)
			}
			c, err := e.keys.Open(subs[ps])
			if err != nil {
				tb.Fatal(err)
			}
			out[string(ps)] = map[string]derive.Stored{}
			for _, lv := range lvs {
				v, err := derive.Open(c, lv)
				if err != nil {
					tb.Fatal(err)
				}
				out[string(ps)][lv.Label] = v
			}
		}
	}
}

// TestCDNOW imports the real CDNOW purchase log (Fader & Hardie) through
// the governed path and checks its RFM labels against label.RFM computed
// straight from the file, and that segments are deterministic.
func TestCDNOW(t *testing.T) {
	rows := readCDNOW(t)
	if testing.Short() {
		t.Skip("imports 69,659 events")
	}
	e := newEnv(t, cdnowEnd)
	rep := loadCDNOW(t, e, rows)
	if rep.Rows != 69659 || rep.Accepted != 69659 || rep.Rejected != 0 || rep.Dropped != 0 {
		t.Fatalf("import report %+v", rep)
	}
	ctx := context.Background()
	sum, err := e.eng.All(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Subjects != 23570 || sum.Events != 69659 {
		t.Errorf("derivation summary %+v, want 23,570 subjects and 69,659 events", sum)
	}
	t.Logf("derivation: %+v (%.0f events/s)", sum, float64(sum.Events)/sum.Elapsed.Seconds())

	// label.RFM over the file's purchases in the label's 365-day window.
	window := time.Duration(e.cat.Label("rfm").Window)
	byID := map[string][]label.Event{}
	for _, r := range rows {
		ps := e.keys.Pseudonym(r.id)
		if _, ok := byID[string(ps)]; !ok {
			byID[string(ps)] = []label.Event{}
		}
		if !r.at.Before(cdnowEnd.Add(-window)) {
			byID[string(ps)] = append(byID[string(ps)], label.Event{Type: "purchase", Time: r.at, Fields: map[string]any{"amount": r.amount}})
		}
	}
	want := label.RFM(cdnowEnd, byID, "purchase", "amount")
	got := storedLabels(t, e)
	withRFM, mismatch := 0, 0
	quintiles := map[string][6]int{}
	segments := map[int]int{}
	descriptions := map[int]string{}
	for ps, w := range want {
		v, ok := got[ps]["rfm"]
		if !ok || v.RFM == nil {
			continue
		}
		withRFM++
		if v.RFM.R != w.R || v.RFM.F != w.F || v.RFM.M != w.M || v.RFM.Class != w.Class || v.RFM.Frequency != w.Frequency {
			if mismatch++; mismatch < 5 {
				t.Errorf("%s: stored %+v, label.RFM %+v", ps, *v.RFM, w)
			}
		}
		for k, s := range map[string]int{"R": v.RFM.R, "F": v.RFM.F, "M": v.RFM.M} {
			q := quintiles[k]
			q[s]++
			quintiles[k] = q
		}
		seg := got[ps]["shopper_segment"]
		segments[seg.Segment]++
		descriptions[seg.Segment] = seg.Facts[0].Text["en"]
	}
	if withRFM != 23570 || mismatch != 0 {
		t.Errorf("%d customers with an RFM label (want 23,570), %d differ from label.RFM", withRFM, mismatch)
	}
	t.Logf("quintile sizes (score 1..5): %v", quintiles)
	t.Logf("segments: %v %v", segments, descriptions)
	if len(segments) != 4 || len(descriptions) != 4 {
		t.Errorf("segments %v: want 4 described segments", segments)
	}

	// A second run gives the same segments.
	if _, err := e.eng.All(ctx, nil); err != nil {
		t.Fatal(err)
	}
	again := storedLabels(t, e)
	for ps, v := range got {
		if a := again[ps]["shopper_segment"]; a.Segment != v["shopper_segment"].Segment {
			t.Fatalf("%s: segment %d, then %d", ps, v["shopper_segment"].Segment, a.Segment)
		}
	}
}

// BenchmarkDeriveCDNOW runs batch derivation over the imported CDNOW log
// (69,659 events, 23,570 customers, all granted personalization).
func BenchmarkDeriveCDNOW(b *testing.B) {
	rows := readCDNOW(b)
	e := newEnv(b, cdnowEnd)
	loadCDNOW(b, e, rows)
	var sum derive.Summary
	for b.Loop() {
		var err error
		if sum, err = e.eng.All(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sum.Events)/sum.Elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(sum.Subjects), "subjects")
}

// TestGrant imports with Options.Grant: consent is recorded through the
// ledger for each new subject before its events, marked as imported; a
// subject's own refusal stands (CN-4); a second import records nothing;
// purposes that cannot be bulk-granted are refused before anything loads
// (SM-2).
func TestGrant(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, now)
	ctx := context.Background()
	if _, err := e.ledger.Record(ctx, operator, consent.ByID("b"), consent.Change{Purpose: "personalization", Status: policy.Refused}); err != nil {
		t.Fatal(err)
	}
	var data strings.Builder
	data.WriteString("subject,type,time,category\n")
	for i := range 18 {
		fmt.Fprintf(&data, "%c,view,%s,sports\n", 'a'+i%3, now.Add(-time.Duration(i+1)*time.Hour).Format(time.RFC3339))
	}
	o := importer.Options{Format: importer.CSV, Source: "views.csv", Grant: []string{"personalization"}, Ledger: e.ledger, Keys: e.keys}

	for _, tc := range []struct {
		grant []string
		says  string
	}{
		{[]string{"nosuch"}, `"nosuch": not a declared purpose`},
		{[]string{"service"}, "basis is contract, not consent"},
		{[]string{"personalization", "credit"}, "needs separate consent (SM-2"},
	} {
		bad := o
		bad.Grant = tc.grant
		rep, err := importer.Import(ctx, e.in, e.cat, operator, strings.NewReader(data.String()), bad)
		if err == nil || !strings.Contains(err.Error(), tc.says) || rep.Rows != 0 {
			t.Errorf("grant %v: %+v %v; want a refusal saying %q and nothing read", tc.grant, rep, err, tc.says)
		}
	}
	noLedger := o
	noLedger.Ledger = nil
	if _, err := importer.Import(ctx, e.in, e.cat, operator, strings.NewReader(data.String()), noLedger); err == nil {
		t.Error("a grant without a ledger was accepted")
	}
	if n, err := e.eng.All(ctx, nil); err != nil || n.Subjects != 1 {
		t.Fatalf("after the refusals the store holds %d subjects (%v); want only b", n.Subjects, err)
	}

	rep, err := importer.Import(ctx, e.in, e.cat, operator, strings.NewReader(data.String()), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Accepted != 18 || rep.Granted != 2 || rep.Kept != 1 {
		t.Errorf("report %+v: want 18 accepted, 2 grants, b's refusal kept", rep)
	}
	for id, want := range map[string]policy.Status{"a": policy.Granted, "b": policy.Refused, "c": policy.Granted} {
		h, err := e.ledger.History(ctx, accessGrant(t, e.point, e.keys.Pseudonym(id)))
		if err != nil {
			t.Fatal(err)
		}
		last := h[len(h)-1]
		if len(h) != 1 || last.Status != want {
			t.Errorf("%s: history %+v; want one %s record", id, h, want)
		}
		if want == policy.Granted && (last.Channel != importer.GrantChannel || last.UserAgent != importer.GrantEvidence) {
			t.Errorf("%s: granted through channel %q with evidence %q; want it marked as a bulk import", id, last.Channel, last.UserAgent)
		}
	}
	rep, err = importer.Import(ctx, e.in, e.cat, operator, strings.NewReader(data.String()), o)
	if err != nil || rep.Granted != 0 || rep.Duplicates != 18 {
		t.Errorf("second import: %+v %v; want no new grant and 18 duplicates", rep, err)
	}

	// a and c (6 sports views each) are sports fans; b is not profiled.
	if _, err := e.eng.All(ctx, nil); err != nil && !strings.Contains(err.Error(), "shopper_segment") {
		t.Fatal(err)
	}
	got := storedLabels(t, e)
	for id, want := range map[string]bool{"a": true, "b": false, "c": true} {
		v, ok := got[string(e.keys.Pseudonym(id))]["sports_fan"]
		if ok != want || ok && !v.Bool {
			t.Errorf("%s: sports_fan %+v (stored %v); want stored %v and true", id, v, ok, want)
		}
	}
}

// accessGrant is the subject-access grant the rights service would hold.
func accessGrant(tb testing.TB, point *policy.Point, pseudonym portrait.Pseudonym) policy.Grant {
	tb.Helper()
	d := point.Decide(policy.Request{State: &policy.State{Pseudonym: pseudonym}, Action: policy.Access, Caller: policy.Caller{Role: policy.System}})
	if !d.Allow {
		tb.Fatalf("access grant for %s: %v", pseudonym, d.Reasons)
	}
	return d.Grant
}

// CM-2: imported numbers go through ingest's checks: finite, and within
// the field's bounds (by default |x| ≤ 10¹⁵).
func TestImportNumberBounds(t *testing.T) {
	e := newEnv(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	data := `user,kind,when,item,cost
u1,view,2025-12-31T10:00:00Z,shoe,12.5
u2,view,2025-12-31T10:00:00Z,shoe,1e308
u3,view,2025-12-31T10:00:00Z,shoe,NaN
u4,view,2025-12-31T10:00:00Z,shoe,-Inf
u5,view,2025-12-31T10:00:00Z,shoe,1e400
`
	o := importer.Options{Format: importer.CSV, Subject: "user", Type: "kind", Time: "when",
		Map: map[string]string{"item": "item", "cost": "price"}, Source: "t.csv"}
	rep, err := importer.Import(context.Background(), e.in, e.cat, operator, strings.NewReader(data), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 5 || rep.Accepted != 1 || rep.Rejected != 4 {
		t.Errorf("report %+v", rep)
	}
	for _, w := range []importer.RowError{
		{Line: 3, Field: "price", Code: "out_of_range", Requirement: "CM-2"},
		{Line: 4, Field: "price", Code: "not_finite", Requirement: "CM-2"},
		{Line: 5, Field: "price", Code: "not_finite", Requirement: "CM-2"},
		{Line: 6, Field: "price", Code: "wrong_type"},
	} {
		if !slices.ContainsFunc(rep.Errors, func(g importer.RowError) bool {
			return g.Line == w.Line && g.Field == w.Field && g.Code == w.Code && g.Requirement == w.Requirement && g.Reason != ""
		}) {
			t.Errorf("no row error %+v in %+v", w, rep.Errors)
		}
	}
}
