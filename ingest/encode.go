package ingest

import (
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"
)

// minParallel is the fewest events worth splitting across cores: below
// it, starting goroutines costs more than the work.
const minParallel = 64

// each runs fn over [0, n) in one contiguous range per core, the first on
// the calling goroutine, and returns when all are done. fn must write only
// to its own range's slots. A panic in another range is raised again on
// the calling goroutine, where the HTTP server recovers it as it did
// before the work was split, instead of ending the process.
func each(n int, fn func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n/minParallel)
	if w < 2 {
		fn(0, n)
		return
	}
	step := (n + w - 1) / w
	var (
		wg     sync.WaitGroup
		once   sync.Once
		raised any
	)
	for lo := step; lo < n; lo += step {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					once.Do(func() { raised = r })
				}
			}()
			fn(lo, min(lo+step, n))
		})
	}
	fn(0, step)
	wg.Wait()
	if raised != nil {
		panic(raised)
	}
}

// encodeFields appends the JSON object of kept, whose names are in
// ascending order, to dst: the bytes json.Marshal gives for the same
// fields in a map, without reflection or the map.
func encodeFields(dst []byte, kept []field) ([]byte, error) {
	dst = append(dst, '{')
	for i, kv := range kept {
		if i > 0 {
			if kept[i-1].name >= kv.name {
				return nil, fmt.Errorf("fields out of order: %q after %q", kv.name, kept[i-1].name)
			}
			dst = append(dst, ',')
		}
		dst = appendString(dst, kv.name)
		dst = append(dst, ':')
		var err error
		if dst, err = appendValue(dst, kv.value); err != nil {
			return nil, fmt.Errorf("field %s: %w", kv.name, err)
		}
	}
	return append(dst, '}'), nil
}

// appendValue appends v's JSON as json.Marshal writes it. Validated
// values are strings, finite numbers and booleans; anything else goes
// through json.Marshal.
func appendValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			break // json.Marshal's error
		}
		// encoding/json's float format: shortest 'f' unless the exponent
		// is below -6 or at least 21, then 'e' with a one-digit negative
		// exponent unpadded (1e-07 → 1e-7).
		f := byte('f')
		if a := math.Abs(x); a != 0 && (a < 1e-6 || a >= 1e21) {
			f = 'e'
		}
		dst = strconv.AppendFloat(dst, x, f, -1, 64)
		if n := len(dst); f == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, b...), nil
}

// appendString appends s quoted as json.Marshal quotes it. Printable
// ASCII other than the characters json escapes (quote, backslash and, for
// HTML, <, > and &) is copied; any other string goes through json.Marshal.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
