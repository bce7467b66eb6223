package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

// Ingest that races consent changes on PostgreSQL with a pool of two
// connections never stalls (invariant 3 must not cost liveness): a chunk
// re-decided inside its transaction reads only through that transaction.
// It used to read the subjects' keys through the pool while its
// transaction held the governance generation, and a consent change
// holding the pool's other connection waited on that generation for ever.
func TestIngestRacingConsentSmallPool(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn+"&pool_max_conns=2")
	if err != nil {
		t.Fatal(err)
	}
	e := (&env{}).setup(t, st, nil, ingest.Options{})
	const k = 8
	for i := range k {
		e.grant(t, fmt.Sprintf("r%d", i), "personalization")
	}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				ev := portrait.Event{SubjectID: fmt.Sprintf("r%d", (w+n)%k), Type: "view", Time: e.now,
					Fields: map[string]any{"item": fmt.Sprintf("i%d-%d", w, n), "category": "sports", "price": 1.0}}
				_, _, err := e.in.Ingest(c, operator, []ingest.Item{{Event: ev}})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("ingest %d: %w", n, err)
					return
				}
			}
		}()
	}
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status := policy.Withdrawn
			for n := 0; time.Now().Before(deadline); n++ {
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := e.ledger.Record(c, operator, consent.ByID(fmt.Sprintf("r%d", (w+n)%k)),
					consent.Change{Purpose: "personalization", Status: status, NoticeVersion: "1"})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("consent change %d: %w", n, err)
					return
				}
				status = map[policy.Status]policy.Status{policy.Withdrawn: policy.Granted, policy.Granted: policy.Withdrawn}[status]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
