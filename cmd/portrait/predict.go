package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/forecast"
	"github.com/portrait-dev/portrait/importer"
)

func init() { commands["predict"] = predictCmd }

// predictCmd fits a purchase-forecast model to a purchase log on a
// calibration period and checks it on the holdout after it. It reads the
// file directly and stores nothing: it is for evaluating the model on
// data such as the CDNOW log, not for profiling anyone.
func predictCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("predict", stderr)
	format := fs.String("format", "cdnow", "log format: cdnow (customer_id date number_of_cds dollar_value)")
	file := fs.String("file", "", "purchase log, plain or .gz")
	calEnd := fs.String("calibration-end", "", "last day of the calibration period, YYYY-MM-DD")
	holdEnd := fs.String("holdout-end", "", "last day of the holdout period, YYYY-MM-DD")
	model := fs.String("model", forecast.ModelBGNBD, "model: "+strings.Join(forecast.Models, " or "))
	asJSON := fs.Bool("json", false, "print the result as JSON")
	html := fs.String("html", "", "also write the HTML report to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != importer.CDNOW {
		fmt.Fprintf(stderr, "predict: --format %q: only cdnow is supported\n", *format)
		return errUsage
	}
	if *file == "" || *calEnd == "" || *holdEnd == "" {
		fmt.Fprintln(stderr, "predict: --file, --calibration-end and --holdout-end are required")
		return errUsage
	}
	cal, err := time.Parse(time.DateOnly, *calEnd)
	if err != nil {
		fmt.Fprintf(stderr, "predict: --calibration-end %q: want YYYY-MM-DD\n", *calEnd)
		return errUsage
	}
	hold, err := time.Parse(time.DateOnly, *holdEnd)
	if err != nil {
		fmt.Fprintf(stderr, "predict: --holdout-end %q: want YYYY-MM-DD\n", *holdEnd)
		return errUsage
	}
	days, err := readPurchases(*file)
	if err != nil {
		return err
	}
	ev, err := forecast.Evaluate(days, cal, hold, *model)
	if err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	if *html != "" {
		f, err := os.Create(*html)
		if err != nil {
			return fmt.Errorf("predict: %w", err)
		}
		err = ev.HTML(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("predict: write %s: %w", *html, err)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ev.Result())
	}
	return ev.Text(stdout)
}

// readPurchases reads a CDNOW log into purchase times per customer.
func readPurchases(path string) (map[string][]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("predict: %s: %w", path, err)
		}
		r = gz
	}
	days := map[string][]time.Time{}
	err = importer.ReadCDNOW(r, func(p importer.Purchase) error {
		days[p.Customer] = append(days[p.Customer], p.Day)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("predict: %s: %w", path, err)
	}
	return days, nil
}
