package apply

import (
	"context"

	portrait "github.com/portrait-dev/portrait"
)

// Bare runs only the scorer of a recommendation — no gate, no policy, no
// reads of the subject, no audit — for the cost-of-governance benchmark.
func (s *Service) Bare(ctx context.Context, purpose string, labels []string, history map[string]float64, weight float64, n int) ([]Recommended, error) {
	items, err := s.itemSet(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.model(ctx, purpose, labels)
	if err != nil {
		return nil, err
	}
	return rank(m, items, input{Labels: labels, History: history, Weight: weight, N: n, Diversity: DefaultDiversity}), nil
}

// BareReference is Bare with the scorer as it was before candidate lists
// (referenceRank), for the benchmark that compares the two in one run.
func (s *Service) BareReference(ctx context.Context, purpose string, labels []string, history map[string]float64, weight float64, n int) ([]Recommended, error) {
	items, err := s.itemSet(ctx)
	if err != nil {
		return nil, err
	}
	m, err := s.model(ctx, purpose, labels)
	if err != nil {
		return nil, err
	}
	return referenceRank(m, items, input{Labels: labels, History: history, Weight: weight, N: n, Diversity: DefaultDiversity}), nil
}

// ItemSet returns the ids of the items the service ranks now, and the set
// itself as an opaque handle: the same handle means the same candidate
// lists.
func (s *Service) ItemSet(ctx context.Context) ([]string, any, error) {
	set, err := s.itemSet(ctx)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(set.list))
	for i, it := range set.list {
		ids[i] = it.ID
	}
	return ids, set, nil
}

// Marked is the marks index's answer for one subject and use-case, kind
// "notice" (CN-11) or "automation" (a refusal, AD-2).
func (s *Service) Marked(ctx context.Context, kind string, p portrait.Pseudonym, usecase string) (bool, error) {
	return s.marked(ctx, kind, p, usecase)
}
