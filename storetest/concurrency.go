package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	portrait "github.com/portrait-dev/portrait"
)

// testConcurrentUpdates: invariant 3 under concurrency. Updates running
// at once each commit or roll back on their own, whatever the engine does
// to share its writer (the SQLite engine commits them in groups): a
// failing or panicking function loses only its own writes and only its
// caller sees the failure.
func testConcurrentUpdates(t *testing.T, s portrait.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	const n = 48
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = s.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				p := fmt.Sprintf("c%02d", i)
				if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: portrait.Pseudonym(p), WrappedKey: []byte("key")}}); err != nil {
					return err
				}
				switch i % 4 {
				case 1:
					return boom
				case 2:
					panic(p)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i := range n {
		p := fmt.Sprintf("c%02d", i)
		var wantErr error
		var wantPanic any
		switch i % 4 {
		case 1:
			wantErr = boom
		case 2:
			wantPanic = p
		}
		if !errors.Is(errs[i], wantErr) || wantErr == nil && errs[i] != nil {
			t.Errorf("update %d: error %v, want %v", i, errs[i], wantErr)
		}
		if panics[i] != wantPanic {
			t.Errorf("update %d: panic %v, want %v", i, panics[i], wantPanic)
		}
		subs, err := s.Subjects(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
		if err != nil {
			t.Fatal(err)
		}
		if stored, want := len(subs) == 1, i%4 == 0 || i%4 == 3; stored != want {
			t.Errorf("subject %s stored = %v, want %v", p, stored, want)
		}
	}
}
