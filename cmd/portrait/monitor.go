package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/policy"
)

func init() { commands["monitor"] = monitorCmd }

// monitorCmd runs every monitor once over a store and prints or writes
// the report; alerts go to the store's audit log as in serve.
func monitorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("monitor", stderr)
	db := fs.String("db", "portrait.db", "SQLite file or postgres:// URL")
	catPath := fs.String("catalog", "catalog.yaml", "the catalog (declarations) file")
	keyFile := fs.String("key-file", "portrait.key", "master key file; or set PORTRAIT_MASTER_KEY")
	format := fs.String("format", "json", "report format: json or html")
	out := fs.String("out", "", "write the report to this file instead of standard output")
	dir := fs.String("report-dir", "", "also keep the report as a JSON file in this directory")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "json" && *format != "html" {
		fmt.Fprintf(stderr, "monitor: --format %q: want json or html\n", *format)
		return errUsage
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cat, err := catalog.Load(*catPath, label.Check)
	if err != nil {
		return fmt.Errorf("monitor: invalid catalog:\n%w", err)
	}
	kr, err := loadKeys(*keyFile, false, logger)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	log, err := audit.New("portrait.local/log/"+kr.ID(), kr.LogKey())
	if err != nil {
		return err
	}
	point := policy.New(cat)
	m, err := monitor.New(monitor.Deps{Store: store, Point: point, Keys: kr, Log: log}, monitor.Options{Dir: *dir, Logger: logger})
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
		err = monitor.WriteHTML(w, rep)
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
