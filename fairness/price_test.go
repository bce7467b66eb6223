package fairness

import (
	"errors"
	"math"
	"testing"
	"time"
)

// FP-1: the same item, window and context, priced differently by segment.
func TestPriceScan(t *testing.T) {
	s, err := NewPriceScanner(PriceOptions{Window: 24 * time.Hour, Threshold: 0.05, MinEvents: 3})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var prices []float64 // every price of phone/app on day 1, for an independent check
	add := func(item, ctx, seg string, at time.Time, price float64, labels ...string) {
		t.Helper()
		if err := s.Add(PriceEvent{Subject: "s", Item: item, Context: ctx, Segment: seg, Time: at, Price: price, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		if item == "phone" && ctx == "app" && at.Before(day.Add(24*time.Hour)) {
			prices = append(prices, price)
		}
	}
	for i := range 6 {
		at := day.Add(time.Duration(i) * time.Hour)
		add("phone", "app", "loyal", at, 110+float64(i%2), "iphone_user")
		add("phone", "app", "new", at, 100)
		add("case", "app", "loyal", at, 20) // same price for everyone: no finding
		add("case", "app", "new", at, 20)
		// Different contexts and different days are legitimate differences.
		add("phone", "store", "new", at, 90)
		add("phone", "app", "new", at.Add(48*time.Hour), 80)
	}
	add("phone", "app", "vip", day, 200, "iphone_user") // one event: under MinEvents, not a segment
	rep := s.Report()
	if rep.Events != 37 {
		t.Errorf("events %d, want 37", rep.Events)
	}
	if len(rep.Findings) != 1 || len(rep.Alerts) != 1 {
		t.Fatalf("findings %+v alerts %+v; want one of each", rep.Findings, rep.Alerts)
	}
	f, a := rep.Findings[0], rep.Alerts[0]
	if f.Item != "phone" || f.Context != "app" || !f.WindowStart.Equal(day) || !f.Alert {
		t.Errorf("finding %+v", f)
	}
	// Independent dispersion over the raw prices (the vip outlier included).
	var mean, min, max float64 = 0, math.Inf(1), math.Inf(-1)
	for _, p := range prices {
		mean += p
		min, max = math.Min(min, p), math.Max(max, p)
	}
	mean /= float64(len(prices))
	var ss float64
	for _, p := range prices {
		ss += (p - mean) * (p - mean)
	}
	cv := math.Sqrt(ss/float64(len(prices))) / mean
	if f.Events != int64(len(prices)) || f.Min != min || f.Max != max || math.Abs(*f.CV-cv) > 1e-12 || math.Abs(*f.MaxMinRatio-max/min) > 1e-12 {
		t.Errorf("dispersion %+v; independent n %d min %v max %v cv %v", f, len(prices), min, max, cv)
	}
	if math.Abs(*f.SegmentGap-(110.5/100-1)) > 1e-12 || a.Highest != "loyal" || a.Lowest != "new" || a.Requirement != "FP-1" {
		t.Errorf("gap %v alert %+v; want loyal 110.5 vs new 100", *f.SegmentGap, a)
	}
	if len(f.Labels) != 1 || f.Labels[0].Label != "iphone_user" || f.Labels[0].Difference <= 0 {
		t.Errorf("labels %+v; iphone_user should explain the higher price", f.Labels)
	}
	if f.Explained <= 0.9 {
		t.Errorf("segment explains %v of the variance; expected nearly all", f.Explained)
	}

	// A small gap is a finding but no alert.
	s2, _ := NewPriceScanner(PriceOptions{Threshold: 0.05})
	for i := range 5 {
		s2.Add(PriceEvent{Item: "x", Segment: "a", Price: 100, Time: day.Add(time.Duration(i) * time.Minute)})
		s2.Add(PriceEvent{Item: "x", Segment: "b", Price: 102, Time: day.Add(time.Duration(i) * time.Minute)})
	}
	if r := s2.Report(); len(r.Findings) != 1 || len(r.Alerts) != 0 {
		t.Errorf("2 %% gap: %d findings %d alerts; want 1, 0", len(r.Findings), len(r.Alerts))
	}
}

func TestPriceScanRefusals(t *testing.T) {
	s, _ := NewPriceScanner(PriceOptions{})
	now := time.Now()
	for name, e := range map[string]PriceEvent{
		"negative": {Item: "x", Price: -1, Time: now},
		"NaN":      {Item: "x", Price: math.NaN(), Time: now},
		"no time":  {Item: "x", Price: 1},
		"no item":  {Price: 1, Time: now},
	} {
		if err := s.Add(e); !errors.Is(err, ErrInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewPriceScanner(PriceOptions{Window: time.Millisecond}); !errors.Is(err, ErrInput) {
		t.Errorf("sub-second window: %v", err)
	}
}
