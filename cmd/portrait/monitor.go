package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portrait-dev/portrait/monitor"
)

func init() { commands["monitor"] = monitorCmd }

// monitorCmd runs every monitor once over a store and prints or writes
// the report; alerts go to the store's audit log as in serve.
func monitorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("monitor", stderr)
	sf := addStoreFlags(fs)
	format := fs.String("format", "json", "report format: json or html")
	lang := fs.String("lang", "zh-CN", "language of the HTML report: zh-CN or en")
	out := fs.String("out", "", "write the report to this file instead of standard output")
	dir := fs.String("report-dir", "", "also keep the report as a JSON file in this directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "json" && *format != "html" {
		fmt.Fprintf(stderr, "monitor: --format %q: want json or html\n", *format)
		return errUsage
	}
	if *lang != "zh-CN" && *lang != "en" {
		fmt.Fprintf(stderr, "monitor: --lang %q: want zh-CN or en\n", *lang)
		return errUsage
	}
	a, done, err := sf.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer done()
	m, err := monitor.New(monitor.Deps{Store: a.store, Point: a.point, Keys: a.keys, Log: a.log}, monitor.Options{Dir: *dir, Logger: a.logger})
	if err != nil {
		return err
	}
	if err := m.Load(ctx); err != nil {
		return err
	}
	rep, err := m.Run(ctx, time.Now())
	if err != nil {
		return err
	}
	w := stdout
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("monitor: %w", err)
		}
		defer f.Close()
		w = f
	}
	if *format == "html" {
		cat := a.point.Catalog()
		err = monitor.WriteHTML(w, rep, *lang, func(key string) string { return cat.DisplayName(key, *lang) })
	} else {
		err = monitor.WriteJSON(w, rep)
	}
	if err != nil {
		return err
	}
	if *out != "" {
		fmt.Fprintf(stdout, "monitor report %s: %d subjects, %d alerts, written to %s\n", rep.ID, rep.Subjects, len(rep.Alerts), *out)
	}
	return nil
}
