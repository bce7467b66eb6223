package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portrait-dev/portrait/fairness"
)

const fairnessUsage = `fairnessUsage: portrait fairness --csv FILE --group COLUMN [--group COLUMN…] --predicted COLUMN
        --positive VALUE[,VALUE…] [--outcome COLUMN --outcome-positive VALUE] [--score COLUMN]
        [--min-share 0.02] [--threshold 0.8] --format json|text|html [--lang zh-CN|en]

Audits a CSV of decisions made by any system: selection rate, impact ratio and,
with outcomes, false-positive and false-negative rates per group and per
intersection of groups (FP-3), with four-fifths alerts and significance tests
(FP-4). Rates are fractions. The report goes to standard output.

Exit status: 0 when the report was written, whether or not it raises alerts
(alerts are findings, not failures; read them from the report); 2 for a fairnessUsage
or input error, explained on standard error; 1 when the report cannot be written.
`

type repeated []string

func (l *repeated) String() string     { return strings.Join(*l, ",") }
func (l *repeated) Set(v string) error { *l = append(*l, v); return nil }

// fairnessCmd runs `portrait fairness` with args (the arguments after
// "fairness") and returns the process exit status.
func fairnessCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("portrait fairness", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		groups                          repeated
		file, predicted, positive       string
		outcome, outcomePositive, score string
		format                          string
		minShare                        = fairness.DefaultMinShare
		threshold                       = fairness.FourFifths
	)
	fs.StringVar(&file, "csv", "", "decisions CSV file with a header row")
	fs.Var(&groups, "group", "protected-attribute column (repeatable)")
	fs.StringVar(&predicted, "predicted", "", "decision column")
	fs.StringVar(&positive, "positive", "", "comma-separated values of the decision column that mean selected")
	fs.StringVar(&outcome, "outcome", "", "true-outcome column")
	fs.StringVar(&outcomePositive, "outcome-positive", "", "value of the outcome column that means positive")
	fs.StringVar(&score, "score", "", "numeric score column, for calibration by score band")
	fs.Float64Var(&minShare, "min-share", fairness.DefaultMinShare, "groups under this share of decisions are excluded from impact ratios (disclosed)")
	fs.Float64Var(&threshold, "threshold", fairness.FourFifths, "impact ratio under which an alert is raised")
	fs.StringVar(&format, "format", "text", "json, text or html")
	lang := fs.String("lang", "zh-CN", "language of the HTML page: zh-CN or en")

	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "portrait fairness: "+format+"\n", a...)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, fairnessUsage)
			return 0
		}
		return fail("%v\n\n%s", err, fairnessUsage)
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q\n\n%s", fs.Arg(0), fairnessUsage)
	}
	var missing []string
	if file == "" {
		missing = append(missing, "--csv")
	}
	if len(groups) == 0 {
		missing = append(missing, "--group")
	}
	if predicted == "" {
		missing = append(missing, "--predicted")
	}
	if positive == "" {
		missing = append(missing, "--positive")
	}
	if len(missing) > 0 {
		return fail("missing %s\n\n%s", strings.Join(missing, ", "), fairnessUsage)
	}
	var render func(io.Writer, *fairness.Report) error
	switch format {
	case "json":
		render = fairness.WriteJSON
	case "text":
		render = fairness.WriteText
	case "html":
		if *lang != "zh-CN" && *lang != "en" {
			return fail("--lang %q: use zh-CN or en", *lang)
		}
		render = func(w io.Writer, rep *fairness.Report) error { return fairness.WriteHTMLIn(w, rep, *lang) }
	default:
		return fail("--format %q: use json, text or html", format)
	}
	if (outcome == "") != (outcomePositive == "") {
		return fail("give --outcome and --outcome-positive together")
	}
	if !(minShare >= 0 && minShare < 1) {
		return fail("--min-share %v: give a fraction in [0, 1), e.g. 0.02", minShare)
	}
	if !(threshold > 0 && threshold <= 1) {
		return fail("--threshold %v: give a fraction in (0, 1], e.g. 0.8", threshold)
	}
	var pos []string
	for _, p := range strings.Split(positive, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pos = append(pos, p)
		}
	}
	if len(pos) == 0 {
		return fail("--positive %q names no value", positive)
	}

	f, err := os.Open(file)
	if err != nil {
		return fail("open decisions file: %v", err)
	}
	defer f.Close()
	spec := fairness.CSVSpec{Groups: groups, Predicted: predicted, Positive: pos, Outcome: outcome, OutcomePositive: outcomePositive, Score: score}
	rows, notes, err := fairness.ReadCSV(f, file, spec)
	if err != nil {
		return fail("%s", strings.TrimPrefix(err.Error(), fairness.ErrInput.Error()+": "))
	}
	rep, err := fairness.Audit(fairness.Config{Attributes: groups, MinShare: minShare, Threshold: threshold}, rows)
	if err != nil {
		return fail("%s", strings.TrimPrefix(err.Error(), fairness.ErrInput.Error()+": "))
	}
	rep.Source = &fairness.Source{File: file, Predicted: predicted, Positive: pos, Outcome: outcome, OutcomePositive: outcomePositive, Score: score}
	rep.Notes = append(notes, rep.Notes...)
	if err := render(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "portrait fairness: write report: %v\n", err)
		return 1
	}
	return 0
}
