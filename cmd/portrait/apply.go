package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/policy"
)

func init() {
	commands["assess"] = assess
	commands["items"] = items
}

// assessmentsDir is where serve and demo keep signed impact assessments:
// $PORTRAIT_ASSESSMENTS, or "assessments" beside the database.
func assessmentsDir() string {
	if d := os.Getenv("PORTRAIT_ASSESSMENTS"); d != "" {
		return d
	}
	return "assessments"
}

var cli = policy.Caller{Role: policy.System, ID: "cli"}

// assess creates, signs and records the impact assessment of a use-case
// from the configuration (FA-1, AD-5) and prints it.
func assess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("assess", stderr)
	uc := fs.String("usecase", "", "the use-case to assess")
	sf := addStoreFlags(fs)
	dir := fs.String("assessments", assessmentsDir(), "directory of signed assessments")
	answers := fs.String("answers", "", "YAML or JSON file answering PIPL Art. 56: purpose, necessity, rights_impact, risks, safeguards, signed_by (two or more team/person names)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *uc == "" || *answers == "" {
		fmt.Fprintln(stderr, "assess: --usecase ID and --answers FILE are required")
		return errUsage
	}
	b, err := os.ReadFile(*answers)
	if err != nil {
		return fmt.Errorf("assess: %w", err)
	}
	ans, err := apply.ParseAnswers(b)
	if err != nil {
		return fmt.Errorf("assess: %s: %s", *answers, cliMessage(err))
	}
	a, done, err := sf.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer done()
	svc, err := apply.New(apply.Deps{Store: a.store, Point: a.point, Ledger: a.ledger, Keys: a.keys, Log: a.log}, apply.Options{Assessments: *dir})
	if err != nil {
		return err
	}
	as, err := svc.Assess(ctx, cli, *uc, ans)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(as)
}

// items imports the item catalog from a JSON array.
func items(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "import" || isHelp(args[1]) {
		fmt.Fprintln(stderr, "usage: portrait items import FILE [--db DSN] [--catalog FILE] [--key-file FILE]")
		return errUsage
	}
	path := args[1]
	fs := flags("items import", stderr)
	sf := addStoreFlags(fs)
	if err := parse(fs, args[2:]); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read items: %w", err)
	}
	var list []portrait.Item
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("items file %s: want a JSON array of {\"id\", \"categories\", \"price\"}: %w", path, err)
	}
	a, done, err := sf.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer done()
	n, err := a.apply.PutItems(ctx, cli, list)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d items stored\n", n)
	return nil
}
