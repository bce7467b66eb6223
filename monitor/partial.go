package monitor

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"slices"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/fairness"
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
	// restrictedBy counts the restricted subjects Collect left out, by
	// pseudonym, for Split; not encoded.
	restrictedBy map[portrait.Pseudonym]int
}

// Subjects is how many subjects the partial read.
func (p *Partial) Subjects() int { return len(p.subjects) }

// Collect reads, for a run at now, the subjects whose bucket (by bucket)
// is one of buckets, and logs the read of their protected attributes
// (FP-2) before returning them.
func (m *Monitor) Collect(ctx context.Context, now time.Time, buckets []int, bucket func(pseudonym portrait.Pseudonym) int) (*Partial, error) {
	in := map[int]bool{}
	for _, b := range buckets {
		in[b] = true
	}
	p, err := m.collectPart(ctx, now.UTC(), func(ps portrait.Pseudonym) bool { return in[bucket(ps)] })
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
	slices.SortFunc(all.subjects, func(a, b *subjectData) int { return strings.Compare(string(a.pseudonym), string(b.pseudonym)) })
	return m.report(ctx, now.UTC(), start, all)
}

// The partial's encoding, for the store (sealed by the caller).
type wirePartial struct {
	Buckets    []int
	Restricted int
	Subjects   []wireSubject
}

type wireSubject struct {
	Pseudonym       string
	Protected       map[string]string
	Numeric         map[string]float64
	Category, Kinds map[string]string
	Segment         string
	Labels          []string
	Decisions       []wireDecision
	Prices          []fairness.PriceEvent
	Exposures       []wireExposure
}

// wireDecision is what the monitors read of a stored decision.
type wireDecision struct {
	ID, Subject, UseCase, Model, Status string
	ModelVersion                        int
	Outcome                             bool
	Score                               float64
	Created                             time.Time
	LogIndex                            int64
}

type wireExposure struct {
	T              time.Time
	Item, Category string
}

// MarshalBinary encodes the partial (gob: scores may be NaN, which JSON
// cannot carry).
func (p *Partial) MarshalBinary() ([]byte, error) {
	w := wirePartial{Buckets: p.Buckets, Restricted: p.restricted, Subjects: make([]wireSubject, len(p.subjects))}
	for i, s := range p.subjects {
		ws := wireSubject{Pseudonym: string(s.pseudonym), Protected: s.protected, Numeric: s.numeric, Category: s.category, Kinds: s.kinds,
			Segment: s.segment, Labels: s.labels, Prices: s.prices}
		for _, d := range s.decisions {
			ws.Decisions = append(ws.Decisions, wireDecision{ID: d.ID, Subject: string(d.Pseudonym), UseCase: d.UseCase, Model: d.Model, Status: d.Status,
				ModelVersion: d.ModelVersion, Outcome: d.Outcome, Score: d.Score, Created: d.Created, LogIndex: d.LogIndex})
		}
		for _, e := range s.exposures {
			ws.Exposures = append(ws.Exposures, wireExposure{T: e.t, Item: e.item, Category: e.category})
		}
		w.Subjects[i] = ws
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(w); err != nil {
		return nil, fmt.Errorf("monitor: encode partial: %w", err)
	}
	return b.Bytes(), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (p *Partial) UnmarshalBinary(b []byte) error {
	var w wirePartial
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&w); err != nil {
		return fmt.Errorf("monitor: decode partial: %w", err)
	}
	*p = Partial{Buckets: w.Buckets, restricted: w.Restricted}
	for _, ws := range w.Subjects {
		s := &subjectData{pseudonym: portrait.Pseudonym(ws.Pseudonym), protected: ws.Protected, numeric: ws.Numeric, category: ws.Category, kinds: ws.Kinds,
			segment: ws.Segment, labels: ws.Labels, prices: ws.Prices}
		for _, d := range ws.Decisions {
			s.decisions = append(s.decisions, portrait.StoredDetermination{ID: d.ID, Pseudonym: portrait.Pseudonym(d.Subject), UseCase: d.UseCase, Model: d.Model, Status: d.Status,
				ModelVersion: d.ModelVersion, Outcome: d.Outcome, Score: d.Score, Created: d.Created, LogIndex: d.LogIndex})
		}
		for _, e := range ws.Exposures {
			s.exposures = append(s.exposures, exposure{t: e.T, item: e.Item, category: e.Category})
		}
		if len(s.protected) > 0 {
			p.withValues++
		}
		p.subjects = append(p.subjects, s)
	}
	return nil
}

// Split divides the partial into one per bucket, by bucket.
func (p *Partial) Split(bucket func(pseudonym portrait.Pseudonym) int) map[int]*Partial {
	out := make(map[int]*Partial, len(p.Buckets))
	for _, b := range p.Buckets {
		out[b] = &Partial{Buckets: []int{b}}
	}
	for _, s := range p.subjects {
		q := out[bucket(s.pseudonym)]
		if q == nil {
			continue // not one of p's buckets: Collect did not read it
		}
		q.subjects = append(q.subjects, s)
		if len(s.protected) > 0 {
			q.withValues++
		}
	}
	for ps, n := range p.restrictedBy {
		if q := out[bucket(ps)]; q != nil {
			q.restricted += n
		}
	}
	return out
}
