package apply

import "context"

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
