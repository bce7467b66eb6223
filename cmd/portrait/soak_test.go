package main

import (
	"context"
	"fmt"
	"github.com/portrait-dev/portrait/examples/demo"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakRates are the target rates of the soak, in requests a second: ingest
// batches of soakBatch events, decisions, recommendations and rights
// requests (an export, an erasure and a consent change in turn).
var soakRates = []struct {
	kind string
	rate float64
}{
	{"ingest", 10},
	{"decision", 5},
	{"recommend", 20},
	{"rights", 1},
}

const (
	soakBatch    = 20  // events in an ingest batch
	soakSubjects = 200 // the standing population
	soakInFlight = 64  // requests of one kind in flight before one is skipped as late
)

// soakWindow holds one window's observations of one kind of request.
type soakWindow struct {
	lat    []time.Duration
	errors int
	late   int // not sent because soakInFlight were still waiting
}

// TestSoak runs one `portrait serve` for PORTRAIT_SOAK (such as 10m) under
// steady ingest, decisions, recommendations and rights requests at
// soakRates, and reports per window the node's resident memory, each
// kind's latency percentiles, errors and late sends. It fails on any
// error, and when the resident memory of the last window is more than
// three times that of the first (a leak). PORTRAIT_SOAK_OUT names a file
// to write the table to, in Markdown.
func TestSoak(t *testing.T) {
	v := os.Getenv("PORTRAIT_SOAK")
	if v == "" {
		t.Skip("PORTRAIT_SOAK is not set; set it to a duration such as 10m")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 10*time.Second {
		t.Fatalf("PORTRAIT_SOAK=%q: want a duration of at least 10s", v)
	}
	for engine, dsn := range engines(t) {
		t.Run(engine, func(t *testing.T) { testSoak(t, dsn(t), d) })
	}
}

func testSoak(t *testing.T, dsn string, d time.Duration) {
	const admin = "soak-admin-key"
	ctx := context.Background()
	master := newMaster(t)
	p := startKillable(t, dsn, master, admin, "--assessments", filepath.Join(t.TempDir(), "assessments"), "--monitor-every", "2m")
	populate(t, p.url, admin)

	var seq, ingested atomic.Int64 // requests of every kind; ingest batches
	var newSubjects atomic.Int64   // new subjects soak-new-1 … stored so far
	requests := map[string]func(ctx context.Context) error{
		"ingest": func(ctx context.Context) error {
			n := ingested.Add(1)
			// Most batches are the standing population's; one in ten
			// makes a new subject, later erased by a rights request.
			subject := fmt.Sprintf("soak-%d", n%soakSubjects)
			if n%10 == 0 {
				subject = fmt.Sprintf("soak-new-%d", n/10)
			}
			var res ingestResponse
			_, err := try(ctx, p.url, "POST", "/v1/events", admin, viewEvents(subject, fmt.Sprintf("b%d", n), soakBatch, time.Now().UTC().Add(-time.Second)), &res)
			if err == nil && res.Accepted != soakBatch {
				err = fmt.Errorf("ingest: %d of %d accepted", res.Accepted, soakBatch)
			}
			if err == nil && n%10 == 0 {
				newSubjects.Store(n / 10)
			}
			return err
		},
		"decision": func(ctx context.Context) error {
			_, err := try(ctx, p.url, "POST", "/v1/decisions", admin, fmt.Sprintf(`{"usecase":"credit_limit","subject":"soak-%d"}`, seq.Add(1)%soakSubjects), nil)
			return err
		},
		"recommend": func(ctx context.Context) error {
			_, err := try(ctx, p.url, "GET", fmt.Sprintf("/v1/recommendations?subject=soak-%d&usecase=home_feed&n=5", seq.Add(1)%soakSubjects), admin, "", nil)
			return err
		},
		"rights": func() func(ctx context.Context) error {
			var turn, erased atomic.Int64
			return func(ctx context.Context) error {
				switch n := turn.Add(1); n % 3 {
				case 0:
					_, err := try(ctx, p.url, "GET", fmt.Sprintf("/v1/subjects/soak-%d/export", n%soakSubjects), admin, "", nil)
					return err
				case 1:
					// Erase the oldest new subject not yet erased, if
					// ingest has made one.
					next := erased.Load() + 1
					if next > newSubjects.Load() {
						return nil
					}
					erased.Store(next)
					_, err := try(ctx, p.url, "POST", fmt.Sprintf("/v1/subjects/soak-new-%d/erasure", next), admin, "", nil)
					return err
				default:
					status := []string{"withdrawn", "granted"}[(n/3)%2]
					_, err := try(ctx, p.url, "PUT", fmt.Sprintf("/v1/subjects/soak-%d/consents/marketing", n%soakSubjects), admin, `{"status":"`+status+`","notice_version":"1"}`, nil)
					return err
				}
			}
		}(),
	}

	window := max(d/20, 5*time.Second)
	var mu sync.Mutex
	cur := map[string]*soakWindow{}
	reset := func() map[string]*soakWindow {
		mu.Lock()
		defer mu.Unlock()
		old := cur
		cur = map[string]*soakWindow{}
		for _, r := range soakRates {
			cur[r.kind] = &soakWindow{}
		}
		return old
	}
	reset()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErrs []string
	for _, r := range soakRates {
		fn := requests[r.kind]
		sem := make(chan struct{}, soakInFlight)
		wg.Go(func() {
			tick := time.NewTicker(time.Duration(float64(time.Second) / r.rate))
			defer tick.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
				}
				select {
				case sem <- struct{}{}:
				default:
					mu.Lock()
					cur[r.kind].late++
					mu.Unlock()
					continue
				}
				wg.Go(func() {
					defer func() { <-sem }()
					t0 := time.Now()
					err := fn(context.WithoutCancel(runCtx))
					lat := time.Since(t0)
					mu.Lock()
					w := cur[r.kind]
					if err != nil {
						w.errors++
					} else {
						w.lat = append(w.lat, lat)
					}
					mu.Unlock()
					if err != nil {
						errMu.Lock()
						if len(firstErrs) < 10 {
							firstErrs = append(firstErrs, r.kind+": "+err.Error())
						}
						errMu.Unlock()
					}
				})
			}
		})
	}

	var table strings.Builder
	fmt.Fprintf(&table, "| t | RSS MB | load1 |")
	for _, r := range soakRates {
		fmt.Fprintf(&table, " %s /s (target %g) | p50 ms | p99 ms | err | late |", r.kind, r.rate)
	}
	table.WriteString("\n|---|---|---|" + strings.Repeat("---|---|---|---|---|", len(soakRates)) + "\n")
	var rss []float64
	var totalErrors int
	began := time.Now()
	tick := time.NewTicker(window)
	for range int(d / window) {
		<-tick.C
		w := reset()
		mb := rssMB(p.cmd.Process.Pid)
		rss = append(rss, mb)
		fmt.Fprintf(&table, "| %s | %.0f | %s |", time.Since(began).Round(time.Second), mb, load1())
		secs := window.Seconds()
		for _, r := range soakRates {
			o := w[r.kind]
			slices.Sort(o.lat)
			fmt.Fprintf(&table, " %.1f | %s | %s | %d | %d |", float64(len(o.lat))/secs, pct(o.lat, 50), pct(o.lat, 99), o.errors, o.late)
			totalErrors += o.errors
		}
		table.WriteString("\n")
	}
	tick.Stop()
	stop()
	wg.Wait()
	t.Logf("soak of %s, windows of %s:\n%s", d, window, table.String())
	if out := os.Getenv("PORTRAIT_SOAK_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(table.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if totalErrors > 0 {
		t.Errorf("%d requests failed; the first: %s", totalErrors, strings.Join(firstErrs, "\n"))
	}
	// A leak raises the floor of the resident memory; a monitor run (every
	// 2 minutes, reading every subject's events of the look-back window,
	// which grow through the soak) makes a peak the next window gives back.
	// So compare the lowest of the last four windows with the first.
	if len(rss) >= 5 {
		if floor := slices.Min(rss[len(rss)-4:]); floor > 3*rss[0] {
			t.Errorf("resident memory grew from %.0f MB to at least %.0f MB in each of the last four windows", rss[0], floor)
		}
	}
}

// pct is the p-th percentile of sorted latencies, in milliseconds.
func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "–"
	}
	i := min(len(sorted)-1, len(sorted)*p/100)
	return strconv.FormatFloat(float64(sorted[i].Microseconds())/1000, 'f', 1, 64)
}

// rssMB reads a process's resident set size from /proc, or 0 where
// there is no /proc.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// load1 is the machine's one-minute load average, which the figures
// depend on (the machine is shared).
func load1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// populate readies a node for the soak and capacity tests: an impact
// assessment for credit_limit, 60 items, and soakSubjects subjects with
// consents, a profile and the credit_limit notice.
func populate(t *testing.T, url, admin string) {
	t.Helper()
	ctx := context.Background()
	p := struct{ url string }{url}
	must := func(method, path, body string) {
		t.Helper()
		if _, err := try(ctx, p.url, method, path, admin, body, nil); err != nil {
			t.Fatal(err)
		}
	}
	must("POST", "/v1/usecases/credit_limit/assessment", string(demo.Assessment))
	var items strings.Builder
	items.WriteByte('[')
	for i := range 60 {
		if i > 0 {
			items.WriteByte(',')
		}
		cat := []string{"sports", "books", "home"}[i%3]
		fmt.Fprintf(&items, `{"id":"%s-%d","categories":[%q],"price":%d}`, cat, i, cat, 10+i)
	}
	items.WriteByte(']')
	must("POST", "/v1/items", items.String())
	now := time.Now().UTC().Add(-time.Minute)
	for i := range soakSubjects {
		id := fmt.Sprintf("soak-%d", i)
		for _, purpose := range []string{"credit", "personalization"} {
			must("PUT", "/v1/subjects/"+id+"/consents/"+purpose, `{"status":"granted","notice_version":"1"}`)
		}
		must("POST", "/v1/events", fmt.Sprintf(`[{"subject":%q,"type":"profile","time":%q,"fields":{"age":%d,"income":%d}}]`, id, now.Format(time.RFC3339), 20+i%50, 3000+50*i))
		must("POST", "/v1/subjects/"+id+"/usecases/credit_limit/notice", "")
	}

}
