package fairness

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// CSVSpec says which columns of a decisions file to audit.
type CSVSpec struct {
	Groups          []string // protected-attribute columns
	Predicted       string   // the decision column
	Positive        []string // values of Predicted that mean "selected"
	Outcome         string   // optional true-outcome column
	OutcomePositive string   // the value of Outcome that means positive
	Score           string   // optional numeric score column
}

// ReadCSV reads decisions from a CSV file with a header row. name is used in
// error messages. Empty outcome cells mean "outcome unknown"; an empty group
// cell is the group "(missing)". Errors wrap ErrInput and name the line.
func ReadCSV(r io.Reader, name string, spec CSVSpec) ([]Observation, []string, error) {
	if len(spec.Groups) == 0 || spec.Predicted == "" || len(spec.Positive) == 0 {
		return nil, nil, inputErr("need at least one group column, the predicted column and its positive values")
	}
	if (spec.Outcome == "") != (spec.OutcomePositive == "") {
		return nil, nil, inputErr("give the outcome column and its positive value together (--outcome COLUMN --outcome-positive VALUE)")
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, inputErr("%s is empty; expected a header row and one row per decision", name)
	} else if err != nil {
		return nil, nil, csvErr(name, err, 0, 0)
	}
	header = slices.Clone(header)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	width := len(header)

	var notes []string
	col := func(flag, c string) (int, error) {
		i := slices.Index(header, c)
		if i < 0 {
			return 0, inputErr("column %q (%s) not found in %s; available columns: %s", c, flag, name, strings.Join(header, ", "))
		}
		if n := count(header, c); n > 1 {
			notes = append(notes, fmt.Sprintf("column %q appears %d times in the header; the first (column %d) is used", c, n, i+1))
		}
		return i, nil
	}
	groupCols := make([]int, len(spec.Groups))
	for j, g := range spec.Groups {
		if groupCols[j], err = col("--group", g); err != nil {
			return nil, nil, err
		}
	}
	predCol, err := col("--predicted", spec.Predicted)
	if err != nil {
		return nil, nil, err
	}
	outCol, scoreCol := -1, -1
	if spec.Outcome != "" {
		if outCol, err = col("--outcome", spec.Outcome); err != nil {
			return nil, nil, err
		}
	}
	if spec.Score != "" {
		if scoreCol, err = col("--score", spec.Score); err != nil {
			return nil, nil, err
		}
	}

	positive := map[string]bool{}
	for _, p := range spec.Positive {
		positive[strings.TrimSpace(p)] = false
	}
	predValues, outValues := newValueSet(), newValueSet()
	outSeen, missingOut := false, 0
	// Group values repeat: share one string per distinct value.
	intern := map[string]string{}
	var rows []Observation
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, nil, csvErr(name, err, len(rec), width)
		}
		d := Observation{Groups: make([]string, len(groupCols))}
		for j, c := range groupCols {
			v := strings.TrimSpace(rec[c])
			if v == "" {
				v = "(missing)"
			}
			s, ok := intern[v]
			if !ok {
				s = strings.Clone(v)
				intern[v] = s
			}
			d.Groups[j] = s
		}
		p := strings.TrimSpace(rec[predCol])
		predValues.add(p)
		if _, ok := positive[p]; ok {
			positive[p] = true
			d.Selected = true
		}
		if outCol >= 0 {
			o := strings.TrimSpace(rec[outCol])
			if o == "" {
				missingOut++
			} else {
				outValues.add(o)
				d.HasOutcome = true
				d.Outcome = o == spec.OutcomePositive
				outSeen = outSeen || d.Outcome
			}
		}
		if scoreCol >= 0 {
			s := strings.TrimSpace(rec[scoreCol])
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, nil, inputErr("%s line %d: score column %q holds %q, not a finite number", name, line, spec.Score, s)
			}
			d.Score, d.HasScore = f, true
		}
		rows = append(rows, d)
	}
	if len(rows) == 0 {
		return nil, nil, inputErr("%s has a header but no decisions", name)
	}
	for _, p := range spec.Positive {
		if !positive[strings.TrimSpace(p)] {
			return nil, nil, inputErr("positive value %q never occurs in column %q; its values are %s", p, spec.Predicted, predValues)
		}
	}
	if outCol >= 0 {
		if !outSeen {
			return nil, nil, inputErr("outcome positive value %q never occurs in column %q; its values are %s", spec.OutcomePositive, spec.Outcome, outValues)
		}
		if len(outValues.seen) == 1 {
			return nil, nil, inputErr("every outcome in column %q is %q; error rates need both outcomes", spec.Outcome, spec.OutcomePositive)
		}
		if missingOut == len(rows) {
			return nil, nil, inputErr("outcome column %q is empty on every row", spec.Outcome)
		}
	}
	return rows, notes, nil
}

func csvErr(name string, err error, got, want int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return inputErr("%s line %d: %d fields, but the header has %d; every row needs one value per header column", name, pe.Line, got, want)
		}
		return inputErr("%s line %d, column %d: %v", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("read %s: %w", name, err)
}

func count(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// valueSet remembers the first few distinct values of a column, for error
// messages that show what the column does hold.
type valueSet struct {
	seen  map[string]bool
	order []string
}

func newValueSet() *valueSet { return &valueSet{seen: map[string]bool{}} }

func (v *valueSet) add(s string) {
	if v.seen[s] || len(v.seen) > 20 {
		return
	}
	v.seen[s] = true
	v.order = append(v.order, strings.Clone(s))
}

func (v *valueSet) String() string {
	q := make([]string, len(v.order))
	for i, s := range v.order {
		q[i] = strconv.Quote(s)
	}
	out := strings.Join(q, ", ")
	if len(v.seen) > 20 {
		out += ", …"
	}
	return out
}
