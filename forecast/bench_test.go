package forecast_test

import (
	"compress/gzip"
	"os"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/forecast"
	"github.com/portrait-dev/portrait/importer"
)

func cdnowPanel(tb testing.TB) ([][]time.Time, time.Time) {
	tb.Helper()
	f, err := os.Open("../examples/cdnow/CDNOW_master.txt.gz")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	days := map[string][]time.Time{}
	if err := importer.ReadCDNOW(gz, func(p importer.Purchase) error {
		days[p.Customer] = append(days[p.Customer], p.Day)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	var panel [][]time.Time
	for _, d := range days {
		panel = append(panel, forecast.Days(d))
	}
	return panel, time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC)
}

// Fit BG/NBD to the 23,570 CDNOW customers (calibration to 1997-09-30).
func BenchmarkFitCDNOW(b *testing.B) {
	panel, end := cdnowPanel(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := forecast.FitModel(forecast.ModelBGNBD, panel, end); err != nil {
			b.Fatal(err)
		}
	}
}

// Fit BG/NBD with the calendar trend to the CDNOW customers.
func BenchmarkFitTrendCDNOW(b *testing.B) {
	panel, end := cdnowPanel(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := forecast.FitModel(forecast.ModelTrend, panel, end); err != nil {
			b.Fatal(err)
		}
	}
}

// Conditional expectation over 39 weeks, and P(alive), for one customer.
func BenchmarkConditional(b *testing.B) {
	p := forecast.Params{R: 0.2516, Alpha: 4.789, A: 0.7234, B: 2.161}
	c := forecast.Customer{X: 3, TX: 20, T: 35}
	for b.Loop() {
		if _, err := p.Conditional(c, 39); err != nil {
			b.Fatal(err)
		}
		p.PAlive(c)
	}
}
