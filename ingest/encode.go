package ingest

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/portrait-dev/portrait/marshal"
)

// minParallel is the fewest events worth splitting across cores: below
// it, starting goroutines costs more than the work.
const minParallel = 64

// each runs fn over [0, n) in contiguous blocks on every core, the
// calling goroutine one of them, and returns when all are done. fn must
// write only to its own block's slots. A panic in another range is
// raised again on the calling goroutine, where the HTTP server recovers it
// as it did before the work was split, instead of ending the process.
func each(n int, fn func(lo, hi int)) {
	eachWorker(n, func() func(lo, hi int) { return fn })
}

// eachWorker is each with state per goroutine: newWorker is called once
// on each goroutine, and what it returns runs that goroutine's blocks
// (scratch space, memos). The blocks are taken in turn from a shared
// counter, not split evenly up front, so that a core lost to another
// process for a while delays the request by a block, not by half of it.
func eachWorker(n int, newWorker func() func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n/minParallel)
	if w < 2 {
		newWorker()(0, n)
		return
	}
	block := int64(max(minParallel/4, n/(8*w)))
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		once   sync.Once
		raised any
	)
	run := func() {
		defer func() {
			if r := recover(); r != nil {
				once.Do(func() { raised = r })
				next.Store(int64(n)) // the others stop after their block
			}
		}()
		fn := newWorker()
		for {
			lo := next.Add(block) - block
			if lo >= int64(n) {
				return
			}
			fn(int(lo), int(min(lo+block, int64(n))))
		}
	}
	for range w - 1 {
		wg.Go(run)
	}
	run()
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
