package monitor_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/monitor"
)

// entropy is the normalised Shannon entropy of category counts over k
// categories, computed here independently of package fairness.
func entropy(counts map[string]int, k int) float64 {
	total := 0
	for _, n := range counts {
		total += n
	}
	h := 0.0
	for _, n := range counts {
		p := float64(n) / float64(total)
		h -= p * math.Log2(p)
	}
	return h / math.Log2(float64(k))
}

func list(cats ...string) (items, categories []string) {
	for i, c := range cats {
		items = append(items, fmt.Sprintf("%s-%d", c, i))
	}
	return items, cats
}

// TestObserve measures the filter bubble on recommendation answers as they
// are returned, per recommender and per subject, with a floor set per
// recommender, and alerts below it (FB-1, FB-2).
func TestObserve(t *testing.T) {
	clock := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	e := newEnv(t, monitor.Options{Now: now, Period: 24 * time.Hour, RecommenderFloors: map[string]float64{"home": 0.5}})
	for _, id := range []string{"a", "b"} {
		e.ingest(portrait.Event{SubjectID: id, Type: "profile", Time: clock.Add(-time.Hour), Fields: map[string]any{"shoe_colour": "red"}})
	}
	a, b := e.keys.Pseudonym("a"), e.keys.Pseudonym("b")
	diverse := []string{"sports", "books", "garden", "music", "sports"}
	sports := []string{"sports", "sports", "sports", "sports", "sports"}
	homeCounts := []map[string]int{{}, {}, {}}
	observe := func(day int, ps string, cats []string) {
		items, cs := list(cats...)
		e.mon.Observe("home", portrait.Pseudonym(ps), items, cs)
		for _, c := range cats {
			homeCounts[day][c]++
		}
	}
	for day := range 3 {
		mu.Lock()
		clock = time.Date(2026, 3, 2+day, 12, 0, 0, 0, time.UTC)
		mu.Unlock()
		observe(day, string(a), diverse)
		if day < 2 {
			observe(day, string(b), diverse)
			continue
		}
		for range 5 {
			observe(day, string(b), sports) // b's recommendations narrow to one category
		}
	}
	e.mon.Observe("home", a, []string{"x"}, nil) // refused: no category
	gi, gc := list("books", "toys")
	e.mon.Observe("home", e.keys.Pseudonym("ghost"), gi, gc) // not stored: left out
	rep, err := e.mon.Run(context.Background(), clock)
	if err != nil {
		t.Fatal(err)
	}
	sec := rep.Recommenders
	if sec.AnswersRejected != 1 || sec.SubjectsLeftOut != 1 || sec.SubjectsTracked != 2 || sec.CatalogueCats != 5 {
		t.Fatalf("section: rejected %d, left out %d, tracked %d, categories %d; note %q",
			sec.AnswersRejected, sec.SubjectsLeftOut, sec.SubjectsTracked, sec.CatalogueCats, sec.Note)
	}
	if len(sec.Recommenders) != 1 || sec.Recommenders[0].Scope != "recommender:home" || len(sec.Recommenders[0].Periods) != 3 {
		t.Fatalf("recommenders: %+v", sec.Recommenders)
	}
	home := sec.Recommenders[0]
	// The ghost's books and toys count in the recommender's last period.
	homeCounts[2]["books"]++
	homeCounts[2]["toys"]++
	for day, p := range home.Periods {
		if want := entropy(homeCounts[day], 5); math.Abs(p.Entropy-want) > 1e-9 {
			t.Errorf("home day %d entropy %v, want %v", day, p.Entropy, want)
		}
	}
	latest := home.Periods[2].Entropy
	if !(latest > 0.3 && latest < 0.5) {
		t.Fatalf("fixture: home's last entropy %v should be between the default floor 0.3 and home's 0.5", latest)
	}
	if !home.Trend.BelowFloor || home.Floor != 0.5 || home.Trend.Slope == nil || *home.Trend.Slope >= 0 {
		t.Errorf("home trend: %+v", home.Trend)
	}
	// Intra-list diversity of the diverse list: 9 of its 10 pairs differ.
	if d := home.Periods[0].ILD; d == nil || math.Abs(*d-0.9) > 1e-12 {
		t.Errorf("home day 0 ILD: %v", d)
	}
	byScope := map[string]monitor.BubbleScope{}
	for _, s := range sec.Subjects {
		byScope[s.Scope] = s
	}
	sb, sa := byScope["recommended-to:"+string(b)], byScope["recommended-to:"+string(a)]
	if len(sb.Periods) != 3 || sb.Periods[2].Entropy != 0 || !sb.Trend.BelowFloor || sb.Pseudonym != b || *sb.Periods[2].ILD != 0 {
		t.Errorf("b: %+v", sb)
	}
	if len(sa.Periods) != 3 || sa.Trend.BelowFloor || sa.Periods[2].Coverage != 5.0/float64(sec.CatalogueItems) {
		t.Errorf("a: %+v (catalogue %d items)", sa, sec.CatalogueItems)
	}
	if sec.Subjects[0].Scope != "recommended-to:"+string(b) || sec.SubjectsBelow != 1 {
		t.Errorf("subjects below the floor are not listed first: %v, %d below", sec.Subjects[0].Scope, sec.SubjectsBelow)
	}
	alerts := map[string]monitor.Alert{}
	for _, al := range rep.Alerts {
		alerts[al.Scope] = al
	}
	if al, ok := alerts["recommender:home"]; !ok || al.Requirement != "FB-2" || al.Threshold != 0.5 {
		t.Errorf("recommender alert: %+v", al)
	}
	if al, ok := alerts["recommended-to:"+string(b)]; !ok || al.Pseudonym != b || al.Value != 0 {
		t.Errorf("subject alert: %+v", al)
	}
	if _, ok := alerts["recommended-to:"+string(a)]; ok {
		t.Error("a diverse subject raised an alert")
	}
	n := 0
	for _, r := range e.records("alert") {
		if r.Detail["scope"] == "recommender:home" || r.Detail["scope"] == "recommended-to:"+string(b) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d filter-bubble alerts in the audit log, want 2", n)
	}
	var buf bytes.Buffer
	if err := monitor.WriteHTML(&buf, rep, "en", nil); err != nil {
		t.Fatal(err)
	}
	// FB-1: recommenders get a row each; people are counted and their
	// spread shown, so per-person rows never bury other alerts.
	if h := buf.String(); !strings.Contains(h, "Recommendations as shown") || !strings.Contains(h, "<td>home</td>") ||
		!strings.Contains(h, "2 people tracked, 1 below their floor.") || !strings.Contains(h, "1 per-person filter-bubble alerts") ||
		strings.Contains(h, "recommended-to:"+string(b)) || strings.Contains(h, string(b)[:8]) || !strings.Contains(h, `class="bubble-dist"`) {
		t.Errorf("HTML has no recommender section or lists people one by one:\n%.3000s", h)
	}
}

// TestObserveBounded: subjects beyond BubbleSubjects are dropped, least
// recently observed first, and Observe is safe for concurrent use.
func TestObserveBounded(t *testing.T) {
	e := newEnv(t, monitor.Options{BubbleSubjects: 2})
	for _, id := range []string{"a", "b", "c"} {
		e.ingest(portrait.Event{SubjectID: id, Type: "profile", Time: e.now.Add(-time.Hour), Fields: map[string]any{"shoe_colour": "red"}})
	}
	items, cats := []string{"i1", "i2", "i3", "i4", "i5"}, []string{"x", "y", "x", "y", "z"}
	var wg sync.WaitGroup
	for _, id := range []string{"a", "b"} {
		ps := e.keys.Pseudonym(id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 14 {
				e.mon.Observe("home", ps, items, cats)
			}
		}()
	}
	wg.Wait()
	// b is seen again, so a is the least recent when c arrives.
	e.mon.Observe("home", e.keys.Pseudonym("b"), items, cats)
	e.mon.Observe("home", e.keys.Pseudonym("c"), items, cats)
	rep, err := e.mon.Run(context.Background(), e.now)
	if err != nil {
		t.Fatal(err)
	}
	sec := rep.Recommenders
	if sec.SubjectsTracked != 2 || sec.SubjectsEvicted != 1 {
		t.Fatalf("tracked %d, evicted %d", sec.SubjectsTracked, sec.SubjectsEvicted)
	}
	for _, s := range sec.Subjects {
		if s.Pseudonym == e.keys.Pseudonym("a") {
			t.Error("the least recently observed subject was kept")
		}
	}
	if len(sec.Recommenders) != 1 || sec.Recommenders[0].Periods[0].Lists != 30 {
		t.Errorf("recommender: %+v", sec.Recommenders)
	}
}
