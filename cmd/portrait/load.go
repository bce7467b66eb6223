package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func init() { commands["load"] = load }

// load is the load generator: it posts NDJSON batches of synthetic view
// events to a running server from several workers and reports events/s
// and batch latency. It only ever targets the URL it is given; use a
// loopback address.
func load(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("load", stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "base URL of the server under load")
	key := fs.String("key", "", "operator or admin API key")
	events := fs.Int("events", 100_000, "total events to send")
	batch := fs.Int("batch", 1000, "events per request")
	workers := fs.Int("workers", 4, "concurrent requests")
	subjects := fs.Int("subjects", 10_000, "distinct subjects")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *events <= 0 || *batch <= 0 || *workers <= 0 || *subjects <= 0 {
		fmt.Fprintln(stderr, "load: --key is required and --events, --batch, --workers, --subjects must be positive")
		return errUsage
	}
	batches := (*events + *batch - 1) / *batch
	next := atomic.Int64{}
	var mu sync.Mutex
	var lat []time.Duration
	var accepted, rejected atomic.Int64
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
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
				req, _ := http.NewRequestWithContext(ctx, "POST", *server+"/v1/events", bytes.NewReader(bodies[b%len(bodies)]))
				req.Header.Set("Authorization", "Bearer "+*key)
				req.Header.Set("Content-Type", "application/x-ndjson")
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				var sum struct{ Accepted, Rejected int }
				err = json.NewDecoder(resp.Body).Decode(&sum)
				resp.Body.Close()
				if resp.StatusCode != 200 || err != nil {
					errc <- fmt.Errorf("batch %d: status %d", b, resp.StatusCode)
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
	return errors.Join(errs...)
}
