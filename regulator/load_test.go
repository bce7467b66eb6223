package regulator_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/audit"
)

// TestWitnessLoad measures the witness round trip (upload the new
// entries, add-checkpoint, verify and cosign) with ten companies each
// submitting a checkpoint every second, over real HTTP and a real store.
// It runs only with PORTRAIT_BENCH=1 (see docs/BENCHMARKS.md).
func TestWitnessLoad(t *testing.T) {
	if os.Getenv("PORTRAIT_BENCH") == "" {
		t.Skip("set PORTRAIT_BENCH=1 to measure")
	}
	const companies, seconds, perSecond = 10, 30, 20
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			f := newFixture(t, e.open(t))
			var mu sync.Mutex
			var took []time.Duration
			var wg sync.WaitGroup
			for i := range companies {
				co := f.enrol(t, fmt.Sprintf("c%d.example/log", i))
				co.link.HTTP = &http.Client{Timeout: 10 * time.Second}
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(time.Second)
					defer tick.Stop()
					for range seconds {
						<-tick.C
						for range perSecond {
							co.log.Append(context.Background(), co.mem, audit.Record{Kind: "consent", Pseudonym: "ps"})
						}
						msg, _ := co.log.Sign(context.Background(), co.mem)
						start := time.Now()
						if _, err := co.link.Submit(context.Background(), msg); err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						took = append(took, time.Since(start))
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			slices.Sort(took)
			if len(took) == 0 {
				t.Fatal("no samples")
			}
			t.Logf("%s: %d companies × %d s, %d entries per checkpoint: %d round trips, p50 %v, p99 %v, max %v",
				e.name, companies, seconds, perSecond, len(took), took[len(took)/2].Round(time.Microsecond),
				took[len(took)*99/100].Round(time.Microsecond), took[len(took)-1].Round(time.Microsecond))
		})
	}
}
