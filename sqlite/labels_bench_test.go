package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

// BenchmarkPutLabels writes label values as a batch derivation does: a
// page of 500 subjects, consecutive in key order, ten labels each in the
// order they were computed (not the key's), one transaction per page;
// each iteration is a page of new subjects (insert) or of the first
// page's subjects again (update). It reports CPU per label (the
// process's user and system time), which a loaded machine moves less
// than wall time.
func BenchmarkPutLabels(b *testing.B) {
	for _, mode := range []string{"insert", "update"} {
		b.Run(mode, func(b *testing.B) {
			s := mustOpen(b, filepath.Join(b.TempDir(), "portrait.db"))
			defer s.Close()
			ctx := context.Background()
			const subjects, labels = 500, 10
			names := make([]string, labels)
			for l := range names {
				names[l] = fmt.Sprintf("label_%02d", (l*7)%labels) // computed order, not key order
			}
			sealed := make([]byte, 120)
			page := func(n int) []portrait.LabelValue {
				out := make([]portrait.LabelValue, 0, subjects*labels)
				for i := range subjects {
					p := portrait.Pseudonym(fmt.Sprintf("%08x%08x", n, i))
					g := storetest.Grant(b, p, policy.Derive)
					for _, l := range names {
						out = append(out, portrait.LabelValue{Grant: g, Pseudonym: p, Label: l, Version: 1, Sealed: sealed,
							Computed: time.Unix(0, int64(n)), Expires: time.Unix(1e9, 0)})
					}
				}
				return out
			}
			pages := make([][]portrait.LabelValue, 64)
			for n := range pages {
				pages[n] = page(n)
			}
			var cpu time.Duration
			n := 0
			for b.Loop() {
				vs := pages[n%len(pages)]
				if mode == "insert" {
					b.StopTimer()
					vs = page(len(pages) + n)
					b.StartTimer()
				}
				n++
				c := cpuTime()
				if err := s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.PutLabels(ctx, vs) }); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*subjects*labels), "cpu-ns/label")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
