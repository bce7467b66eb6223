package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func init() { commands["load"] = load }

// keyHelp is the load commands' --key help: the key belongs in the
// environment, where ps does not show it.
const keyHelp = "operator or admin API key; give it as PORTRAIT_KEY in the environment rather than on the command line, where every account can read it (ps)"

// load is the load generator: it posts NDJSON batches of synthetic view
// events to a running server from several workers and reports events/s,
// batch latency and its own CPU time: on a small machine the generator
// shares the cores with the server it measures, so what it costs is part
// of the result. It only ever targets the URL it is given; use a
// loopback address.
func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("load", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "base URL of the server under load")
	key := fs.String("key", "", keyHelp)
	events := fs.Int("events", 100_000, "total events to send")
	batch := fs.Int("batch", 1000, "events per request")
	workers := fs.Int("workers", 4, "concurrent requests")
	subjects := fs.Int("subjects", 10_000, "distinct subjects")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *events <= 0 || *batch <= 0 || *workers <= 0 || *subjects <= 0 {
		fmt.Fprintln(stderr, "load: the API key is required (PORTRAIT_KEY) and --events, --batch, --workers, --subjects must be positive")
		return errUsage
	}
	batches := (*events + *batch - 1) / *batch
	next := atomic.Int64{}
	var mu sync.Mutex
	var lat []time.Duration
	var accepted, rejected atomic.Int64
	pool, err := newConnPool(*server, *key, *workers)
	if err != nil {
		fmt.Fprintf(stderr, "load: %v\n", err)
		return errUsage
	}
	defer pool.close()
	// Bodies are built before the clock starts, so that formatting events
	// does not take CPU from the server under test on a small machine; up
	// to 64 distinct bodies are cycled through.
	now := time.Now().UTC()
	bodies := make([][]byte, min(batches, 64))
	for b := range bodies {
		var body bytes.Buffer
		for i := range *batch {
			n := b**batch + i
			fmt.Fprintf(&body, `{"subject":"load-%d","type":"view","time":%q,"fields":{"item":"item-%d","category":"c%d","price":%d}}`+"\n",
				n%*subjects, now.Add(-time.Duration(n%86400)*time.Second).Format(time.RFC3339), n%5000, n%12, n%500)
		}
		bodies[b] = body.Bytes()
	}
	start := time.Now()
	cpu0, measured := processCPU()
	errc := make(chan error, *workers)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				status, answer, err := pool.call(ctx, "POST", "/v1/events", "application/x-ndjson", bodies[b%len(bodies)])
				if err != nil {
					errc <- err
					return
				}
				sum, err := readSummary(bytes.NewReader(answer))
				if status != 200 || err != nil {
					if err == nil {
						err = errors.New("the answer gives no detail")
					}
					errc <- fmt.Errorf("batch %d: status %d: %v", b, status, err)
					return
				}
				d := time.Since(t0)
				accepted.Add(int64(sum.Accepted))
				rejected.Add(int64(sum.Rejected))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	elapsed := time.Since(start)
	cpu1, _ := processCPU()
	cpu := cpu1 - cpu0
	if len(lat) == 0 {
		return errors.Join(append(errs, errors.New("load: no batch succeeded"))...)
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Fprintf(stdout, "%d events in %d batches of %d by %d workers in %s: %.0f events/s\n",
		accepted.Load()+rejected.Load(), len(lat), *batch, *workers, elapsed.Round(time.Millisecond),
		float64(accepted.Load()+rejected.Load())/elapsed.Seconds())
	fmt.Fprintf(stdout, "accepted %d, rejected %d; batch latency p50 %s, p99 %s\n",
		accepted.Load(), rejected.Load(), q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond))
	if sent := accepted.Load() + rejected.Load(); sent > 0 && measured {
		fmt.Fprintf(stdout, "load generator: %.2f s CPU, %.1f µs per event, %.0f%% of one core\n",
			cpu.Seconds(), float64(cpu.Microseconds())/float64(sent), 100*cpu.Seconds()/elapsed.Seconds())
	}
	return errors.Join(errs...)
}

// loadSummary is what load reads of a batch's answer.
type loadSummary struct {
	Accepted, Rejected int
	Detail             string // of a problem
}

// readSummary reads the counts at the head of a POST /v1/events answer
// and skips its per-event results unread: decoding a thousand results
// per batch was most of what the generator itself cost. A problem
// (problem+json) comes back as an error carrying its detail.
func readSummary(r io.Reader) (loadSummary, error) {
	var sum loadSummary
	counted := false
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return sum, fmt.Errorf("the answer is not a JSON object: %v", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return sum, err
		}
		var v any
		switch t {
		case "results":
			if !counted {
				v = new(json.RawMessage) // the counts come after: read on
				break
			}
			_, err := io.Copy(io.Discard, dec.Buffered())
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			return sum, err
		case "accepted":
			v, counted = &sum.Accepted, true
		case "rejected":
			v = &sum.Rejected
		case "detail":
			v = &sum.Detail
		default:
			v = new(json.RawMessage)
		}
		if err := dec.Decode(v); err != nil {
			return sum, err
		}
	}
	if sum.Detail != "" {
		return sum, errors.New(sum.Detail)
	}
	return sum, nil
}
