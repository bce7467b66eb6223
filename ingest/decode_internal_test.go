package ingest

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanInputs are event lines the fast path must decode exactly as
// encoding/json does, or hand to it.
var scanInputs = []string{
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"item":"a","price":12,"q":1.5e3,"n":-0.25,"ok":true,"no":false,"z":null,"tags":["x",1,[]],"o":{"k":{}}}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z"}`,
	` { "subject" : "张三" , "type":"view", "time":"2026-11-29T10:00:00+08:00", "idempotency_key":"k1", "fields": null } `,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{}}`,
	`{}`,
	`{"fields":{"a":1,"a":2},"subject":"s","type":"t","time":"2026-11-29T10:00:00Z"}`,
	// Handed to encoding/json: escapes, other spellings, repeats, types.
	`{"subject":"s\"1","type":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"a":"\u00e9"}}`,
	`{"Subject":"s1","TYPE":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":"s1","subject":"s2","type":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":null,"type":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":1,"type":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":[1]}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":"x"}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","extra":1}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"p":01}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"p":1.}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"p":-}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"p":1e}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"p":tru}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"p":1,}}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z",}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z"} {}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z"`,
	`{"subject":"s1` + "\t" + `","type":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":"   ","type":"view","time":"2026-11-29T10:00:00Z"}`,
	`{"subject":"s1","type":"","time":"not a time"}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","idempotency_key":null}`,
	`{"subject":"s1","type":"view","time":"2026-11-29T10:00:00Z","fields":{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}`,
	`[]`,
	`"x"`,
	``,
}

// slowOne is decodeOne as it was: encoding/json alone.
func slowOne(raw []byte) Item {
	if !utf8.Valid(raw) {
		return Item{Err: problem("invalid_utf8", "the event is not valid UTF-8")}
	}
	ev, p := decodeWire(raw)
	if p != nil {
		return Item{Err: p}
	}
	return finish(ev)
}

// The fast path decodes exactly what encoding/json decodes; where it
// declines, decodeOne's answer (and error message) is encoding/json's.
func TestScanEventMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for _, in := range scanInputs {
		got, want := decodeOne(in), slowOne([]byte(in))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", in, got, want)
		}
		if _, ok := scanEvent(in); ok {
			fast++
		}
	}
	if fast < 6 {
		t.Errorf("the fast path took %d inputs, want the 6 common ones", fast)
	}
}

func FuzzScanEvent(f *testing.F) {
	for _, in := range scanInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := decodeOne(string(raw)), slowOne(raw); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
		}
	})
}

// BenchmarkDecodeEvent decodes the benchmark's view event with the fast
// path and with encoding/json alone (the decoder before issue 14).
func BenchmarkDecodeEvent(b *testing.B) {
	line := []byte(`{"subject":"s17","type":"view","time":"2026-11-29T10:00:00Z","fields":{"item":"item-4711","category":"sports","price":311}}`)
	str := string(line) // NDJSON lines are decoded from the body's one string
	for _, c := range []struct {
		name string
		f    func([]byte) Item
	}{{"scan", func([]byte) Item { return decodeOne(str) }}, {"encoding-json", slowOne}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if it := c.f(line); it.Err != nil {
					b.Fatal(it.Err)
				}
			}
		})
	}
}

// NDJSON is decoded on every core; the items must be those a line-by-line
// decode with encoding/json gives, in the body's order, each error naming
// its own line (blank lines count as lines but hold no event).
func TestDecodeLinesInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines int
		long  int // bytes of a long value in every 50th line
	}{
		{"one line", 1, 0},
		{"below the split", minParallel - 1, 0},
		{"split across cores", 5*minParallel + 3, 0},
		{"a large request, many blocks", 3000, 0},
		{"lines longer than a block", 300, 100 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body strings.Builder
			var want []Item
			for i := range tc.lines {
				in := scanInputs[i%len(scanInputs)]
				if i%7 == 3 {
					body.WriteString("  \n") // blank: a line, no event
					continue
				}
				if pad := ""; strings.TrimSpace(in) == "" || tc.long > 0 && i%50 == 0 {
					if i%50 == 0 {
						pad = strings.Repeat("x", tc.long)
					}
					in = fmt.Sprintf(`{"subject":"u%d","type":"view","time":"2026-11-29T10:00:00Z","fields":{"n":%d,"s":%q}}`, i, i, pad)
				}
				body.WriteString(in + "\n")
				it := slowOne([]byte(strings.TrimSpace(in)))
				if it.Err != nil {
					it.Err.Reason = fmt.Sprintf("line %d: %s", i+1, it.Err.Reason)
				}
				want = append(want, it)
			}
			got, err := decodeLines(strings.NewReader(body.String()))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d items, want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("item %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

// Recycle hands the field maps back, cleared, and the next Decode fills
// them again: the second request's events get the first one's maps and
// nothing of their fields. A map too large to keep is not reused.
func TestRecycleReusesFieldMaps(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a collection would empty the pool
	for fieldsPool.Get() != nil {                    // start from an empty pool
	}
	body := func(field string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"subject":"s%d","type":"view","time":"2026-11-29T10:00:00Z","fields":{%q:"v%d"}}`+"\n", i, field, i)
		}
		return b.String()
	}
	first, err := Decode(strings.NewReader(body("a", 3)), true)
	if err != nil {
		t.Fatal(err)
	}
	maps := map[uintptr]bool{}
	for _, it := range first {
		maps[uintptr(reflect.ValueOf(it.Event.Fields).UnsafePointer())] = true
	}
	Recycle(first)
	for i, it := range first {
		if it.Event.Fields != nil {
			t.Errorf("item %d still has its fields after Recycle", i)
		}
	}
	second, err := Decode(strings.NewReader(body("b", 3)), true)
	if err != nil {
		t.Fatal(err)
	}
	if &second[0] != &first[0] {
		t.Error("the second request's items are a new slice, not the recycled one")
	}
	for i, it := range second {
		if !maps[uintptr(reflect.ValueOf(it.Event.Fields).UnsafePointer())] {
			t.Errorf("item %d: a new map, not a recycled one", i)
		}
		if want := map[string]any{"b": fmt.Sprintf("v%d", i)}; !reflect.DeepEqual(it.Event.Fields, want) {
			t.Errorf("item %d: fields %v, want %v", i, it.Event.Fields, want)
		}
	}

	// Too many fields: dropped, not kept.
	var b strings.Builder
	b.WriteString(`{"subject":"s","type":"view","time":"2026-11-29T10:00:00Z","fields":{`)
	for i := range maxRecycled + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":%d`, i, i)
	}
	b.WriteString("}}\n")
	big, err := Decode(strings.NewReader(b.String()), true)
	if err != nil {
		t.Fatal(err)
	}
	Recycle(second)
	Recycle(big)
	for range second {
		if m, _ := fieldsPool.Get().(map[string]any); m == nil || len(m) != 0 {
			t.Fatalf("pool gave %v, want an empty recycled map", m)
		}
	}
	if m := fieldsPool.Get(); m != nil {
		t.Errorf("pool kept a map of %d fields (limit %d)", maxRecycled+1, maxRecycled)
	}
}
