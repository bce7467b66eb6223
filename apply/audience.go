// Audiences. An audience selects subjects by a CEL expression over their labels for
// one declared purpose (CM-6). The expression sees one variable, labels,
// a map from label id to the subject's value of that label:
//
//   - a rule label is a bool:            labels.sports_fan
//   - a score label is its score, double: labels.credit_score >= 0.7
//   - a segment label is its index, int:  labels.shopper_segment == 2
//   - an RFM label is a map with class (string), r, f, m (int 1..5),
//     recency (days, double), frequency (int) and monetary (double):
//     labels.rfm.class == "champions" && labels.rfm.r >= 4
//   - a purchase forecast (bgnbd) is a map with expected (purchases over
//     its horizon, double), p_alive (double) and purchases (int):
//     labels.purchase_forecast.p_alive < 0.3 && labels.purchase_forecast.purchases >= 3
//
// A subject without a value of a label the expression reads is not
// selected. Compile refuses, naming the declaration, an expression that
// does not compile or is not bool, that reads an undeclared label or one
// not declared for the purpose (LP-1), or a sensitive label for a purpose
// without separate consent (SM-1, SM-2). Only subjects for whom the
// decision point allows Use of the purpose with the labels read — a
// lawful basis, not restricted, not objecting, no suppression of those
// labels (LP-3, SR-7) — are ever evaluated. Output is aggregate (counts)
// by default, pseudonyms on request, and subject ids only for a purpose
// declared identified_output (CM-6). Every materialisation is recorded in
// the audit log with the expression's hash, the purpose and the size,
// before the result is returned (invariant 3).

package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// Audience outputs.
const (
	Aggregate    = "aggregate"
	Pseudonymous = "pseudonymous"
	Identified   = "identified"
)

// Request asks for an audience.
type Request struct {
	Purpose    string `json:"purpose"`
	Expression string `json:"expression"`
	Output     string `json:"output,omitempty"` // aggregate (default), pseudonymous or identified
	// By is a segment or RFM label to count the audience by; by default
	// the first one the expression reads, if any.
	By string `json:"by,omitempty"`
}

// Result is a materialised audience.
type Result struct {
	Purpose    string   `json:"purpose"`
	Output     string   `json:"output"`
	Expression string   `json:"expression_sha256"`
	Labels     []string `json:"labels"`
	Size       int      `json:"size"`
	// Excluded counts the subjects the decision point left out: no lawful
	// basis, restricted, objecting or a label suppressed.
	Excluded int            `json:"excluded"`
	By       string         `json:"by,omitempty"`
	Counts   map[string]int `json:"counts,omitempty"` // by group: segment index or RFM class
	// Groups describes each segment in Counts.
	Groups     map[string]catalog.Text `json:"groups,omitempty"`
	Pseudonyms []portrait.Pseudonym    `json:"pseudonyms,omitempty"`
	Subjects   []string                `json:"subjects,omitempty"`
	LogIndex   int64                   `json:"log_index"`
}

// Expr is a compiled audience expression.
type Expr struct {
	Purpose string
	Output  string
	Labels  []string // the labels it reads, and By
	By      string
	Hash    string // hex SHA-256 of the expression
	byKind  string
	prg     cel.Program
}

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

const varLabels = "labels"

func invalid(req, format string, args ...any) error {
	return &portrait.Error{Code: portrait.EINVALID, Requirement: req, Message: fmt.Sprintf(format, args...)}
}

// Compile checks an audience request against the catalog and compiles
// its expression. Each refusal is an EINVALID *portrait.Error naming the
// declaration and the requirement; an identified output for a purpose
// that does not allow it is EDENIED with CM-6.
func Compile(cat *catalog.Catalog, r Request) (*Expr, error) {
	pur := cat.Purpose(r.Purpose)
	if pur == nil {
		return nil, invalid("CN-1", "purpose %q is not declared in the catalog; audiences are built for a declared purpose", r.Purpose)
	}
	x := &Expr{Purpose: pur.ID, Output: r.Output, By: r.By}
	switch x.Output {
	case "":
		x.Output = Aggregate
	case Aggregate, Pseudonymous:
	case Identified:
		if !pur.Identified {
			return nil, &portrait.Error{Code: portrait.EDENIED, Requirement: "CM-6", Message: fmt.Sprintf(
				"purpose %q does not allow identified audience output; use aggregate or pseudonymous, or declare identified_output: true for the purpose (with its assessment)", pur.ID)}
		}
	default:
		return nil, invalid("", "output %q: want aggregate, pseudonymous or identified", r.Output)
	}
	if len(r.Expression) == 0 || len(r.Expression) > 4096 {
		return nil, invalid("", "expression: want a CEL expression over labels of 1 to 4096 bytes, e.g. labels.sports_fan && labels.rfm.class == \"champions\"")
	}
	envOnce.Do(func() { env, envErr = cel.NewEnv(cel.Variable(varLabels, cel.MapType(cel.StringType, cel.DynType))) })
	if envErr != nil {
		return nil, fmt.Errorf("audience environment: %w", envErr)
	}
	checked, iss := env.Compile(r.Expression)
	if iss != nil && iss.Err() != nil {
		return nil, invalid("", "expression does not compile: %v", iss.Err())
	}
	if !checked.OutputType().IsExactType(cel.BoolType) && !checked.OutputType().IsExactType(cel.DynType) {
		return nil, invalid("", "expression returns %s; an audience expression must return bool", checked.OutputType())
	}
	used, err := referenced(checked.NativeRep())
	if err != nil {
		return nil, err
	}
	if len(used) == 0 {
		return nil, invalid("", "expression reads no label; select by labels.ID")
	}
	// What an audience matches is checked like a label's words: a literal
	// naming a protected group is refused however it is spelt (LP-2).
	for _, lit := range catalog.StringLiterals(r.Expression) {
		if hits := cat.Refused(lit); len(hits) > 0 {
			h := hits[0]
			return nil, invalid(h.Entry.Requirement, "expression matches %q, which names %s (%q, rule %s); audiences select by behaviour and interests, not protected characteristics",
				lit, h.Entry.Means, h.Term, h.Entry.ID)
		}
	}
	if x.By != "" && !slices.Contains(used, x.By) {
		used = append(used, x.By)
	}
	for _, id := range used {
		l := cat.Label(id)
		if l == nil {
			return nil, invalid("LP-1", "expression reads label %q, which is not declared in the catalog; declare it under labels:", id)
		}
		if !slices.Contains(l.Purposes, pur.ID) {
			return nil, invalid("LP-1", "label %q is not declared for purpose %q; add the purpose to the label's purposes or choose another purpose", id, pur.ID)
		}
		if l.Sensitive && !pur.Separate {
			return nil, invalid("SM-2", "label %q is sensitive (derived from sensitive data) and purpose %q has no separate consent; use a purpose with separate_consent: true", id, pur.ID)
		}
		if x.By == "" && (l.Kind == catalog.KindSegment || l.Kind == catalog.KindRFM) {
			x.By = id
		}
	}
	if x.By != "" {
		l := cat.Label(x.By)
		if l.Kind != catalog.KindSegment && l.Kind != catalog.KindRFM {
			return nil, invalid("", "by %q: an audience is counted by a segment or RFM label, and %q is a %s label", x.By, x.By, l.Kind)
		}
		x.byKind = l.Kind
	}
	sort.Strings(used)
	x.Labels = used
	sum := sha256.Sum256([]byte(r.Expression))
	x.Hash = hex.EncodeToString(sum[:])
	if x.prg, err = env.Program(checked, cel.CostLimit(100_000)); err != nil {
		return nil, invalid("", "plan expression: %v", err)
	}
	return x, nil
}

// referenced lists the labels the expression reads, and refuses any use
// of labels other than labels.ID or labels["ID"]: the labels read must be
// known before any subject is evaluated.
func referenced(a *ast.AST) ([]string, error) {
	var used []string
	idents, qualified := 0, 0
	isLabels := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == varLabels }
	ast.PostOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.IdentKind:
			if e.AsIdent() == varLabels {
				idents++
			}
		case ast.SelectKind:
			if s := e.AsSelect(); isLabels(s.Operand()) {
				qualified++
				used = append(used, s.FieldName())
			}
		case ast.CallKind:
			c := e.AsCall()
			if c.FunctionName() == "_[_]" && len(c.Args()) == 2 && isLabels(c.Args()[0]) && c.Args()[1].Kind() == ast.LiteralKind {
				if s, ok := c.Args()[1].AsLiteral().(types.String); ok {
					qualified++
					used = append(used, string(s))
				}
			}
		}
	}))
	if idents != qualified {
		return nil, invalid("", "the expression uses labels as a whole; name each label it reads, as labels.ID or labels[\"ID\"]")
	}
	slices.Sort(used)
	return slices.Compact(used), nil
}

// Table holds label values of many subjects for evaluation: one column of
// CEL values per label, filled once, so that selecting costs no
// allocation per subject.
type Table struct {
	labels     []string
	col        map[string]int
	Pseudonyms []portrait.Pseudonym
	States     []*policy.State
	cells      [][]ref.Val // per label, per subject; nil when absent
	groups     [][]string  // per label, per subject: segment index or RFM class
	texts      map[string]map[string]catalog.Text
}

// NewTable returns an empty table of the given labels.
func NewTable(labels []string) *Table {
	t := &Table{labels: labels, col: map[string]int{}, cells: make([][]ref.Val, len(labels)),
		groups: make([][]string, len(labels)), texts: map[string]map[string]catalog.Text{}}
	for i, l := range labels {
		t.col[l] = i
	}
	return t
}

// Len is the number of subjects.
func (t *Table) Len() int { return len(t.Pseudonyms) }

// Add appends a subject with its governance state and label values (those
// of the table's labels that it has).
func (t *Table) Add(pseudonym portrait.Pseudonym, st *policy.State, values map[string]derive.Stored) {
	t.Pseudonyms = append(t.Pseudonyms, pseudonym)
	t.States = append(t.States, st)
	for i, id := range t.labels {
		v, ok := values[id]
		if !ok {
			t.cells[i] = append(t.cells[i], nil)
			t.groups[i] = append(t.groups[i], "")
			continue
		}
		cell, group := celValue(v)
		t.cells[i] = append(t.cells[i], cell)
		t.groups[i] = append(t.groups[i], group)
		if v.Kind == catalog.KindSegment && len(v.Facts) > 0 {
			if t.texts[id] == nil {
				t.texts[id] = map[string]catalog.Text{}
			}
			t.texts[id][group] = v.Facts[0].Text
		}
	}
}

func celValue(v derive.Stored) (ref.Val, string) {
	switch v.Kind {
	case catalog.KindScore:
		return types.Double(v.Score), ""
	case catalog.KindSegment:
		return types.Int(v.Segment), strconv.Itoa(v.Segment)
	case catalog.KindRFM:
		if v.RFM == nil {
			return nil, ""
		}
		return &rfmVal{s: v.RFM, class: className(v.RFM.Class)}, v.RFM.Class
	case catalog.KindBGNBD:
		if v.Forecast == nil {
			return nil, ""
		}
		return types.DefaultTypeAdapter.NativeToValue(map[string]any{"expected": v.Forecast.Expected,
			"p_alive": v.Forecast.Alive, "purchases": int64(v.Forecast.Purchases)}), ""
	}
	return types.Bool(v.Bool), ""
}

// classNames interns the CEL strings of RFM classes, so that comparing a
// class allocates nothing.
var classNames sync.Map

func className(c string) ref.Val {
	if v, ok := classNames.Load(c); ok {
		return v.(ref.Val)
	}
	v, _ := classNames.LoadOrStore(c, types.String(c))
	return v.(ref.Val)
}

// rfmVal is an RFM label value as a CEL map: class, r, f, m, recency,
// frequency, monetary.
type rfmVal struct {
	s     *label.RFMScore
	class ref.Val
}

var rfmKeys = []string{"class", "r", "f", "m", "recency", "frequency", "monetary"}

func (v *rfmVal) lookup(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.NewErr("rfm: key %v is not a string", key), false
	}
	switch k {
	case "class":
		return v.class, true
	case "r":
		return types.Int(v.s.R), true
	case "f":
		return types.Int(v.s.F), true
	case "m":
		return types.Int(v.s.M), true
	case "recency":
		return types.Double(v.s.Recency), true
	case "frequency":
		return types.Int(v.s.Frequency), true
	case "monetary":
		return types.Double(v.s.Monetary), true
	}
	return nil, false
}

func (v *rfmVal) native() map[string]any {
	m := make(map[string]any, len(rfmKeys))
	for _, k := range rfmKeys {
		x, _ := v.lookup(types.String(k))
		m[k] = x
	}
	return m
}

// Find implements traits.Mapper.
func (v *rfmVal) Find(key ref.Val) (ref.Val, bool) { return v.lookup(key) }

// Get implements traits.Indexer.
func (v *rfmVal) Get(key ref.Val) ref.Val { return get(v.lookup, key) }

// Contains implements traits.Container.
func (v *rfmVal) Contains(key ref.Val) ref.Val { _, ok := v.lookup(key); return types.Bool(ok) }

// Iterator implements traits.Iterable.
func (v *rfmVal) Iterator() traits.Iterator { return asMap(v.native()).Iterator() }

// Size implements traits.Sizer.
func (v *rfmVal) Size() ref.Val { return types.Int(len(rfmKeys)) }

// ConvertToNative implements ref.Val.
func (v *rfmVal) ConvertToNative(t reflect.Type) (any, error) {
	return asMap(v.native()).ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (v *rfmVal) ConvertToType(t ref.Type) ref.Val { return convert(v, t) }

// Equal implements ref.Val.
func (v *rfmVal) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(v)) }

// Type implements ref.Val.
func (v *rfmVal) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (v *rfmVal) Value() any { return v.native() }

func get(lookup func(ref.Val) (ref.Val, bool), key ref.Val) ref.Val {
	if v, ok := lookup(key); ok {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

func asMap(m map[string]any) traits.Mapper {
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m).(traits.Mapper)
}

func convert(v ref.Val, t ref.Type) ref.Val {
	if t == types.MapType {
		return v
	}
	return types.NewErr("a map cannot be converted to %s", t)
}

// row is the labels variable of one subject: a read-only CEL map over
// the table's columns at index i.
type row struct {
	t *Table
	i int
}

var (
	_ traits.Mapper          = (*row)(nil)
	_ traits.Mapper          = (*rfmVal)(nil)
	_ interpreter.Activation = (*activation)(nil)
)

func (r *row) lookup(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.NewErr("labels: key %v is not a label id", key), false
	}
	c, ok := r.t.col[string(k)]
	if !ok {
		return nil, false
	}
	v := r.t.cells[c][r.i]
	return v, v != nil
}

// Find implements traits.Mapper.
func (r *row) Find(key ref.Val) (ref.Val, bool) { return r.lookup(key) }

// Get implements traits.Indexer.
func (r *row) Get(key ref.Val) ref.Val { return get(r.lookup, key) }

// Contains implements traits.Container.
func (r *row) Contains(key ref.Val) ref.Val {
	_, ok := r.lookup(key)
	return types.Bool(ok)
}

func (r *row) native() map[string]any {
	m := map[string]any{}
	for c, id := range r.t.labels {
		if v := r.t.cells[c][r.i]; v != nil {
			m[id] = v
		}
	}
	return m
}

// Iterator implements traits.Iterable.
func (r *row) Iterator() traits.Iterator {
	return asMap(r.native()).Iterator()
}

// Size implements traits.Sizer.
func (r *row) Size() ref.Val { return types.Int(len(r.native())) }

// ConvertToNative implements ref.Val.
func (r *row) ConvertToNative(t reflect.Type) (any, error) {
	return asMap(r.native()).ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (r *row) ConvertToType(t ref.Type) ref.Val { return convert(r, t) }

// Equal implements ref.Val.
func (r *row) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(r)) }

// Type implements ref.Val.
func (r *row) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (r *row) Value() any { return r.native() }

type activation struct{ row row }

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	if name == varLabels {
		return &a.row, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// Select returns the indexes of the table's subjects in the audience and
// how many the decision point excluded. Each subject is first decided —
// Use of the purpose with the labels read (LP-3, SR-7, CN-4) — and only
// then evaluated. It runs on every CPU; the order of the result is the
// table's.
func (x *Expr) Select(point *policy.Point, t *Table, caller policy.Caller) (members []int, excluded int) {
	n := t.Len()
	workers := min(runtime.GOMAXPROCS(0), max(1, n/10_000))
	parts := make([][]int, workers)
	excl := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lo, hi := w*n/workers, (w+1)*n/workers
			act := &activation{row: row{t: t}}
			req := policy.Request{Purpose: x.Purpose, Labels: x.Labels, Action: policy.Use, Caller: caller}
			for i := lo; i < hi; i++ {
				req.State = t.States[i]
				if !point.Decide(req).Allow {
					excl[w]++
					continue
				}
				act.row.i = i
				out, _, err := x.prg.Eval(act)
				if err == nil && out == types.True {
					parts[w] = append(parts[w], i)
				}
			}
		}()
	}
	wg.Wait()
	for w := range workers {
		members = append(members, parts[w]...)
		excluded += excl[w]
	}
	return members, excluded
}

// result fills the output of a selection.
func (x *Expr) result(t *Table, members []int, excluded int) Result {
	res := Result{Purpose: x.Purpose, Output: x.Output, Expression: x.Hash, Labels: x.Labels, Size: len(members), Excluded: excluded}
	switch x.Output {
	case Aggregate:
		if x.By != "" {
			c := t.col[x.By]
			res.By, res.Counts = x.By, map[string]int{}
			for _, i := range members {
				res.Counts[t.groups[c][i]]++
			}
			if texts := t.texts[x.By]; len(texts) > 0 {
				res.Groups = map[string]catalog.Text{}
				for g := range res.Counts {
					res.Groups[g] = texts[g]
				}
			}
		}
	default:
		res.Pseudonyms = make([]portrait.Pseudonym, len(members))
		for k, i := range members {
			res.Pseudonyms[k] = t.Pseudonyms[i]
		}
	}
	return res
}

// Audiences materialises audiences from the store.
type Audiences struct {
	store  Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	// PageSize is how many subjects are read at a time (default 1000).
	PageSize int
	// Assessments holds the signed impact assessments on record; without
	// it identified output is refused (CM-6).
	Assessments *Service
}

// NewAudiences returns an Audiences over the store.
func NewAudiences(d Deps) *Audiences {
	return &Audiences{store: d.Store, point: d.Point, ledger: d.Ledger, keys: d.Keys, log: d.Log, PageSize: 1000}
}

// Materialize compiles the request, reads the label values of every
// subject the decision point allows, selects the audience and records it
// in the audit log (kind "audience", the expression's hash, the purpose,
// the output and the size) before returning it; if the log cannot record
// it, nothing is returned (invariant 3).
func (a *Audiences) Materialize(ctx context.Context, caller policy.Caller, r Request) (Result, error) {
	cat := a.point.Catalog()
	x, err := Compile(cat, r)
	if err != nil {
		return Result{}, err
	}
	if x.Output == Identified {
		// CM-6: a signed assessment on record, not the flag alone.
		if a.Assessments == nil {
			return Result{}, denied("CM-6", "identified audience output needs a signed impact assessment on record, and this server keeps none")
		}
		if err := a.Assessments.assessedPurpose(cat, x.Purpose); err != nil {
			return Result{}, err
		}
	}
	t := NewTable(x.Labels)
	subjects := map[portrait.Pseudonym]portrait.SubjectKey{}
	excluded := 0
	req := policy.Request{Purpose: x.Purpose, Labels: x.Labels, Action: policy.Use, Caller: caller}
	for after := portrait.Pseudonym(""); ; {
		page, err := a.store.Pseudonyms(ctx, after, a.PageSize)
		if err != nil {
			return Result{}, fmt.Errorf("audience: list subjects: %w", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1]
		states, err := a.ledger.States(ctx, page)
		if err != nil {
			return Result{}, fmt.Errorf("audience: %w", err)
		}
		subs, err := a.store.Subjects(ctx, page)
		if err != nil {
			return Result{}, fmt.Errorf("audience: load subjects: %w", err)
		}
		for _, ps := range page {
			subj, ok := subs[ps]
			if !ok {
				continue
			}
			req.State = states[ps]
			d := a.point.Decide(req)
			if !d.Allow {
				excluded++ // never read: the decision point said no
				continue
			}
			lvs, err := a.store.Labels(ctx, d.Grant)
			if err != nil {
				return Result{}, fmt.Errorf("audience: read labels: %w", err)
			}
			c, err := a.keys.Open(subj)
			if err != nil {
				return Result{}, fmt.Errorf("audience: subject key: %w", err)
			}
			vals := map[string]derive.Stored{}
			for _, lv := range lvs {
				if !slices.Contains(x.Labels, lv.Label) {
					continue
				}
				v, err := derive.Open(c, lv)
				if err != nil {
					return Result{}, fmt.Errorf("audience: %w", err)
				}
				vals[lv.Label] = v
			}
			t.Add(ps, states[ps], vals)
			subjects[ps] = subj
		}
	}
	members, excl := x.Select(a.point, t, caller)
	res := x.result(t, members, excluded+excl)
	if x.Output == Identified {
		res.Subjects = make([]string, len(res.Pseudonyms))
		for i, ps := range res.Pseudonyms {
			if res.Subjects[i], err = a.keys.SubjectID(subjects[ps]); err != nil {
				return Result{}, fmt.Errorf("audience: subject id: %w", err)
			}
		}
		res.Pseudonyms = nil
	}
	rec := audit.Record{Kind: "audience", Time: time.Now().UTC(), Actor: actor(caller), Purpose: x.Purpose, Action: x.Output,
		Digest: x.Hash, Detail: map[string]any{"size": res.Size, "excluded": res.Excluded, "labels": x.Labels, "by": x.By}}
	err = a.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		res.LogIndex, err = a.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return Result{}, &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the audit log could not record this audience, so it is not returned", Err: err}
	}
	return res, nil
}
