package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/detect"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rules"
)

// governed is an Ingester without a store: what decides and seals events,
// for the governance half of ingest on its own.
type governed struct {
	in      *Ingester
	cat     *catalog.Catalog
	now     time.Time
	states  map[portrait.Pseudonym]*policy.State
	ciphers map[portrait.Pseudonym]sealer
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
		states: map[portrait.Pseudonym]*policy.State{}, ciphers: map[portrait.Pseudonym]sealer{}}
	g.in = New(Deps{Point: policy.New(cat), Keys: kr}, Options{Now: func() time.Time { return g.now }})
	for i := range subjects {
		id := fmt.Sprintf("s%d", i)
		ps := kr.Pseudonym(id)
		_, c, err := kr.NewSubject(id)
		if err != nil {
			tb.Fatal(err)
		}
		g.ciphers[ps] = sealer{c, keys.EventAD(ps)}
		g.states[ps] = &policy.State{Pseudonym: ps, Consents: map[string]policy.Consent{
			"personalization": {Status: policy.Granted, NoticeVersion: "1", At: g.now.Add(-time.Hour)}}}
	}
	return g
}

// run decodes, checks and decides body as Ingest does before its store
// call, and returns the outcomes in request order.
func (g *governed) run(tb testing.TB, body []byte) ([]Result, []pending, []decided, []portrait.StoredEvent) {
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
	events := make([]portrait.StoredEvent, len(todo))
	out, _ := g.in.decideAll(g.cat, g.now, policy.Caller{Role: policy.Operator, ID: "test"}, todo, per, g.ciphers, events)
	return results, todo, out, events
}

// ViewBatch returns n view events over 100 subjects as NDJSON (exported
// for the package's external benchmarks).
func ViewBatch(n int, t0 time.Time) []byte {
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
	body := ViewBatch(batch, g.now)
	b.ReportAllocs()
	c0 := processCPU(b)
	for b.Loop() {
		_, todo, out, _ := g.run(b, body)
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

// mixedBatch is n events of every outcome check and decide can give:
// accepted views, profile events (sealed profile values, a minor's age),
// dropped fields (income without credit consent), retention passed,
// refusals in validation (undeclared field, wrong type, sensitive
// content) and lines that do not decode.
func mixedBatch(n int, t0 time.Time) []byte {
	var b bytes.Buffer
	for i := range n {
		t := t0.Add(-time.Duration(i) * time.Second).Format(time.RFC3339)
		switch i % 9 {
		case 0, 1, 2:
			fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":%q,"fields":{"item":"item-%d","category":"sports","price":%d,"device":"d%d"}}`, i%37, t, i, i%500, i%3)
		case 3:
			fmt.Fprintf(&b, `{"subject":"s%d","type":"profile","time":%q,"fields":{"city":"北京","age":%d,"income":%d}}`, i%37, t, 10+i%40, 1000*i)
		case 4:
			fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":%q,"fields":{"item":"a","colour":"red"}}`, i%37, t)
		case 5:
			fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":%q,"fields":{"price":"cheap"}}`, i%37, t)
		case 6:
			fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":%q,"fields":{"item":"call 13812345678"}}`, i%37, t)
		case 7:
			fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":"2020-01-01T00:00:00Z","fields":{"item":"old"}}`, i%37)
		default:
			fmt.Fprintf(&b, `{"subject":"s%d","type":`, i)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Decode, check and decide run on every core; what they give must be what
// one core gives, event by event and in request order: the results, the
// events that pass, the decisions, the sealed bytes opened, the digest
// sums and the profile values.
func TestParallelMatchesSerial(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"below the split", minParallel - 1},
		{"one chunk", 1000},
		{"odd size", 4*minParallel + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGoverned(t, 37)
			body := mixedBatch(tc.n, g.now)
			type outcome struct {
				Results []Result
				Pending []string
				Decided []string
			}
			run := func(procs int) outcome {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				results, todo, out, events := g.run(t, body)
				o := outcome{Results: results}
				for _, p := range todo {
					o.Pending = append(o.Pending, fmt.Sprintf("%d %s %s %v", p.index, p.pseudonym, p.event.SubjectID, p.lexicon))
				}
				for i, d := range out {
					s := sealer{}
					if c, ok := g.ciphers[todo[i].pseudonym]; ok {
						s = c
					}
					line := fmt.Sprintf("err=%v problem=%+v digest=%v dropped=%v sum=%x", d.err, d.problem, d.digest, d.dropped, d.sum)
					if ev := events[i]; ev.Sealed != nil {
						plain, err := s.c.Open(ev.Sealed, s.ad)
						if err != nil {
							t.Fatal(err)
						}
						line += fmt.Sprintf(" fields=%v type=%s time=%s expires=%s plain=%s", ev.Grant.Fields(), ev.Type, ev.Time, ev.Expires, plain)
					}
					for _, v := range d.profile {
						plain, err := s.c.Open(v.Sealed, keys.ProfileAD(todo[i].pseudonym, v.Field))
						if err != nil {
							t.Fatal(err)
						}
						line += fmt.Sprintf(" profile %s=%s %s", v.Field, plain, v.Expires)
					}
					o.Decided = append(o.Decided, line)
				}
				return o
			}
			serial, parallel := run(1), run(4)
			// The batch must mix every outcome, or the comparison proves
			// little.
			seen := map[string]bool{}
			for _, r := range serial.Results {
				if r.Problem != nil {
					seen[r.Code] = true
				}
			}
			for _, d := range serial.Decided {
				for _, w := range []string{"problem=&{Code:retention_passed", "dropped=[{income", "profile age=", "plain={"} {
					if strings.Contains(d, w) {
						seen[w] = true
					}
				}
			}
			for _, want := range []string{"malformed", "undeclared_field", "wrong_type", "sensitive_content",
				"problem=&{Code:retention_passed", "dropped=[{income", "profile age=", "plain={"} {
				if !seen[want] && tc.n >= 2*9 {
					t.Errorf("no %s in the batch", want)
				}
			}
			if !reflect.DeepEqual(serial, parallel) {
				for i := range serial.Results {
					if !reflect.DeepEqual(serial.Results[i], parallel.Results[i]) {
						t.Errorf("result %d: serial %+v, parallel %+v", i, serial.Results[i], parallel.Results[i])
					}
				}
				for i := range min(len(serial.Decided), len(parallel.Decided)) {
					if serial.Decided[i] != parallel.Decided[i] || serial.Pending[i] != parallel.Pending[i] {
						t.Errorf("event %d:\n serial   %s %s\n parallel %s %s", i, serial.Pending[i], serial.Decided[i], parallel.Pending[i], parallel.Decided[i])
					}
				}
				t.Fatalf("parallel run differs from the serial one")
			}
		})
	}
}

// The scan memo answers what detect.Scan answers, for repeated values,
// for values that share a slot and for another pack.
func TestScanMemo(t *testing.T) {
	pack := rules.Default()
	values := []string{"sports", "13812345678", "sports", "zhang＠example．com", "HIV 检测", "item-1", "13812345678", ""}
	for i := range 600 { // more values than slots: collisions evict
		values = append(values, fmt.Sprintf("item-%d", i), "39.9087,116.3975", "sports")
	}
	var memo scanMemo
	for i, v := range values {
		for _, p := range []*rules.Pack{pack, nil} {
			if got, want := memo.scan(p, v), detect.Scan(p, v); !reflect.DeepEqual(got, want) {
				t.Fatalf("value %d %q (pack %v): memo %v, Scan %v", i, v, p != nil, got, want)
			}
		}
	}
	var none *scanMemo
	if got, want := none.scan(pack, "13812345678"), detect.Scan(pack, "13812345678"); !reflect.DeepEqual(got, want) {
		t.Errorf("nil memo: %v, want %v", got, want)
	}
}

// validate stores a field's value in its declared type's normal form: a
// number as float64, a time as UTC RFC 3339; strings and booleans as they
// came.
func TestValidateNormalises(t *testing.T) {
	g := newGoverned(t, 1)
	cat := *g.cat
	cat.Fields = append(append([]catalog.Field(nil), cat.Fields...), catalog.Field{Name: "seen", Type: catalog.TypeTime,
		Category: "user.behavior.browsing_history", Purposes: []string{"service"}, Retention: catalog.Duration(24 * time.Hour)})
	cat.EventTypes = append(append([]catalog.EventType(nil), cat.EventTypes...), catalog.EventType{ID: "visit", Fields: []string{"seen", "price", "item"}})
	cat.Index()
	for _, tc := range []struct {
		field string
		in    any
		want  any
	}{
		{"price", json.Number("12.5"), 12.5},
		{"price", 7.0, 7.0},
		{"item", "item-1", "item-1"},
		{"seen", "2026-11-29T18:00:00+08:00", "2026-11-29T10:00:00Z"},
		{"seen", "2026-11-29T10:00:00.250Z", "2026-11-29T10:00:00.25Z"},
	} {
		e := portrait.Event{SubjectID: "s0", Type: "visit", Time: g.now, Fields: map[string]any{tc.field: tc.in}}
		var lex map[string]string
		if p := g.in.validate(&cat, &e, g.now, &lex, new(scanMemo)); p != nil {
			t.Fatalf("%s=%v: %+v", tc.field, tc.in, p)
		}
		if got := e.Fields[tc.field]; got != tc.want {
			t.Errorf("%s=%v (%T): stored %v (%T), want %v (%T)", tc.field, tc.in, tc.in, got, got, tc.want, tc.want)
		}
	}
}

// A chunk's stored-event slice goes back to the pool when its
// transaction has ended, cleared, and the next chunk gets it again.
func TestEventSliceReused(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection would empty the pool
	for eventPool.p.Get() != nil {
	}
	b := &batch{}
	b.pooled = eventPool.get(10)
	b.events = b.pooled[:4]
	b.pooled[3].Sealed = []byte("sealed")
	first := &b.pooled[0]
	b.release()
	if b.pooled != nil || b.events != nil {
		t.Error("the batch still holds its events after release")
	}
	again := eventPool.get(8)
	if &again[0] != first {
		t.Fatal("the next chunk got a new slice, not the released one")
	}
	if again[:10][3].Sealed != nil {
		t.Error("the released slice still holds a sealed value")
	}
}

// A scan memo goes back to its pool empty: a field value is personal
// data, and the memo must not keep one past its request.
func TestScanMemoPooledEmpty(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection would empty the pool
	pack := rules.Default()
	m := getMemo()
	m.scan(pack, "13800138000 张三")
	putMemo(m)
	again := getMemo()
	if again != m {
		t.Skip("the pool handed out another memo (the goroutine moved to another P)")
	}
	for i, s := range again.slots {
		if s.ok || s.text != "" || s.found != nil {
			t.Fatalf("slot %d still holds %q after the memo went back", i, s.text)
		}
	}
	// The scanner's memory holds the last value's folded forms; the
	// digits of the number are 49 51 56 … in its printed bytes.
	if got := fmt.Sprint(again.scanner); strings.Contains(got, "49 51 56") {
		t.Errorf("the memo's scanner still holds the last value: %s", got)
	}
}

// seal puts a chunk's sealed values side by side in pooled slabs: each
// opens to its plaintext, none can grow into the next, a full slab makes
// way for a new one, a large value gets its own memory, and release
// gives the slabs back.
func TestSealIntoSlabs(t *testing.T) {
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	_, c, err := kr.NewSubject("s1")
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("ad")
	sc := new(scratch)
	var plains, sealed [][]byte
	for i := range 400 { // about 100 bytes each: more than one slab
		p := []byte(fmt.Sprintf(`{"item":"item-%d","category":"sports","price":%d,"pad":"%s"}`, i, i, strings.Repeat("x", i%40)))
		plains, sealed = append(plains, p), append(sealed, sc.seal(c, p, ad))
	}
	big := bytes.Repeat([]byte("y"), slabSize/4)
	plains, sealed = append(plains, big), append(sealed, sc.seal(c, big, ad))
	if len(sc.slabs) < 2 {
		t.Fatalf("%d slabs for 400 values of ~100 bytes, want a new one when the first is full", len(sc.slabs))
	}
	for i, s := range sealed {
		if cap(s) != len(s) {
			t.Fatalf("value %d has room to grow into its neighbour (len %d, cap %d)", i, len(s), cap(s))
		}
		if got, err := c.Open(s, ad); err != nil || !bytes.Equal(got, plains[i]) {
			t.Fatalf("value %d: Open = %q, %v", i, got, err)
		}
	}
	used := 0
	for _, p := range sc.slabs {
		used += len(*p)
	}
	want := 0
	for _, v := range sealed[:len(sealed)-1] {
		want += len(v)
	}
	if used != want {
		t.Errorf("the slabs hold %d bytes, want the %d of the small values only", used, want)
	}
	b := &batch{slabs: sc.slabs}
	b.release()
	if b.slabs != nil {
		t.Error("the batch still holds its slabs after release")
	}
}
