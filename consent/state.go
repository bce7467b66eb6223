package consent

import (
	"context"
	"fmt"
	portrait "github.com/portrait-dev/portrait"

	"github.com/portrait-dev/portrait/policy"
)

// State returns the governance state of one subject; see States.
func (l *Ledger) State(ctx context.Context, pseudonym portrait.Pseudonym) (*policy.State, error) {
	m, err := l.States(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return nil, err
	}
	return m[pseudonym], nil
}

// States returns the governance state of each pseudonym (unknown subjects
// get a fresh state), from the cache when it is current. Every call first
// reads the store generation; if any node changed governance since the
// cache was filled, the cache is dropped and the suspensions are reloaded
// into the decision point (invariant 5).
//
// The returned states are shared with the cache and other callers: do not
// modify them.
func (l *Ledger) States(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error) {
	m, _, err := l.StatesAt(ctx, pseudonyms)
	return m, err
}

// StatesAt is States, and also returns the governance generation it read
// first: the states are at least that fresh, so a caller keeping state of
// its own tags it with gen and needs no second read (invariant 5).
//
// Under a context from AtGeneration it reads no generation and uses the
// one the context carries.
func (l *Ledger) StatesAt(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, int64, error) {
	return l.statesAt(ctx, pseudonyms, l.store.States)
}

// StatesRange is StatesAt for pseudonyms in ascending byte order that
// are consecutive among the stored subjects (a batch derivation's page):
// those the cache does not hold are read as one range of each table
// (Store.StatesRange) instead of a seek per subject.
func (l *Ledger) StatesRange(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, int64, error) {
	return l.statesAt(ctx, pseudonyms, l.store.StatesRange)
}

type atGeneration struct{}

// AtGeneration returns ctx carrying gen, a governance generation the
// caller read from the store at the start of the same short request (the
// server's staff key check reads it on every request), so that States
// and StatesAt under ctx use it instead of reading it a second time: the
// states are then at least as fresh as that read, and the request is
// served as of when it began, which is all invariant 5 asks — a change
// committed after that read binds the next request. Only for a call that
// reads the generation to decide and writes no governance under a check
// of it (a decision, a recommendation); a call that compares the
// generation in its transaction and tries again (ingest) must read it
// afresh, and never runs under such a context — unless, as a batch
// derivation's listing does, it read gen itself just before and uses the
// states only after reading the generation again and finding gen.
func AtGeneration(ctx context.Context, gen int64) context.Context {
	return context.WithValue(ctx, atGeneration{}, gen)
}

// statesAt reads the generation (or takes ctx's), then serves
// pseudonyms' states from the cache where it is at that generation and
// reads the others with read (the store's States or StatesRange).
func (l *Ledger) statesAt(ctx context.Context, pseudonyms []portrait.Pseudonym, read func(context.Context, []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)) (map[portrait.Pseudonym]*policy.State, int64, error) {
	gen, ok := ctx.Value(atGeneration{}).(int64)
	if !ok {
		var err error
		if gen, err = l.store.Generation(ctx); err != nil {
			return nil, 0, failClosed("read governance generation", err)
		}
	}
	m, err := l.fill(ctx, gen, pseudonyms, read)
	return m, gen, err
}

// fill is statesAt at generation gen.
func (l *Ledger) fill(ctx context.Context, gen int64, pseudonyms []portrait.Pseudonym, read func(context.Context, []portrait.Pseudonym) (map[portrait.Pseudonym]*policy.State, error)) (map[portrait.Pseudonym]*policy.State, error) {
	if err := l.refresh(ctx, gen); err != nil {
		return nil, err
	}
	out := make(map[portrait.Pseudonym]*policy.State, len(pseudonyms))
	var miss []portrait.Pseudonym
	l.mu.RLock()
	current := l.filled && l.gen == gen
	for _, p := range pseudonyms {
		if st, ok := l.states[p]; ok && current {
			out[p] = st
		} else {
			miss = append(miss, p)
		}
	}
	l.mu.RUnlock()
	if len(miss) == 0 {
		return out, nil
	}
	got, err := read(ctx, miss)
	if err != nil {
		return nil, failClosed("read governance state", err)
	}
	l.mu.Lock()
	// States read after gen was read are at least that fresh; only keep
	// them if no other call has moved the cache on meanwhile.
	keep := l.filled && l.gen == gen
	if keep && len(l.states)+len(got) > maxStates {
		l.states = make(map[portrait.Pseudonym]*policy.State)
	}
	for _, p := range miss {
		st := got[p]
		if st == nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("read governance state: the store returned no state for %s", p)
		}
		out[p] = st
		if keep {
			l.states[p] = st
		}
	}
	l.mu.Unlock()
	return out, nil
}

// refresh drops the cache and reloads the suspensions when gen is not the
// generation the cache was filled at.
func (l *Ledger) refresh(ctx context.Context, gen int64) error {
	l.mu.RLock()
	current := l.filled && l.gen == gen
	l.mu.RUnlock()
	if current {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.RLock()
	current = l.filled && l.gen == gen
	l.mu.RUnlock()
	if current {
		return nil
	}
	susp, err := l.store.Suspensions(ctx)
	if err != nil {
		return failClosed("read suspensions", err)
	}
	l.point.SetSuspensions(susp)
	l.mu.Lock()
	l.gen, l.filled = gen, true
	l.states = make(map[portrait.Pseudonym]*policy.State)
	l.mu.Unlock()
	return nil
}
