package ingest

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/portrait-dev/portrait/marshal"
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
		dst = marshal.AppendString(dst, kv.name)
		dst = append(dst, ':')
		var err error
		if dst, err = marshal.AppendValue(dst, kv.value); err != nil {
			return nil, fmt.Errorf("field %s: %w", kv.name, err)
		}
	}
	return append(dst, '}'), nil
}
