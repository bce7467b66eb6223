package monitor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Partial is what one node read for a monitor run of the subjects of
// some buckets (package cluster): the run's inputs for those subjects, so
// that Combine, given the partials of every bucket, computes the report
// Run computes over all subjects at once. Every subject falls in one
// bucket, so partials that cover each bucket exactly once count each
// subject once.
//
// It holds per-subject inputs, protected values among them: it lives in
// the memory of the process that combines. Moving it between nodes needs
// it sealed (not built; see docs/DESIGN-NOTES.md).
type Partial struct {
	Buckets    []int
	subjects   []*subjectData
	restricted int
	withValues int
}

// Subjects is how many subjects the partial read.
func (p *Partial) Subjects() int { return len(p.subjects) }

// Collect reads, for a run at now, the subjects whose bucket (by bucket)
// is one of buckets, and logs the read of their protected attributes
// (FP-2) before returning them.
func (m *Monitor) Collect(ctx context.Context, now time.Time, buckets []int, bucket func(pseudonym string) int) (*Partial, error) {
	in := map[int]bool{}
	for _, b := range buckets {
		in[b] = true
	}
	p, err := m.collectPart(ctx, now.UTC(), func(ps string) bool { return in[bucket(ps)] })
	if err != nil {
		return nil, err
	}
	p.Buckets = slices.Sorted(func(yield func(int) bool) {
		for b := range in {
			if !yield(b) {
				return
			}
		}
	})
	return p, nil
}

// Combine computes the report of a run at now from partials that cover
// buckets 0 to n-1 each exactly once, records its alerts and keeps it, as
// Run does. Partials that miss a bucket or hold one twice are refused:
// a subject would be missed or counted twice.
func (m *Monitor) Combine(ctx context.Context, now time.Time, n int, parts ...*Partial) (*Report, error) {
	m.run.Lock()
	defer m.run.Unlock()
	start := time.Now()
	seen := make([]int, n)
	all := &Partial{}
	for _, p := range parts {
		for _, b := range p.Buckets {
			if b < 0 || b >= n {
				return nil, fmt.Errorf("monitor: combine: bucket %d is not one of %d", b, n)
			}
			seen[b]++
		}
		all.subjects = append(all.subjects, p.subjects...)
		all.restricted += p.restricted
		all.withValues += p.withValues
	}
	var missing, twice []string
	for b, k := range seen {
		switch {
		case k == 0:
			missing = append(missing, fmt.Sprint(b))
		case k > 1:
			twice = append(twice, fmt.Sprint(b))
		}
	}
	if len(missing) > 0 || len(twice) > 0 {
		return nil, fmt.Errorf("monitor: combine: buckets missing [%s], held twice [%s]: the report would miss or double-count subjects",
			strings.Join(missing, " "), strings.Join(twice, " "))
	}
	// One node reads the subjects in pseudonym order; so does Combine.
	slices.SortFunc(all.subjects, func(a, b *subjectData) int { return strings.Compare(a.pseudonym, b.pseudonym) })
	return m.report(ctx, now.UTC(), start, all)
}
