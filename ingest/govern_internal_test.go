package ingest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// governed is an Ingester without a store: what decides and seals events,
// for the governance half of ingest on its own.
type governed struct {
	in      *Ingester
	cat     *catalog.Catalog
	now     time.Time
	states  map[portrait.Pseudonym]*policy.State
	ciphers map[portrait.Pseudonym]*keys.Cipher
}

func newGoverned(tb testing.TB, subjects int) *governed {
	tb.Helper()
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		tb.Fatal(err)
	}
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		tb.Fatal(err)
	}
	g := &governed{cat: cat, now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
		states: map[portrait.Pseudonym]*policy.State{}, ciphers: map[portrait.Pseudonym]*keys.Cipher{}}
	g.in = New(Deps{Point: policy.New(cat), Keys: kr}, Options{Now: func() time.Time { return g.now }})
	for i := range subjects {
		id := fmt.Sprintf("s%d", i)
		ps := kr.Pseudonym(id)
		_, c, err := kr.NewSubject(id)
		if err != nil {
			tb.Fatal(err)
		}
		g.ciphers[ps] = c
		g.states[ps] = &policy.State{Pseudonym: ps, Consents: map[string]policy.Consent{
			"personalization": {Status: policy.Granted, NoticeVersion: "1", At: g.now.Add(-time.Hour)}}}
	}
	return g
}

// run decodes, checks and decides body as Ingest does before its store
// call, and returns the outcomes in request order.
func (g *governed) run(tb testing.TB, body []byte) ([]Result, []pending, []decided) {
	items, err := Decode(bytes.NewReader(body), true)
	if err != nil {
		tb.Fatal(err)
	}
	results := make([]Result, len(items))
	todo := g.in.check(g.cat, g.now, items, results)
	per := make([]*policy.State, len(todo))
	for i, p := range todo {
		per[i] = g.states[p.pseudonym]
	}
	return results, todo, g.in.decideAll(g.cat, g.now, policy.Caller{Role: policy.Operator, ID: "test"}, todo, per, g.ciphers)
}

func viewBatch(n int, t0 time.Time) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":%q,"fields":{"item":"item-%d","category":"sports","price":%d}}`+"\n",
			i%100, t0.Add(-time.Duration(i)*time.Second).Format(time.RFC3339), i, i%500)
	}
	return b.Bytes()
}

// BenchmarkGovern is the governance half of BenchmarkIngest/burst without
// the store: decode, validate, pseudonymise, decide, minimise, encode and
// seal one request of 1,000 view events, on every core as Ingest runs it.
// cpu-ns/event is the process's CPU time per event (both cores).
func BenchmarkGovern(b *testing.B) {
	const batch = 1000
	g := newGoverned(b, 100)
	body := viewBatch(batch, g.now)
	b.ReportAllocs()
	c0 := processCPU(b)
	for b.Loop() {
		_, todo, out := g.run(b, body)
		if len(todo) != batch || out[batch-1].problem != nil || out[batch-1].err != nil {
			b.Fatalf("%d of %d events passed, last %+v", len(todo), batch, out[batch-1])
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((processCPU(b)-c0).Nanoseconds())/float64(b.N*batch), "cpu-ns/event")
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
