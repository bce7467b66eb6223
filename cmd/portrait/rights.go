package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/rights"
)

func init() { commands["cases"] = cases }

// cases lists data-subject requests (SR-4) or, with --overdue, the open
// ones past their deadline (SR-5). Cases hold no personal values, so no
// master key is needed.
func cases(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("cases", stderr)
	db := fs.String("db", "portrait.db", "SQLite file or postgres:// URL")
	overdue := fs.Bool("overdue", false, "only open requests past their deadline")
	subject := fs.String("subject", "", "only the requests of this pseudonym")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, err := openExisting(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	all, err := store.Cases(ctx, portrait.Pseudonym(*subject))
	if err != nil {
		return fmt.Errorf("list cases in %s: %w", *db, err)
	}
	out := []portrait.Case{}
	now := time.Now()
	for _, c := range all {
		if !*overdue || (c.Status == rights.StatusOpen && c.Deadline.Before(now)) {
			out = append(out, c)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"cases": out})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tTYPE\tSTATUS\tCREATED\tDEADLINE\tOUTCOME / REASON")
	for _, c := range out {
		note := c.Outcome
		if c.Reason != "" {
			note = c.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Pseudonym, c.Type, c.Status,
			c.Created.Format(time.DateTime), c.Deadline.Format(time.DateOnly), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d case(s)\n", len(out))
	return nil
}
