package ingest

import (
	"bytes"
	"encoding/json"
	"math"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
)

// encodeFields must write the bytes json.Marshal writes for the same
// fields in a map: stored events are read back with encoding/json, and
// the chunk's digest hashes these bytes.
func TestEncodeFieldsMatchesEncodingJSON(t *testing.T) {
	values := []any{
		"", "item-1", "sports", "杭州市西湖区", "a\"b", `back\slash`, "<b>&", "tab\there", "\u2028", "bad\xffutf8", "ctl\x01",
		0.0, math.Copysign(0, -1), 1.0, -0.25, 12.5, 1e20, 1e21, 1.5e21, 1e-6, 1e-7, 9.99e-7, -3.2e-12, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64,
		true, false,
		"2026-11-29T10:00:00.5Z",
	}
	m := map[string]any{}
	var kept []field
	for i, v := range values {
		name := string(rune('a'+i%26)) + string(rune('a'+i/26))
		m[name] = v
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		kept = append(kept, field{name: name, value: m[name]})
	}
	want, _ := json.Marshal(m)
	got, err := encodeFields(nil, kept)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("encodeFields = %s, %v\nwant %s", got, err, want)
	}
	if _, err := encodeFields(nil, []field{{name: "a", value: math.NaN()}}); err == nil {
		t.Error("NaN encoded")
	}
	if _, err := encodeFields(nil, []field{{name: "b", value: 1.0}, {name: "a", value: 2.0}}); err == nil {
		t.Error("fields out of order encoded")
	}
}

// each covers every index exactly once, split or not.
func TestEachCoversEveryIndex(t *testing.T) {
	for _, n := range []int{0, 1, minParallel - 1, minParallel, 2*minParallel + 1, 1000, 1001} {
		hits := make([]int, n)
		each(n, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hits[i]++
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n=%d: index %d run %d times", n, i, h)
			}
		}
	}
}

// A panic in a range run on another goroutine reaches the caller, as it
// would have unsplit, rather than ending the process.
func TestEachRaisesPanicOnCaller(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: nothing is split")
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want boom", r)
		}
	}()
	each(4*minParallel, func(lo, hi int) {
		if lo > 0 {
			panic("boom")
		}
	})
	t.Error("each returned after a range panicked")
}

// eachWorker makes one worker per goroutine, at most one per core, and
// its blocks cover every index exactly once.
func TestEachWorker(t *testing.T) {
	for _, n := range []int{0, 1, minParallel - 1, 2 * minParallel, 1000, 1001, 100_000} {
		hits := make([]int32, n)
		var workers atomic.Int32
		eachWorker(n, func() func(lo, hi int) {
			workers.Add(1)
			return func(lo, hi int) {
				for i := lo; i < hi; i++ {
					atomic.AddInt32(&hits[i], 1)
				}
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n=%d: index %d run %d times", n, i, h)
			}
		}
		if w, most := int(workers.Load()), max(1, min(runtime.GOMAXPROCS(0), n/minParallel)); w < 1 || w > most {
			t.Errorf("n=%d: %d workers, want 1 to %d", n, w, most)
		}
	}
}
