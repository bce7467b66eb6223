package derive_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

// The target is 10⁶ subjects and 10⁷ events; the defaults keep a
// plain -bench run short. Example:
//
//	go test ./derive -run x -bench DeriveScale -benchtime 1x -timeout 1h \
//	    -derive.subjects 100000 -derive.events 1000000
var (
	scaleSubjects = flag.Int("derive.subjects", 2000, "BenchmarkDeriveScale: subjects")
	scaleEvents   = flag.Int("derive.events", 20000, "BenchmarkDeriveScale: events")
	scaleProfile  = flag.String("derive.cpuprofile", "", "BenchmarkDeriveScale: write a CPU profile of the batch runs only (not the setup) to this file")
	scaleMem      = flag.String("derive.memprofile", "", "BenchmarkDeriveScale: write heap profiles FILE.base before the batch runs and FILE after them (go tool pprof -sample_index alloc_space -base FILE.base: the runs' allocations alone)")
)

// BenchmarkDeriveScale derives every label of a synthetic population in
// batch on SQLite: views and purchases spread over 300 days, every
// subject consenting to personalization. Events go in through governed
// ingest; consent records are appended straight to the store in bulk, as
// recording them one transaction each would dominate the setup. It
// reports events/s of the batch run and the process's peak RSS during it
// (VmHWM, reset before the run via /proc/self/clear_refs).
func BenchmarkDeriveScale(b *testing.B) {
	n, m := *scaleSubjects, *scaleEvents
	if n <= 0 || m <= 0 {
		b.Fatalf("-derive.subjects %d, -derive.events %d: want both positive", n, m)
	}
	e := newEnv(b)
	e.eng.Status() // compile the catalog before timing
	ctx := context.Background()
	in := ingest.New(ingest.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, ingest.Options{Now: e.clock})
	setup := time.Now()
	// Subjects are stored, and their events ingested, in pseudonym order:
	// the tables are keyed by pseudonym, and at 10⁶ subjects inserts in
	// random key order spend the setup on page-cache misses. The order
	// changes nothing that is derived.
	order := make([]int, n)
	keyOf := make([]portrait.Pseudonym, n)
	for i := range n {
		order[i], keyOf[i] = i, e.keys.Pseudonym(fmt.Sprintf("s%07d", i))
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(string(keyOf[a]), string(keyOf[b])) })
	keyOf = nil
	const chunk = 2000
	for lo := 0; lo < n; lo += chunk {
		var subs []portrait.SubjectKey
		for _, i := range order[lo:min(n, lo+chunk)] {
			s, _, err := e.keys.NewSubject(fmt.Sprintf("s%07d", i))
			if err != nil {
				b.Fatal(err)
			}
			subs = append(subs, s)
		}
		if err := e.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			if err := tx.EnsureSubjects(ctx, subs); err != nil {
				return err
			}
			for _, s := range subs {
				if err := tx.AppendConsent(ctx, portrait.ConsentRecord{Pseudonym: s.Pseudonym, Purpose: "personalization",
					Status: policy.Granted, NoticeVersion: "1", Channel: "bench", At: e.now.Add(-400 * 24 * time.Hour)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	// Each event's subject is drawn uniformly, as before; the events are
	// then generated subject by subject, so that a batch of 1,000 holds
	// the events of ~100 subjects rather than of ~1,000 different ones.
	// What is derived has the same distribution (the counts per subject
	// are the same draw, times and categories are drawn per event as
	// before); the setup opens each subject's key and state about ten
	// times less often, which at 10⁶ subjects is most of its cost.
	rng := rand.New(rand.NewPCG(3, 4))
	counts := make([]int32, n)
	for range m {
		counts[rng.IntN(n)]++
	}
	categories := []string{"sports", "books", "music", "garden"}
	items := make([]ingest.Item, 0, 1000)
	flush := func() {
		if _, sum, err := in.Ingest(ctx, operator, items); err != nil || sum.Accepted != len(items) {
			b.Fatalf("ingest: %+v %v", sum, err)
		}
		items = items[:0]
	}
	for _, s := range order {
		k := counts[s]
		id := fmt.Sprintf("s%07d", s)
		for range k {
			at := e.now.Add(-time.Duration(rng.Int64N(int64(300 * 24 * time.Hour))))
			ev := view(id, categories[rng.IntN(len(categories))], 0, at)
			if rng.IntN(5) == 0 { // a fifth are purchases, drawn per event as the subject was
				ev = purchase(id, float64(5+rng.IntN(500)), at)
			}
			items = append(items, ingest.Item{Event: ev})
			if len(items) == cap(items) {
				flush()
			}
		}
	}
	if len(items) > 0 {
		flush()
	}
	// SQLite appends events and clusters them by subject in the
	// background; a run that started at once would time the tail of the
	// setup's clustering too. The benchmark derives from the settled
	// layout, as a scheduled batch run does.
	if c, ok := e.store.(interface {
		Cluster(context.Context) (int, error)
	}); ok {
		if _, err := c.Cluster(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("setup: %d subjects, %d events in %s", n, m, time.Since(setup).Round(time.Second))
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM where Linux allows
	var sum = struct{ events, subjects int }{}
	var elapsed, compute, store time.Duration
	if *scaleProfile != "" {
		f, err := os.Create(*scaleProfile)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	heap := func(name string) {
		runtime.GC()
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	if *scaleMem != "" {
		heap(*scaleMem + ".base")
		defer heap(*scaleMem)
	}
	cpu := cpuTime()
	for b.Loop() {
		s, err := e.eng.All(ctx, nil)
		if err != nil && !strings.Contains(err.Error(), "shopper_segment") {
			b.Fatal(err)
		}
		sum.events, sum.subjects = s.Events, s.Subjects
		elapsed, compute, store = s.Elapsed, s.Compute, s.Store
	}
	if sum.events != m || sum.subjects != n {
		b.Errorf("derived %d subjects, %d events; want %d, %d", sum.subjects, sum.events, n, m)
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(sum.events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(compute.Seconds(), "compute-s")
	b.ReportMetric(store.Seconds(), "store-s")
	if kb := vmHWM(); kb > 0 {
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
	}
}

// cpuTime is the process's user and system CPU time: under a shared
// machine's load it varies far less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmHWM returns the process's peak resident set in KiB, 0 where
// /proc/self/status is not available.
func vmHWM() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return 0
}
