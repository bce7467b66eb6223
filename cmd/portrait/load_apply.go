package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func init() { commands["load-apply"] = loadApply }

// loadApply is the open-loop load generator for the scenario API: it sends
// POST /v1/decisions or GET /v1/recommendations at a fixed rate for a
// fixed time, whatever the server's pace, and reports the achieved rate,
// latency percentiles and errors. Latency is measured from when each
// request was due, not when it was sent, so a server that falls behind is
// charged for the queue it built (no coordinated omission). Beside it,
// the send lag (due → sent: the generator's own lateness, on a shared
// machine often the larger part) and the service time (sent → answered)
// are reported, so that neither hides in the other. In-flight
// requests are bounded; a request due while the bound is reached is
// counted as dropped. It only ever targets the URL it is given; use a
// loopback address.
func loadApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("load-apply", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "base URL of the server under load")
	key := fs.String("key", "", keyHelp)
	scenario := fs.String("scenario", "decisions", "decisions or recommendations")
	usecase := fs.String("usecase", "", "use-case (default credit_limit for decisions, home_feed for recommendations)")
	rate := fs.Int("rate", 1000, "requests per second")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	warmup := fs.Duration("warmup", 2*time.Second, "send at the same rate this long first, unmeasured")
	n := fs.Int("n", 20, "items per recommendation")
	subjects := fs.Int("subjects", 300, "candidate subjects u0001…uNNNN (the demo's ids)")
	items := fs.Int("items", 0, "add this many synthetic items to the item catalog first")
	inflight := fs.Int("max-inflight", 512, "bound on requests in flight")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *rate <= 0 || *duration <= 0 || *subjects <= 0 || *inflight <= 0 || *items < 0 || *warmup < 0 {
		fmt.Fprintln(stderr, "load-apply: the API key is required (PORTRAIT_KEY); --rate, --duration, --subjects, --max-inflight must be positive")
		return errUsage
	}
	if *scenario != "decisions" && *scenario != "recommendations" {
		fmt.Fprintf(stderr, "load-apply: --scenario %q: want decisions or recommendations\n", *scenario)
		return errUsage
	}
	if *usecase == "" {
		*usecase = map[string]string{"decisions": "credit_limit", "recommendations": "home_feed"}[*scenario]
	}
	pool, err := newConnPool(*server, *key, *inflight)
	if err != nil {
		fmt.Fprintf(stderr, "load-apply: %v\n", err)
		return errUsage
	}
	defer pool.close()
	call := func(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
		return pool.call(ctx, method, path, "application/json", body)
	}
	if *items > 0 {
		if err := loadItems(ctx, call, *items); err != nil {
			return err
		}
	}
	purpose := map[string]string{"decisions": "credit", "recommendations": "personalization"}[*scenario]
	ids, err := loadSubjects(ctx, call, *subjects, purpose, *scenario == "decisions", *usecase)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d of %d subjects have %s consent; %s through %s at %d/s for %s\n", len(ids), *subjects, purpose, *scenario, *usecase, *rate, *duration)
	// Bodies and paths are made once: the generator's own CPU shares the
	// machine with the server it measures.
	bodies, paths := make([][]byte, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		bodies[i], _ = json.Marshal(map[string]string{"usecase": *usecase, "subject": id})
		paths[i] = fmt.Sprintf("/v1/recommendations?usecase=%s&subject=%s&n=%d", *usecase, id, *n)
	}
	request := func(ctx context.Context, i int) (int, []byte, error) {
		if *scenario == "decisions" {
			return call(ctx, "POST", "/v1/decisions", bodies[i%len(ids)])
		}
		return call(ctx, "GET", paths[i%len(ids)], nil)
	}
	want := map[string]int{"decisions": 201, "recommendations": 200}[*scenario]
	if *warmup > 0 {
		runOpenLoop(ctx, *rate, *warmup, *inflight, request, want)
	}
	res := runOpenLoop(ctx, *rate, *duration, *inflight, request, want)
	fmt.Fprint(stdout, res)
	if res.ok == 0 {
		return errors.Join(errors.New("load-apply: no request succeeded"), res.firstErr)
	}
	return nil
}

type caller func(ctx context.Context, method, path string, body []byte) (int, []byte, error)

// loadItems adds count synthetic items over the demo's categories.
func loadItems(ctx context.Context, call caller, count int) error {
	cats := []string{"sports", "books", "electronics", "fashion", "home", "beauty"}
	for start := 0; start < count; start += 5000 {
		var batch []map[string]any
		for i := start; i < min(count, start+5000); i++ {
			batch = append(batch, map[string]any{"id": fmt.Sprintf("load-%06d", i), "categories": []string{cats[i%len(cats)]}, "price": float64(10 + i%990)})
		}
		b, _ := json.Marshal(batch)
		st, body, err := call(ctx, "POST", "/v1/items", b)
		if err != nil || st != 200 {
			return fmt.Errorf("add items: status %d %s: %v", st, body, err)
		}
	}
	return nil
}

// loadSubjects keeps the candidate subjects whose consent to purpose is in
// effect and, for a decision use-case, records the pre-use notice each must
// have seen (CN-11), as an application would when it shows it.
func loadSubjects(ctx context.Context, call caller, count int, purpose string, notice bool, usecase string) ([]string, error) {
	var ids []string
	for i := 1; i <= count; i++ {
		id := fmt.Sprintf("u%04d", i)
		st, body, err := call(ctx, "GET", "/v1/subjects/"+id+"/consents", nil)
		if err != nil || st != 200 {
			return nil, fmt.Errorf("consents of %s: status %d %s: %v", id, st, body, err)
		}
		var out struct{ Consents []consentState }
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("consents of %s: %w", id, err)
		}
		if !slices.ContainsFunc(out.Consents, func(c consentState) bool { return c.Purpose == purpose && c.Effective }) {
			continue
		}
		if notice {
			st, body, err := call(ctx, "POST", "/v1/subjects/"+id+"/usecases/"+usecase+"/notice", nil)
			if err != nil || st != 201 {
				return nil, fmt.Errorf("pre-use notice for %s: status %d %s: %v", id, st, body, err)
			}
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("none of u0001…u%04d has %s consent; seed subjects first (portrait demo)", count, purpose)
	}
	return ids, nil
}

type consentState struct {
	Purpose   string
	Effective bool
}

type loadResult struct {
	sent, ok, failed, dropped int64
	elapsed                   time.Duration
	lat                       []time.Duration // from due to answered
	lag, service              []time.Duration // due to sent, sent to answered
	codes                     map[int]int64
	firstErr                  error
}

func (r *loadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d in %s: achieved %.0f req/s, %d ok, %d failed, %d dropped (in-flight bound)\n",
		r.sent, r.elapsed.Round(time.Millisecond), float64(r.ok+r.failed)/r.elapsed.Seconds(), r.ok, r.failed, r.dropped)
	if len(r.lat) > 0 {
		fmt.Fprintf(&b, "latency of ok requests: %s\n", percentiles(r.lat))
		fmt.Fprintf(&b, "  of which service (sent to answered): %s\n", percentiles(r.service))
		fmt.Fprintf(&b, "  of which send lag (due to sent): %s\n", percentiles(r.lag))
	}
	if len(r.codes) > 0 {
		fmt.Fprintf(&b, "failed by status (0 = transport error): %v; first: %v\n", r.codes, r.firstErr)
	}
	return b.String()
}

// percentiles words the p50, p90, p99 and max of d, sorted and not empty.
func percentiles(d []time.Duration) string {
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))].Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s", q(0.5), q(0.9), q(0.99), q(1))
}

// runOpenLoop sends request(i) at rate per second for d.
func runOpenLoop(ctx context.Context, rate int, d time.Duration, inflight int, request func(context.Context, int) (int, []byte, error), want int) *loadResult {
	res := &loadResult{codes: map[int]int64{}}
	var ok, failed, dropped atomic.Int64
	var mu sync.Mutex
	n := int(float64(rate)*d.Seconds()) + 1
	lats, lags, services := make([]time.Duration, 0, n), make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	total := int(d / interval)
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			dropped.Add(1)
			continue
		}
		res.sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sent := time.Now()
			st, body, err := request(ctx, i)
			done := time.Now()
			lat := done.Sub(due)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || st != want {
				failed.Add(1)
				res.codes[st]++
				if res.firstErr == nil {
					res.firstErr = fmt.Errorf("status %d %.200s: %v", st, body, err)
				}
				return
			}
			ok.Add(1)
			lats = append(lats, lat)
			lags, services = append(lags, sent.Sub(due)), append(services, done.Sub(sent))
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.ok, res.failed, res.dropped = ok.Load(), failed.Load(), dropped.Load()
	slices.Sort(lats)
	slices.Sort(lags)
	slices.Sort(services)
	res.lat, res.lag, res.service = lats, lags, services
	return res
}
