package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/importer"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"go.yaml.in/yaml/v3"
)

func init() {
	commands["derive"] = deriveCmd
	commands["import"] = importCmd
	commands["train"] = trainCmd
}

// bar draws a progress bar on w, at most every 100 ms and at the end.
type bar struct {
	w     io.Writer
	label string
	last  time.Time
	start time.Time
}

// newBar draws on w only when w is a terminal: in a log file or a pipe
// the carriage returns are noise.
func newBar(w io.Writer, label string) *bar {
	if !isTerminal(w) {
		w = nil
	}
	return &bar{w: w, label: label, start: time.Now()}
}

// isTerminal reports whether w is a character device other than /dev/null.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

func (b *bar) set(done, total int) {
	if b.w == nil || time.Since(b.last) < 100*time.Millisecond && done != total {
		return
	}
	b.last = time.Now()
	const width = 30
	if total <= 0 {
		fmt.Fprintf(b.w, "\r%s %d", b.label, done)
		return
	}
	n := min(width, width*done/total)
	fmt.Fprintf(b.w, "\r%s [%s%s] %3d%% %d/%d %s", b.label, strings.Repeat("#", n), strings.Repeat(".", width-n),
		100*done/total, done, total, time.Since(b.start).Round(100*time.Millisecond))
}

func (b *bar) end() {
	if b.w != nil {
		fmt.Fprintln(b.w)
	}
}

func deriveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("derive", stderr)
	sf := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	a, closeStore, err := sf.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	pb := newBar(stderr, "derive")
	sum, err := a.deriver.All(ctx, pb.set)
	pb.end()
	if *asJSON {
		if jerr := printJSON(stdout, sum); jerr != nil {
			return jerr
		}
		return err
	}
	printDeriveSummary(stdout, sum)
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printDeriveSummary(w io.Writer, s derive.Summary) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Events) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "subjects %d, events %d, labels written %d, without a lawful basis (deleted if stored) %d, failed %d, in %s (%.0f events/s)\n",
		s.Subjects, s.Events, s.Written, s.Removed, s.Failed, s.Elapsed.Round(time.Millisecond), rate)
	for _, e := range s.Errors {
		fmt.Fprintf(w, "not derived: %s\n", e)
	}
}

// mapFlag parses column=field,column=field.
type mapFlag map[string]string

func (m mapFlag) String() string { return "" }

func (m mapFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		col, field, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || col == "" || field == "" {
			return fmt.Errorf("mapping %q: want column=field", kv)
		}
		m[col] = field
	}
	return nil
}

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flags("import", stderr)
	sf := addStoreFlags(fs)
	file := fs.String("file", "", "the file to import (.gz is read compressed)")
	format := fs.String("format", "", "csv, ndjson or cdnow")
	mapping := mapFlag{}
	fs.Var(mapping, "map", "column=field,… mapping of columns to declared fields")
	subject := fs.String("subject", "", "column of the subject id (default subject; cdnow: customer_id)")
	typ := fs.String("type", "", "event type of every row (instead of a type column)")
	typeCol := fs.String("type-column", "type", "column of the event type")
	timeCol := fs.String("time", "", "column of the event time (default time; cdnow: date)")
	layout := fs.String("time-format", "", "Go time layout of the time column (default RFC 3339; cdnow: 20060102)")
	shift := fs.Bool("shift-to-now", false, "shift every time so that the newest event is now (to bring an old data set within retention)")
	report := fs.String("report", "", "write the full JSON report, every row error included, to this file")
	then := fs.Bool("derive", false, "derive every subject's labels after the import")
	allowRejects := fs.Bool("allow-rejects", false, "exit 0 even when rows were rejected (by default any rejected row makes the import fail, exit 1, after storing the accepted rows)")
	asJSON := fs.Bool("json", false, "print the summary (and the derivation's, with --derive) as one JSON object")
	grants := fs.String("grant", "", "PURPOSE[,PURPOSE]: record consent to these purposes for every subject of the file (channel import, evidence \"bulk import\") before its events; ONLY for data whose consent was collected elsewhere, with its evidence kept there. A subject's refusal on record is kept")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" || *format == "" {
		fmt.Fprintln(stderr, "import: --file and --format are required")
		return errUsage
	}
	a, closeStore, err := sf.open(ctx, stderr, true)
	if err != nil {
		return err
	}
	cat := a.point.Catalog()
	defer closeStore()
	o := importer.Options{Format: *format, Subject: *subject, Type: *typeCol, EventType: *typ, Time: *timeCol,
		TimeFormat: *layout, Source: filepath.Base(*file)}
	if len(mapping) > 0 {
		o.Map = mapping
	}
	if *grants != "" {
		for _, p := range strings.Split(*grants, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.Grant = append(o.Grant, p)
			}
		}
		o.Ledger, o.Keys = a.ledger, a.keys
	}
	total, err := countLines(*file)
	if err != nil {
		return err
	}
	if *shift {
		r, closeFile, err := openData(*file)
		if err != nil {
			return err
		}
		newest, err := importer.Newest(cat, r, o)
		closeFile()
		if err != nil {
			return err
		}
		if !newest.IsZero() {
			o.Shift = time.Now().UTC().Truncate(24 * time.Hour).Sub(newest)
		}
	}
	r, closeFile, err := openData(*file)
	if err != nil {
		return err
	}
	defer closeFile()
	pb := newBar(stderr, "import")
	o.Progress = func(rows int) { pb.set(min(rows, total), total) }
	// Rows go through the governed intake; labels are derived once at the
	// end (--derive), not after every batch.
	in := ingest.New(ingest.Deps{Store: a.store, Point: a.point, Ledger: a.ledger, Keys: a.keys, Log: a.log}, ingest.Options{Logger: a.logger})
	start := time.Now()
	rep, err := importer.Import(ctx, in, cat, policy.Caller{Role: policy.Operator, ID: "import"}, r, o)
	pb.end()
	el := time.Since(start)
	if err == nil && rep.Rejected > 0 && !*allowRejects {
		// Reported after the summary; the accepted rows stay stored.
		defer func() {
			if err == nil {
				err = fmt.Errorf("import: %d of %d rows rejected (listed above; --report FILE for all); the accepted rows are stored; --allow-rejects to exit 0", rep.Rejected, rep.Rows)
			}
		}()
	}
	if *asJSON {
		out := map[string]any{"import": rep, "elapsed_ms": el.Milliseconds()}
		if err == nil && *then {
			sum, derr := a.deriver.All(ctx, nil)
			out["derive"] = sum
			err = derr
		}
		if jerr := printJSON(stdout, out); jerr != nil && err == nil {
			err = jerr
		}
		if err == nil && *report != "" {
			data, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(*report, data, 0o600); werr != nil {
				err = fmt.Errorf("write report: %w", werr)
			}
		}
		return err
	}
	fmt.Fprintf(stdout, "rows %d: accepted %d, duplicates %d, rejected %d, fields dropped %d, in %s (%.0f rows/s)\n",
		rep.Rows, rep.Accepted, rep.Duplicates, rep.Rejected, rep.Dropped, el.Round(time.Millisecond), float64(rep.Rows)/el.Seconds())
	if len(o.Grant) > 0 {
		fmt.Fprintf(stdout, "consent recorded (channel %s): %d; refusals or withdrawals on record kept: %d\n", importer.GrantChannel, rep.Granted, rep.Kept)
	}
	for i, e := range rep.Errors {
		if i == 20 {
			fmt.Fprintf(stdout, "… and %d more row errors (see --report)\n", len(rep.Errors)-20+rep.More)
			break
		}
		field := ""
		if e.Field != "" {
			field = " field " + e.Field + ":"
		}
		fmt.Fprintf(stdout, "line %d:%s %s: %s\n", e.Line, field, e.Code, e.Reason)
	}
	if *report != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if werr := os.WriteFile(*report, data, 0o600); werr != nil {
			return fmt.Errorf("write report: %w", werr)
		}
	}
	if err != nil {
		return err
	}
	if *then {
		pb := newBar(stderr, "derive")
		var sum derive.Summary
		sum, err = a.deriver.All(ctx, pb.set)
		pb.end()
		printDeriveSummary(stdout, sum)
		return err
	}
	return nil
}

func countLines(path string) (int, error) {
	r, closeFile, err := openData(path)
	if err != nil {
		return 0, err
	}
	defer closeFile()
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := r.Read(buf)
		n += strings.Count(string(buf[:k]), "\n")
		if errors.Is(err, io.EOF) {
			return max(n-1, 0), nil // less the header
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
	}
}

// trainCmd fits a logistic score label from stored data: features are the
// label's model fields (profile values), the outcome a stored bool label.
// Only subjects whose decision allows deriving the score label and the
// outcome label are used. The new weights are written to --out as a copy
// of the catalog with the label's model replaced and its version raised.
func trainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("train", stderr)
	sf := addStoreFlags(fs)
	id := fs.String("label", "", "the score label to fit")
	outcome := fs.String("outcome", "", "a rule label whose value is the outcome to predict")
	l2 := fs.Float64("l2", 0.01, "L2 penalty")
	out := fs.String("out", "", "write the catalog with the new model version here")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" || *outcome == "" || *out == "" {
		fmt.Fprintln(stderr, "train: --label, --outcome and --out are required")
		return errUsage
	}
	a, closeStore, err := sf.openExisting(ctx, stderr)
	if err != nil {
		return err
	}
	defer closeStore()
	cat := a.point.Catalog()
	sl, ol := cat.Label(*id), cat.Label(*outcome)
	switch {
	case sl == nil || sl.Kind != catalog.KindScore || sl.Model == nil:
		return fmt.Errorf("train: --label %q is not a declared score label with a model", *id)
	case ol == nil || ol.Kind != catalog.KindRule:
		return fmt.Errorf("train: --outcome %q is not a declared rule label", *outcome)
	}
	names := sl.Fields()
	X, y, err := trainingData(ctx, a, sl, ol, names)
	if err != nil {
		return err
	}
	m, err := label.Train(X, y, names, *l2)
	if err != nil {
		return fmt.Errorf("train label %q: %w", sl.ID, err)
	}
	if err := writeModel(*sf.catalog, *out, sl.ID, m, sl.Version+1); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "label %s version %d fitted on %d subjects: intercept %.4g, weights %v; written to %s\n",
		sl.ID, sl.Version+1, len(X), m.Intercept, m.Weights, *out)
	return nil
}

func trainingData(ctx context.Context, a *app, sl, ol *catalog.Label, names []string) ([][]float64, []bool, error) {
	var X [][]float64
	var y []bool
	caller := policy.Caller{Role: policy.System, ID: "train"}
	decide := func(st *policy.State, l *catalog.Label, fields []string) policy.Decision {
		var d policy.Decision
		for _, p := range l.Purposes {
			if d = a.point.Decide(policy.Request{State: st, Purpose: p, Fields: fields, Labels: []string{l.ID}, Action: policy.Derive, Caller: caller}); d.Allow {
				break
			}
		}
		return d
	}
	for after := portrait.Pseudonym(""); ; {
		page, err := a.store.Pseudonyms(ctx, after, 1000)
		if err != nil || len(page) == 0 {
			return X, y, err
		}
		after = page[len(page)-1]
		states, err := a.ledger.States(ctx, page)
		if err != nil {
			return nil, nil, err
		}
		subs, err := a.store.Subjects(ctx, page)
		if err != nil {
			return nil, nil, err
		}
		for _, ps := range page {
			fd, od := decide(states[ps], sl, names), decide(states[ps], ol, nil)
			if !fd.Allow || !od.Allow {
				continue
			}
			row, ok, err := trainingRow(ctx, a, subs[ps], fd.Grant, od.Grant, ol.ID, names)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				X, y = append(X, row.x), append(y, row.y)
			}
		}
	}
}

type example struct {
	x []float64
	y bool
}

func trainingRow(ctx context.Context, a *app, subj portrait.SubjectKey, fg, og policy.Grant, outcome string, names []string) (example, bool, error) {
	c, err := a.keys.Open(subj)
	if err != nil {
		return example{}, false, err
	}
	lvs, err := a.store.Labels(ctx, og)
	if err != nil {
		return example{}, false, err
	}
	var ex example
	found := false
	for _, lv := range lvs {
		if lv.Label == outcome {
			v, err := derive.Open(c, lv)
			if err != nil {
				return example{}, false, err
			}
			ex.y, found = v.Bool, true
		}
	}
	if !found {
		return example{}, false, nil
	}
	vals, err := a.store.Profile(ctx, fg)
	if err != nil {
		return example{}, false, err
	}
	got := map[string]float64{}
	for _, v := range vals {
		if x, err := openNumber(c, subj.Pseudonym, v); err == nil {
			got[v.Field] = x
		}
	}
	for _, n := range names {
		x, ok := got[n]
		if !ok {
			return example{}, false, nil // a feature is missing: not an example
		}
		ex.x = append(ex.x, x)
	}
	return ex, true, nil
}

func openNumber(c *keys.Cipher, ps portrait.Pseudonym, v portrait.ProfileValue) (float64, error) {
	plain, err := c.Open(v.Sealed, keys.ProfileAD(ps, v.Field))
	if err != nil {
		return 0, err
	}
	var x float64
	return x, json.Unmarshal(plain, &x)
}

// openData opens a file, decompressing a .gz.
func openData(path string) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, func() { f.Close() }, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return z, func() { z.Close(); f.Close() }, nil
}

// writeModel copies the catalog file to out with the label's model and
// version replaced, keeping everything else (comments included), and
// checks that the result loads.
func writeModel(in, out, id string, m catalog.Model, version int) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read catalog %s: %w", in, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse catalog %s: %w", in, err)
	}
	var model yaml.Node
	if err := model.Encode(m); err != nil {
		return fmt.Errorf("encode model: %w", err)
	}
	done := false
	if len(doc.Content) == 1 {
		labels := mapValue(doc.Content[0], "labels")
		var items []*yaml.Node
		if labels != nil {
			items = labels.Content
		}
		for _, l := range items {
			if v := mapValue(l, "id"); v == nil || v.Value != id {
				continue
			}
			setMapValue(l, "version", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(version)})
			setMapValue(l, "model", &model)
			done = true
		}
	}
	if !done {
		return fmt.Errorf("catalog %s: no label %q to write the model into", in, id)
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		return fmt.Errorf("encode catalog: %w", err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if _, err := catalog.Load(out, label.Check); err != nil {
		return fmt.Errorf("the catalog with the new model does not load:\n%w", err)
	}
	return nil
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func setMapValue(n *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}
