// Package limit bounds how often one client may do something that anyone
// may do without an account (violation reports, complaints, comments): a
// token bucket per client address, in memory. Each node limits on its own,
// which is enough to stop one client flooding a queue; the bucket map is
// bounded, so a flood of addresses cannot exhaust memory either.
package limit

import (
	"sync"
	"time"
)

// New returns a limiter that allows burst requests at once, then one per
// rate, per client.
func New(rate time.Duration, burst int) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// Limiter is a token bucket per client address, in memory: each node limits
// on its own, which is enough to stop one client flooding the queue.
type Limiter struct {
	mu      sync.Mutex
	rate    time.Duration // one token per rate
	burst   float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the memory the limiter holds; when full, buckets that
// have refilled (and so carry no state) are dropped.
const maxBuckets = 100_000

// Allow reports whether client may go ahead now, taking a token if so.
func (l *Limiter) Allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.rate))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+float64(now.Sub(b.at))/float64(l.rate) >= l.burst {
			delete(l.buckets, k)
		}
	}
}
