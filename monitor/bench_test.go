package monitor_test

import (
	"context"
	"testing"

	"github.com/portrait-dev/portrait/monitor"
)

// BenchmarkRun runs every monitor over the 121-subject test population in
// SQLite: reads, decryption, the four monitors and the audit appends.
func BenchmarkRun(b *testing.B) {
	e := newEnv(b, monitor.Options{})
	e.population()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.mon.Run(ctx, e.now); err != nil {
			b.Fatal(err)
		}
	}
}
