package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for _, c := range []struct {
		gogc string
		want int // the collector's target after tuneGC
		set  bool
	}{
		{"", serveGC, true},
		{"50", 100, false}, // the operator's GOGC stands (the runtime applied it at start)
		{"off", 100, false},
	} {
		debug.SetGCPercent(100)
		set := tuneGC(func(k string) string {
			if k == "GOGC" {
				return c.gogc
			}
			return ""
		})
		if got := debug.SetGCPercent(100); set != c.set || got != c.want {
			t.Errorf("GOGC=%q: tuneGC set=%v, target %d; want set=%v, target %d", c.gogc, set, got, c.set, c.want)
		}
	}
}
