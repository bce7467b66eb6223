package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/rules"
)

// loadPack returns the rule pack in force: the embedded default, or the
// pack in path, which must be signed by a trusted key (the default pack's
// or, once the engine is joined, the regulator's). A pack the company
// signed itself, or edited, is refused.
func loadPack(path string) (*rules.Pack, error) {
	if path == "" {
		return rules.Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rule pack: %w", err)
	}
	trusted, err := rules.Verifiers()
	if err != nil {
		return nil, err
	}
	p, err := rules.Open(data, trusted)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// catalogCmd runs "portrait catalog check FILE [--pack FILE]" and
// "portrait catalog diff OLD NEW".
//
// A missing display name is a warning (the catalog still loads, exit 0);
// --strict makes it a problem like any other (exit 1).
func catalogCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "diff" {
		return catalogDiff(args[1:], stdout, stderr)
	}
	if len(args) < 2 || args[0] != "check" {
		fmt.Fprint(stderr, "usage: portrait catalog check FILE [--pack FILE] [--strict] [--json]\n       portrait catalog diff OLD NEW\n")
		return 2
	}
	asJSON := slices.Contains(args[1:], "--json")
	strict := slices.Contains(args[1:], "--strict")
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--json" || a == "--strict" })
	path, pack, code := catalogPackArgs("catalog check", args[1:], stderr)
	if code != 0 {
		return code
	}
	c, err := catalog.LoadWith(pack, path, label.Check)
	var warnings []catalog.Problem
	if err == nil {
		warnings = c.Warnings()
		if strict && len(warnings) > 0 {
			// --strict: a missing display name is a refusal like any other.
			err = &catalog.Errors{Problems: warnings}
			warnings = nil
		}
	}
	if asJSON {
		return catalogCheckJSON(stdout, path, pack, c, warnings, err)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		if e := catalog.AsErrors(err); e != nil {
			fmt.Fprintf(stderr, "%s: %d problem(s) under rule pack %s\n", path, len(e.Problems), pack)
		}
		return 1
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	fmt.Fprintf(stdout, "%s: ok — %d purposes, %d fields, %d event types, %d labels, %d use-cases (rule pack %s)",
		path, len(c.Purposes), len(c.Fields), len(c.EventTypes), len(c.Labels), len(c.UseCases), pack)
	if len(warnings) > 0 {
		fmt.Fprintf(stdout, "; %d warning(s), refused under --strict", len(warnings))
	}
	fmt.Fprintln(stdout)
	return 0
}

// catalogCheckJSON prints catalog check --json: {"file", "pack", "ok",
// "problems" (file, line, column, message, fix, requirement) or "counts"
// and "warnings"}; exit 1 when the catalog has problems.
func catalogCheckJSON(stdout io.Writer, path string, pack *rules.Pack, c *catalog.Catalog, warnings []catalog.Problem, err error) int {
	out := map[string]any{"file": path, "pack": fmt.Sprint(pack), "ok": err == nil}
	if len(warnings) > 0 {
		out["warnings"] = warnings
	}
	switch e := catalog.AsErrors(err); {
	case e != nil:
		out["problems"] = e.Problems
	case err != nil:
		out["error"] = err.Error()
	default:
		out["counts"] = map[string]int{"purposes": len(c.Purposes), "fields": len(c.Fields), "event_types": len(c.EventTypes),
			"labels": len(c.Labels), "use_cases": len(c.UseCases)}
	}
	printJSON(stdout, out)
	if err != nil {
		return 1
	}
	return 0
}

// catalogPackArgs reads "CATALOG [--pack FILE]" in either order.
func catalogPackArgs(name string, args []string, stderr io.Writer) (string, *rules.Pack, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	packPath := fs.String("pack", os.Getenv("PORTRAIT_PACK"), "a signed rule pack (default: the embedded pack)")
	var path string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, 2
	}
	if path == "" && fs.NArg() == 1 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 || path == "" {
		fmt.Fprintf(stderr, "usage: portrait %s CATALOG [--pack FILE]\n", name)
		return "", nil, 2
	}
	pack, err := loadPack(*packPath)
	if err != nil {
		fmt.Fprintln(stderr, "portrait:", err)
		return "", nil, 1
	}
	return path, pack, 0
}

// rulesCmd runs "portrait rules check CATALOG [--pack FILE]", which
// explains every hit with the pack's rule id, "portrait rules show" and
// "portrait rules sign --key FILE PACK" (for the holder of a pack key).
func rulesCmd(args []string, stdout, stderr io.Writer) int {
	const use = "usage: portrait rules check CATALOG [--pack FILE]\n       portrait rules show [--pack FILE]\n       portrait rules sign --key FILE PACK\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, use)
		return 2
	}
	switch args[0] {
	case "check":
		path, pack, code := catalogPackArgs("rules check", args[1:], stderr)
		if code != 0 {
			return code
		}
		return rulesCheck(path, pack, stdout, stderr)
	case "show":
		fs := flag.NewFlagSet("rules show", flag.ContinueOnError)
		fs.SetOutput(stderr)
		packPath := fs.String("pack", os.Getenv("PORTRAIT_PACK"), "a signed rule pack (default: the embedded pack)")
		if fs.Parse(args[1:]) != nil || fs.NArg() > 0 {
			fmt.Fprint(stderr, use)
			return 2
		}
		pack, err := loadPack(*packPath)
		if err != nil {
			fmt.Fprintln(stderr, "portrait:", err)
			return 1
		}
		fmt.Fprintf(stdout, "rule pack %s, issued %s by %s\nsigned by %s\nsha256 %s\n%d lexicon entries, %d inferences, %d retention caps; minors under %d; fairness alerts p < %g, impact ratio < %g, %d runs\n",
			pack, pack.Issued, pack.Issuer, strings.Join(pack.Signers(), ", "), pack.Digest(),
			len(pack.Lexicon), len(pack.Inferences), len(pack.Retention), pack.Minors.Age,
			pack.Alerts.Fairness.PValue, pack.Alerts.Fairness.ImpactRatio, pack.Alerts.Fairness.ConsecutiveRuns)
		return 0
	case "sign":
		fs := flag.NewFlagSet("rules sign", flag.ContinueOnError)
		fs.SetOutput(stderr)
		keyFile := fs.String("key", "", "file holding the note signing key (PRIVATE+KEY+…)")
		if fs.Parse(args[1:]) != nil || fs.NArg() != 1 || *keyFile == "" {
			fmt.Fprint(stderr, use)
			return 2
		}
		if err := rulesSign(*keyFile, fs.Arg(0), stdout); err != nil {
			fmt.Fprintln(stderr, "portrait:", err)
			return 1
		}
		return 0
	}
	fmt.Fprint(stderr, use)
	return 2
}

func rulesSign(keyFile, packFile string, stdout io.Writer) error {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(key)))
	if err != nil {
		return errors.New("rules sign: the key file does not hold a note signing key")
	}
	text, err := os.ReadFile(packFile)
	if err != nil {
		return err
	}
	out, err := rules.Sign(text, signer)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// rulesCheck prints every problem of the catalog and, for those a pack rule
// found, what the rule says. Exit 0 when the catalog passes, 1 otherwise.
func rulesCheck(path string, pack *rules.Pack, stdout, stderr io.Writer) int {
	fmt.Fprintf(stdout, "rule pack %s (signed by %s, sha256 %.16s…)\n", pack, strings.Join(pack.Signers(), ", "), pack.Digest())
	_, err := catalog.LoadWith(pack, path, label.Check)
	if err == nil {
		fmt.Fprintf(stdout, "%s: no rule of the pack is hit\n", path)
		return 0
	}
	e := catalog.AsErrors(err)
	if e == nil {
		fmt.Fprintln(stderr, "portrait:", err)
		return 1
	}
	hits := 0
	for _, p := range e.Problems {
		fmt.Fprintln(stdout, p)
		if p.Rule != "" {
			hits++
			fmt.Fprintf(stdout, "\trule %s — %s\n", p.Rule, pack.Explain(p.Rule))
		}
	}
	fmt.Fprintf(stdout, "%s: %d problem(s), %d from rules of the pack\n", path, len(e.Problems), hits)
	return 1
}

// catalogDiff runs "portrait catalog diff OLD NEW": it prints the changes
// and what they require, and exits 0 when NEW may load as is, 1 when it
// needs a new notice version or an approval, 2 on a usage or parse error.
func catalogDiff(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprint(stderr, "usage: portrait catalog diff OLD NEW\n")
		return 2
	}
	old, err := catalog.Load(args[0], label.Check)
	if err != nil {
		fmt.Fprintf(stderr, "portrait: old catalog:\n%v\n", err)
		return 2
	}
	new, err := catalog.Load(args[1], label.Check)
	if err != nil {
		fmt.Fprintf(stderr, "portrait: new catalog:\n%v\n", err)
		return 2
	}
	changes := catalog.Diff(old, new)
	needs := 0
	for _, ch := range changes {
		fmt.Fprintln(stdout, ch)
		if ch.Needs != catalog.NeedsNothing {
			needs++
		}
	}
	switch {
	case len(changes) == 0:
		fmt.Fprintln(stdout, "no changes")
	case needs == 0:
		fmt.Fprintf(stdout, "%d change(s); the new catalog may load as is\n", len(changes))
	default:
		fmt.Fprintf(stdout, "%d change(s), %d need a new notice version or an approval before the new catalog may load\n", len(changes), needs)
		return 1
	}
	return 0
}
