package label

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/portrait-dev/portrait/catalog"
)

// Event is one behavioural event of a subject, as the derivation reads it.
// Numbers in Fields are float64.
type Event struct {
	Type   string
	Time   time.Time
	Fields map[string]any
}

// Config bounds what a rule may cost.
type Config struct {
	// MaxEvents is the number of a subject's most recent events a rule
	// reads; it is also the size the cost estimate assumes for events.
	// Zero leaves events unbounded, and then every rule that reads them
	// is refused as unbounded.
	MaxEvents int
	// MaxCost is the limit on a rule's estimated cost at compile time and
	// on its actual cost at evaluation (cel.CostLimit).
	MaxCost uint64
	// MaxString is the size the cost estimate assumes for a string value.
	MaxString int
}

// DefaultConfig is what Check and Compile use: one comprehension over
// 10,000 events fits; a comprehension nested in another does not.
var DefaultConfig = Config{MaxEvents: 10000, MaxCost: 1_000_000, MaxString: 1024}

// CheckError is a refused label declaration. It names the label and the
// requirement that refuses it, so the catalog author knows what to fix.
type CheckError struct {
	Label       string
	Requirement string
	Msg         string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("label %q: %s: %s", e.Label, e.Requirement, e.Msg)
}

func refuse(l *catalog.Label, format string, args ...any) error {
	return &CheckError{Label: l.ID, Requirement: "LP-1", Msg: fmt.Sprintf(format, args...)}
}

// Names a rule sees besides its input fields.
const (
	varEvents = "events"
	varFields = "fields"
	varNow    = "now"
)

// aggregate describes one built-in aggregate function: where its window
// argument is (-1: none) and where its field argument is (-1: none).
type aggregate struct {
	window, field int
}

var aggregates = map[string]aggregate{
	"count":     {window: 1, field: 2},
	"frequency": {window: 1, field: -1},
	"sum":       {window: 2, field: 1},
	"mean":      {window: 2, field: 1},
	"min":       {window: 2, field: 1},
	"max":       {window: 2, field: 1},
	"distinct":  {window: 2, field: 1},
	"monetary":  {window: 2, field: 1},
	"recency":   {window: -1, field: -1},
}

// Overload ids carry the function name before the first '_', which lets
// one late-bound implementation serve them all.
func aggregateDecls() []cel.EnvOption {
	s, d := cel.StringType, cel.DoubleType
	late := cel.LateFunctionBinding()
	typeFieldWindow := func(name string, out *cel.Type) cel.EnvOption {
		return cel.Function(name, cel.Overload(name+"_type_field_window", []*cel.Type{s, s, s}, out, late))
	}
	return []cel.EnvOption{
		cel.Function("count",
			cel.Overload("count_type_window", []*cel.Type{s, s}, cel.IntType, late),
			cel.Overload("count_type_window_field_string", []*cel.Type{s, s, s, s}, cel.IntType, late),
			cel.Overload("count_type_window_field_double", []*cel.Type{s, s, s, d}, cel.IntType, late),
			cel.Overload("count_type_window_field_int", []*cel.Type{s, s, s, cel.IntType}, cel.IntType, late),
			cel.Overload("count_type_window_field_bool", []*cel.Type{s, s, s, cel.BoolType}, cel.IntType, late),
		),
		cel.Function("frequency", cel.Overload("frequency_type_window", []*cel.Type{s, s}, cel.IntType, late)),
		typeFieldWindow("sum", d),
		typeFieldWindow("mean", d),
		typeFieldWindow("min", d),
		typeFieldWindow("max", d),
		typeFieldWindow("monetary", d),
		typeFieldWindow("distinct", cel.IntType),
		cel.Function("recency", cel.Overload("recency_type", []*cel.Type{s}, d, late)),
	}
}

var (
	baseOnce sync.Once
	baseEnv  *cel.Env
	baseErr  error
)

func base() (*cel.Env, error) {
	baseOnce.Do(func() {
		opts := []cel.EnvOption{
			cel.Variable(varEvents, cel.ListType(cel.MapType(cel.StringType, cel.DynType))),
			cel.Variable(varFields, cel.MapType(cel.StringType, cel.DynType)),
			cel.Variable(varNow, cel.TimestampType),
		}
		baseEnv, baseErr = cel.NewEnv(append(opts, aggregateDecls()...)...)
	})
	return baseEnv, baseErr
}

// celType maps a catalog field type to the CEL type of its variable.
func celType(t string) (*cel.Type, bool) {
	switch t {
	case catalog.TypeNumber:
		return cel.DoubleType, true
	case catalog.TypeString, "":
		return cel.StringType, true
	case catalog.TypeBool:
		return cel.BoolType, true
	case catalog.TypeTime:
		return cel.TimestampType, true
	}
	return nil, false
}

// Rule is a compiled label: a CEL rule or a score model, ready to evaluate
// for one subject at a time. It is safe for concurrent use.
type Rule struct {
	label   *catalog.Label
	cfg     Config
	prg     cel.Program // rule labels
	model   *Model      // score labels
	vars    []input     // input fields in declaration order
	varIdx  map[string]int
	fields  []string // profile fields the rule reads
	types   []string // event types it reads; "*" means any
	windows map[string]time.Duration
	events  bool // reads the events variable
	// inputs is Value.Inputs, made once: the fields, then "event:TYPE".
	inputs []string
	// named is the event types the rule's aggregates name as constants
	// (types less "*"), which evalState indexes in one pass.
	named []string
	all   bool // types holds "*": every event is an input
	// cols lists, for each aggregate call with a constant type and field,
	// that pair: the columns an Index keeps. dynamic is set when some
	// aggregate's field is known only at run time (no Index then).
	cols    []colSpec
	dynamic bool
}

type input struct {
	name, typ string
}

// Check validates a label declaration: it compiles and type-checks a rule,
// bounds its cost, and checks that a score model or a segment reads only
// declared numeric fields. It has the signature of a catalog LabelCheck.
func Check(c *catalog.Catalog, l *catalog.Label) error {
	if l == nil {
		return errors.New("check label: no label given")
	}
	switch l.Kind {
	case catalog.KindSegment:
		return checkSegment(c, l)
	case catalog.KindRFM, catalog.KindBGNBD:
		return nil
	}
	_, err := CompileWith(DefaultConfig, c, l)
	return err
}

func checkSegment(c *catalog.Catalog, l *catalog.Label) error {
	if len(l.Features) == 0 {
		return refuse(l, "a segment needs features: list the declared numeric fields to cluster on")
	}
	for _, f := range l.Features {
		if err := numericField(c, l, f, "feature"); err != nil {
			return err
		}
	}
	if l.K < 2 {
		return refuse(l, "a segment needs k >= 2 clusters, got k = %d", l.K)
	}
	return nil
}

func numericField(c *catalog.Catalog, l *catalog.Label, name, role string) error {
	f := c.Field(name)
	if f == nil {
		return refuse(l, "%s %q is not a declared field; declare it under fields", role, name)
	}
	if f.Type != catalog.TypeNumber {
		return refuse(l, "%s %q has type %q; a %s must be a number field", role, name, f.Type, role)
	}
	if f.Protected && f.Ground == "" {
		return refuse(l, "%s %q is a protected attribute (FP-2); it may not be a %s without a recorded lawful ground", role, name, role)
	}
	return nil
}

// Compile compiles a rule or score label with DefaultConfig.
func Compile(c *catalog.Catalog, l *catalog.Label) (*Rule, error) {
	return CompileWith(DefaultConfig, c, l)
}

// CompileWith compiles a rule or score label. Every refusal is a
// *CheckError naming the label and LP-1.
func CompileWith(cfg Config, c *catalog.Catalog, l *catalog.Label) (*Rule, error) {
	if c == nil || l == nil {
		return nil, errors.New("compile label: catalog and label are required")
	}
	r := &Rule{label: l, cfg: cfg, varIdx: map[string]int{}, windows: map[string]time.Duration{}}
	for _, name := range l.Inputs {
		f := c.Field(name)
		if f == nil {
			if c.EventType(name) != nil {
				continue // an event type input: read through aggregates
			}
			return nil, refuse(l, "input %q is not a declared field or event type; declare it or remove it from inputs", name)
		}
		if f.Protected && f.Ground == "" {
			return nil, refuse(l, "input %q is a protected attribute (FP-2) and may not feed a label", name)
		}
		if _, ok := r.varIdx[name]; ok {
			continue
		}
		r.varIdx[name] = len(r.vars)
		r.vars = append(r.vars, input{name: name, typ: f.Type})
	}
	switch l.Kind {
	case catalog.KindScore:
		return r, r.compileModel(c)
	case catalog.KindRule, "":
		return r, r.compileRule()
	}
	return nil, refuse(l, "kind %q cannot be compiled per subject; want rule or score (segment and rfm labels are computed over the population)", l.Kind)
}

func (r *Rule) compileModel(c *catalog.Catalog) error {
	l := r.label
	if l.Model == nil {
		return refuse(l, "a score label needs a model with weights, intercept and threshold")
	}
	m := Model(*l.Model)
	if m.Kind != "logistic" && m.Kind != "scorecard" {
		return refuse(l, "model kind %q: want logistic or scorecard", m.Kind)
	}
	if len(m.Weights) == 0 {
		return refuse(l, "model has no weights: give a weight for each input field")
	}
	for _, name := range slices.Sorted(maps.Keys(m.Weights)) {
		if _, ok := r.varIdx[name]; !ok {
			return refuse(l, "model weight %q is not one of the label's inputs; add it to inputs", name)
		}
		if err := numericField(c, l, name, "model feature"); err != nil {
			return err
		}
	}
	if m.Kind == "logistic" && (m.Threshold <= 0 || m.Threshold >= 1) {
		return refuse(l, "logistic model threshold %v: set a probability between 0 and 1", m.Threshold)
	}
	r.model = &m
	r.fields = slices.Sorted(maps.Keys(m.Weights))
	r.setInputs()
	return nil
}

func (r *Rule) compileRule() error {
	l := r.label
	if l.Rule == "" {
		return refuse(l, "a rule label needs a rule")
	}
	env, err := base()
	if err != nil {
		return fmt.Errorf("label %q: build rule environment: %w", l.ID, err)
	}
	var decls []cel.EnvOption
	for _, v := range r.vars {
		if v.name == varEvents || v.name == varFields || v.name == varNow {
			return refuse(l, "input %q clashes with a built-in rule variable; rename the field", v.name)
		}
		t, ok := celType(v.typ)
		if !ok {
			return refuse(l, "input %q has unknown type %q", v.name, v.typ)
		}
		decls = append(decls, cel.Variable(v.name, t))
	}
	if env, err = env.Extend(decls...); err != nil {
		return refuse(l, "declare inputs: %v", err)
	}
	checked, iss := env.Compile(l.Rule)
	if iss != nil && iss.Err() != nil {
		return refuse(l, "rule does not compile (a name it uses must be one of its inputs, events, fields or now): %v", iss.Err())
	}
	if !checked.OutputType().IsExactType(cel.BoolType) {
		return refuse(l, "rule returns %s; a rule label must return bool", checked.OutputType())
	}
	if err := r.scan(checked.NativeRep()); err != nil {
		return err
	}
	est, err := env.EstimateCost(checked, estimator{cfg: r.cfg, inputs: len(r.vars)})
	if err != nil {
		return refuse(l, "estimate rule cost: %v", err)
	}
	if est.Max == math.MaxUint64 {
		return refuse(l, "its cost is unbounded; bound every comprehension by events or a constant list")
	}
	if est.Max > r.cfg.MaxCost {
		return refuse(l, "its estimated cost %d is above the limit %d (nested comprehensions over events?); use the aggregate functions instead", est.Max, r.cfg.MaxCost)
	}
	r.prg, err = env.Program(checked, cel.CostLimit(r.cfg.MaxCost))
	if err != nil {
		return refuse(l, "plan rule: %v", err)
	}
	return nil
}

// scan records what the rule reads and validates constant windows.
func (r *Rule) scan(a *ast.AST) error {
	fields, types := map[string]bool{}, map[string]bool{}
	for _, ri := range a.ReferenceMap() {
		switch {
		case ri.Name == varEvents:
			r.events = true
			types["*"] = true
		case ri.Name == varFields:
			for _, v := range r.vars {
				fields[v.name] = true
			}
		case ri.Name != "":
			if _, ok := r.varIdx[ri.Name]; ok {
				fields[ri.Name] = true
			}
		}
	}
	var bad error
	ast.PostOrderVisit(a.Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.CallKind || bad != nil {
			return
		}
		call := e.AsCall()
		agg, ok := aggregates[call.FunctionName()]
		if !ok || call.IsMemberFunction() {
			return
		}
		args := call.Args()
		typ, ok := constString(args[0])
		if ok {
			types[typ] = true
		} else {
			types["*"] = true
		}
		if agg.field >= 0 && agg.field < len(args) {
			if f, ok := constString(args[agg.field]); ok && typ != "" {
				r.addCol(typ, f, call.FunctionName())
			} else {
				r.dynamic = true
			}
		}
		if agg.window < 0 || agg.window >= len(args) {
			return
		}
		if w, ok := constString(args[agg.window]); ok {
			d, err := catalog.ParseDuration(w)
			if err != nil {
				bad = refuse(r.label, "%s(): bad window: %v", call.FunctionName(), err)
				return
			}
			r.windows[w] = time.Duration(d)
		}
	}))
	if bad != nil {
		return bad
	}
	r.fields = slices.Sorted(maps.Keys(fields))
	r.types = slices.Sorted(maps.Keys(types))
	r.setInputs()
	return nil
}

// setInputs makes what provenance needs once, at compile time.
func (r *Rule) setInputs() {
	r.inputs = slices.Clone(r.fields)
	r.named = nil
	for _, t := range r.types {
		r.inputs = append(r.inputs, "event:"+t)
		if t == "*" {
			r.all = true
		} else {
			r.named = append(r.named, t)
		}
	}
}

func constString(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().(types.String)
	return string(s), ok
}

// estimator gives the cost model sizes for the rule's inputs: events holds
// at most MaxEvents maps, each with a bounded number of entries, and every
// string is at most MaxString bytes.
type estimator struct {
	cfg    Config
	inputs int
}

const maxEventFields = 64

// EstimateSize implements cost.Estimator.
func (e estimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	var s cost.SizeEstimate
	switch {
	case p[0] == varEvents && len(p) == 1:
		if e.cfg.MaxEvents <= 0 {
			return nil // no bound: comprehensions over events are unbounded
		}
		s = cost.RangedSizeEstimate(0, uint64(e.cfg.MaxEvents))
	case p[0] == varEvents && p[len(p)-1] == "@items":
		s = cost.RangedSizeEstimate(0, maxEventFields)
	case p[0] == varFields && len(p) == 1:
		s = cost.RangedSizeEstimate(0, uint64(e.inputs))
	default:
		s = cost.RangedSizeEstimate(0, uint64(e.cfg.MaxString))
	}
	return &s
}

// EstimateCallCost implements cost.Estimator: an aggregate scans at most
// MaxEvents events.
func (e estimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	if _, ok := aggregates[function]; !ok || target != nil {
		return nil
	}
	if e.cfg.MaxEvents <= 0 {
		return cost.NewCallEstimate(cost.Estimate{Min: 1, Max: math.MaxUint64}, nil)
	}
	return cost.NewCallEstimate(cost.Estimate{Min: 1, Max: uint64(e.cfg.MaxEvents)}, nil)
}

// Inputs reports what the rule depends on: the profile fields it reads and
// the event types its aggregates read ("*" when it reads events of any
// type), so that derivation can recompute only labels whose inputs changed.
func (r *Rule) Inputs() (fields []string, eventTypes []string) {
	return slices.Clone(r.fields), slices.Clone(r.types)
}

// Label returns the declaration the rule was compiled from.
func (r *Rule) Label() *catalog.Label { return r.label }

// Eval computes the label for one subject at now from its latest profile
// values and its events. Only the MaxEvents most recent events at or
// before now are read.
func (r *Rule) Eval(now time.Time, profile map[string]any, events []Event) (Value, error) {
	events = recent(now, events, r.cfg.MaxEvents)
	st := newState(r, now, profile, events)
	defer st.free()
	return r.eval(st, now, profile)
}

// eval evaluates the rule or model with the state st, which reads the
// subject's events (Eval) or an index of them (EvalIndex).
func (r *Rule) eval(st *evalState, now time.Time, profile map[string]any) (Value, error) {
	l := r.label
	v := Value{Label: l.ID, Version: l.Version, Kind: l.Kind, Computed: now}
	if v.Kind == "" {
		v.Kind = catalog.KindRule
	}
	if l.TTL > 0 {
		v.Expires = now.Add(time.Duration(l.TTL))
	}
	for i, in := range r.vars {
		val, err := fieldValue(in, profile[in.name])
		if err != nil {
			return Value{}, fmt.Errorf("evaluate label %q: %w", l.ID, err)
		}
		st.vals[i] = val
	}
	if r.model != nil {
		return r.evalModel(v, st)
	}
	out, _, err := r.prg.Eval(st)
	if err != nil {
		return Value{}, fmt.Errorf("evaluate label %q: %w", l.ID, err)
	}
	if st.err != nil {
		return Value{}, fmt.Errorf("evaluate label %q: %w", l.ID, st.err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return Value{}, fmt.Errorf("evaluate label %q: rule returned %v, want bool", l.ID, out.Type())
	}
	v.Bool = bool(b)
	v.Confidence = 1 // a rule is deterministic: it holds or it does not
	n := len(st.facts)
	for i := range r.vars {
		if st.read[i] {
			n++
		}
	}
	if n > 0 {
		v.Facts = make([]Fact, 0, n)
	}
	for i, in := range r.vars {
		if st.read[i] {
			v.Facts = append(v.Facts, Fact{Func: "field", Field: in.name, Equals: native(st.vals[i], profile[in.name] != nil)})
		}
	}
	v.Facts = append(v.Facts, st.facts...)
	if st.ix != nil {
		st.provenanceIndexed(&v)
	} else {
		st.provenance(&v)
	}
	return v, nil
}

func (r *Rule) evalModel(v Value, st *evalState) (Value, error) {
	feats := make(map[string]float64, len(r.fields))
	for _, name := range r.fields {
		if _, ok := st.profile[name]; !ok {
			return Value{}, fmt.Errorf("evaluate label %q: feature %q has no value for this subject", r.label.ID, name)
		}
		feats[name] = float64(st.vals[r.varIdx[name]].(types.Double))
	}
	score, contrib, err := r.model.Score(feats)
	if err != nil {
		return Value{}, fmt.Errorf("evaluate label %q: %w", r.label.ID, err)
	}
	v.Score = score
	v.Bool = r.model.Outcome(score)
	v.Confidence = 1
	if r.model.Kind == "logistic" {
		v.Confidence = math.Max(score, 1-score)
	}
	for _, name := range r.fields {
		v.Facts = append(v.Facts, Fact{Func: "contribution", Field: name, Equals: feats[name], Value: contrib[name]})
	}
	v.Inputs = slices.Clone(r.inputs)
	return v, nil
}

// provenance records which inputs were used and the span of events read:
// those of the types the rule names, or all of them if it reads events of
// any type.
func (s *evalState) provenance(v *Value) {
	r := s.r
	v.Inputs = slices.Clone(r.inputs)
	if !r.all {
		s.index()
		v.EventCount, v.From, v.To = s.count, s.from, s.to
		return
	}
	for i := range s.events {
		e := &s.events[i]
		v.EventCount++
		if v.From.IsZero() || e.Time.Before(v.From) {
			v.From = e.Time
		}
		if e.Time.After(v.To) {
			v.To = e.Time
		}
	}
}

// recent drops events after now and keeps the max most recent.
func recent(now time.Time, events []Event, max int) []Event {
	future := false
	for i := range events {
		if events[i].Time.After(now) {
			future = true
			break
		}
	}
	if !future && (max <= 0 || len(events) <= max) {
		return events
	}
	kept := make([]Event, 0, len(events))
	for _, e := range events {
		if !e.Time.After(now) {
			kept = append(kept, e)
		}
	}
	if max > 0 && len(kept) > max {
		slices.SortStableFunc(kept, func(a, b Event) int { return b.Time.Compare(a.Time) })
		kept = kept[:max]
	}
	return kept
}

// fieldValue converts a profile value to its CEL variable. An absent value
// is the type's zero value (0, "", false, the zero timestamp); a rule that
// must tell absence from zero tests `"name" in fields`.
func fieldValue(in input, raw any) (ref.Val, error) {
	switch in.typ {
	case catalog.TypeNumber:
		if raw == nil {
			return types.Double(0), nil
		}
		if f, ok := toFloat(raw); ok {
			return types.Double(f), nil
		}
	case catalog.TypeString, "":
		if raw == nil {
			return types.String(""), nil
		}
		if s, ok := raw.(string); ok {
			return types.String(s), nil
		}
	case catalog.TypeBool:
		if raw == nil {
			return types.False, nil
		}
		if b, ok := raw.(bool); ok {
			return types.Bool(b), nil
		}
	case catalog.TypeTime:
		if raw == nil {
			return types.Timestamp{Time: time.Unix(0, 0).UTC()}, nil
		}
		if t, ok := raw.(time.Time); ok {
			return types.Timestamp{Time: t}, nil
		}
	}
	return nil, fmt.Errorf("field %q holds %T, want a %s value", in.name, raw, in.typ)
}

func native(v ref.Val, present bool) any {
	if !present {
		return nil
	}
	switch x := v.(type) {
	case types.Double:
		return float64(x)
	case types.String:
		return string(x)
	case types.Bool:
		return bool(x)
	case types.Timestamp:
		return x.Time
	}
	return nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		// Stored values are finite (ingest refuses others); a
		// non-finite one is no number to aggregate.
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	}
	return 0, false
}

// evalState is the activation of one evaluation: it resolves the rule's
// variables and serves the aggregate functions, indexing the subject's
// events of the types the rule names, in one pass, the first time an
// aggregate or the provenance needs them. States are pooled: an
// evaluation allocates little more than the Value it returns.
type evalState struct {
	r       *Rule
	now     time.Time
	profile map[string]any
	events  []Event
	vals    []ref.Val
	read    []bool
	facts   []Fact
	err     error
	fn      functions.LateBoundOp

	// The index, once made: at[k] holds, in order, the positions of the
	// events of type r.named[k]; count, from and to are the provenance of
	// those events together.
	indexed  bool
	at       [][]int32
	count    int
	from, to time.Time

	seen map[any]struct{} // distinct's values, reused

	// EvalIndex: the aggregates read the index, not events.
	ix    *Index
	nowNs int64
}

var states = sync.Pool{New: func() any {
	s := new(evalState)
	s.fn = s.call
	return s
}}

func newState(r *Rule, now time.Time, profile map[string]any, events []Event) *evalState {
	s := states.Get().(*evalState)
	s.r, s.now, s.profile, s.events = r, now, profile, events
	s.vals = slices.Grow(s.vals[:0], len(r.vars))[:len(r.vars)]
	s.read = slices.Grow(s.read[:0], len(r.vars))[:len(r.vars)]
	clear(s.read)
	return s
}

// free returns the state to the pool, keeping its buffers but nothing of
// the subject.
func (s *evalState) free() {
	clear(s.vals)
	clear(s.facts)
	s.facts = s.facts[:0]
	clear(s.seen)
	s.r, s.profile, s.events, s.err, s.ix = nil, nil, nil, nil, nil
	s.indexed, s.count, s.from, s.to = false, 0, time.Time{}, time.Time{}
	states.Put(s)
}

var _ interpreter.FunctionActivation = (*evalState)(nil)

// ResolveName implements interpreter.Activation.
func (s *evalState) ResolveName(name string) (any, bool) {
	if i, ok := s.r.varIdx[name]; ok {
		s.read[i] = true
		return s.vals[i], true
	}
	switch name {
	case varNow:
		return types.Timestamp{Time: s.now}, true
	case varEvents:
		return s.eventList(), true
	case varFields:
		m := make(map[string]any, len(s.r.vars))
		for i, in := range s.r.vars {
			if s.profile[in.name] != nil {
				s.read[i] = true
				m[in.name] = s.vals[i]
			}
		}
		return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m), true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (s *evalState) Parent() interpreter.Activation { return nil }

// ResolveFunction implements interpreter.FunctionActivation.
func (s *evalState) ResolveFunction(name string) (functions.LateBoundOp, bool) {
	if _, ok := aggregates[name]; ok {
		return s.fn, true
	}
	return nil, false
}

func (s *evalState) eventList() ref.Val {
	list := make([]ref.Val, len(s.events))
	for i := range s.events {
		e := &s.events[i]
		m := make(map[string]any, len(e.Fields)+3)
		for k, v := range e.Fields {
			m[k] = v
		}
		m["type"] = e.Type
		m["time"] = e.Time
		m["age"] = s.now.Sub(e.Time)
		list[i] = types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, list)
}

// index makes the index of the events of the types the rule names: one
// string comparison per named type and event, no map.
func (s *evalState) index() {
	if s.indexed {
		return
	}
	s.indexed = true
	named := s.r.named
	if len(named) == 0 {
		return
	}
	if cap(s.at) < len(named) {
		s.at = make([][]int32, len(named))
	}
	s.at = s.at[:len(named)]
	for k := range s.at {
		s.at[k] = s.at[k][:0]
	}
	var from, to time.Time
	n := 0
	for i := range s.events {
		e := &s.events[i]
		for k, t := range named {
			if e.Type != t {
				continue
			}
			s.at[k] = append(s.at[k], int32(i))
			n++
			if from.IsZero() || e.Time.Before(from) {
				from = e.Time
			}
			if e.Time.After(to) {
				to = e.Time
			}
			break
		}
	}
	s.count, s.from, s.to = n, from, to
}

// events returns the events of type t: their positions from the index if
// the rule names t, or all events (scan) to be compared with t one by one
// if t is known only at run time.
func (s *evalState) ofType(t string) (at []int32, scan bool) {
	if k := slices.Index(s.r.named, t); k >= 0 {
		s.index()
		return s.at[k], false
	}
	return nil, true
}

// next is the event after position j of those ofType returned: the index
// i of it in s.events, or -1 when there are no more.
func (s *evalState) next(t string, at []int32, scan bool, j int) (int, int) {
	if !scan {
		if j >= len(at) {
			return -1, j
		}
		return int(at[j]), j + 1
	}
	for ; j < len(s.events); j++ {
		if s.events[j].Type == t {
			return j, j + 1
		}
	}
	return -1, j
}

func (s *evalState) window(w string) (time.Time, error) {
	d, ok := s.r.windows[w]
	if !ok {
		p, err := catalog.ParseDuration(w)
		if err != nil {
			return time.Time{}, err
		}
		d = time.Duration(p)
	}
	return s.now.Add(-d), nil
}

// call serves every aggregate; the function is the overload id's prefix.
func (s *evalState) call(overload string, args ...ref.Val) ref.Val {
	fn := overload
	for i := 0; i < len(overload); i++ {
		if overload[i] == '_' {
			fn = overload[:i]
			break
		}
	}
	str := func(i int) string { return string(args[i].(types.String)) }
	f := Fact{Func: fn, Type: str(0)}
	if fn == "recency" && s.ix != nil {
		return s.callIndexed(fn, f, time.Time{})
	}
	if fn == "recency" {
		f.Value = 1e9
		var last time.Time
		at, scan := s.ofType(f.Type)
		for i, j := s.next(f.Type, at, scan, 0); i >= 0; i, j = s.next(f.Type, at, scan, j) {
			if t := s.events[i].Time; t.After(last) {
				last = t
			}
		}
		if !last.IsZero() {
			f.Value = s.now.Sub(last).Hours() / 24
		}
		s.record(f)
		return types.Double(f.Value)
	}
	agg := aggregates[fn]
	f.Window = str(agg.window)
	from, err := s.window(f.Window)
	if err != nil {
		s.err = fmt.Errorf("%s(): bad window: %w", fn, err)
		return types.NewErr("%s(): bad window: %v", fn, err)
	}
	if agg.field >= 0 && agg.field < len(args) {
		f.Field = str(agg.field)
	}
	var want any
	if fn == "count" && len(args) == 4 {
		want = args[3].Value()
		if i, ok := want.(int64); ok {
			want = float64(i)
		}
		f.Equals = want
	}
	if s.ix != nil {
		return s.callIndexed(fn, f, from)
	}
	var n int
	var sum float64
	lo, hi := math.Inf(1), math.Inf(-1)
	seen := s.seen
	clear(seen)
	// What the loop does for each event is decided once, not per event.
	counting, distinct := fn == "count" || fn == "frequency", fn == "distinct"
	wantString, isString := want.(string)
	at, scan := s.ofType(f.Type)
	for i, j := s.next(f.Type, at, scan, 0); i >= 0; i, j = s.next(f.Type, at, scan, j) {
		e := &s.events[i]
		if e.Time.Before(from) {
			continue
		}
		switch {
		case counting:
			if isString {
				// equal(got, want) for a string want, without its
				// interface comparison.
				if got, ok := e.Fields[f.Field].(string); !ok || got != wantString {
					continue
				}
			} else if want != nil && !equal(e.Fields[f.Field], want) {
				continue
			}
			n++
		case distinct:
			v, ok := e.Fields[f.Field]
			if !ok {
				continue
			}
			if seen == nil {
				seen = map[any]struct{}{}
				s.seen = seen // kept for the next distinct, cleared
			}
			if t, ok := v.(time.Time); ok {
				v = t.UnixNano()
			}
			seen[v] = struct{}{}
		default:
			x, ok := toFloat(e.Fields[f.Field])
			if !ok {
				continue
			}
			n++
			sum = Add(sum, x)
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	switch fn {
	case "count", "frequency":
		f.Value = float64(n)
		s.record(f)
		return types.Int(n)
	case "distinct":
		if len(seen) > 1024 {
			s.seen = nil // clearing a map costs its size: keep only small ones
		}
		f.Value = float64(len(seen))
		s.record(f)
		return types.Int(len(seen))
	}
	f.Value = numeric(fn, n, sum, lo, hi, func() (mean float64) {
		for i, j := s.next(f.Type, at, scan, 0); i >= 0; i, j = s.next(f.Type, at, scan, j) {
			e := &s.events[i]
			if x, ok := toFloat(e.Fields[f.Field]); ok && !e.Time.Before(from) {
				mean += x / float64(n)
			}
		}
		return mean
	})
	s.record(f)
	return types.Double(f.Value)
}

// numeric is a numeric aggregate's value from the count, sum and
// extremes of its values. Both evaluations end here (over the events,
// call; over an index, callIndexed), so that they agree to the bit. A
// mean whose sum saturated is added up again as x/n, which cannot
// overflow (slowMean).
func numeric(fn string, n int, sum, lo, hi float64, slowMean func() float64) float64 {
	switch fn {
	case "mean":
		if math.Abs(sum) == math.MaxFloat64 {
			return slowMean()
		}
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	case "min", "max":
		if n == 0 {
			return 0
		}
		if fn == "min" {
			return lo
		}
		return hi
	default: // sum, monetary
		return sum
	}
}

func equal(got, want any) bool {
	if w, ok := want.(float64); ok {
		g, ok := toFloat(got)
		return ok && g == w
	}
	return got == want
}

func (s *evalState) record(f Fact) {
	for _, g := range s.facts {
		if g.Func == f.Func && g.Type == f.Type && g.Field == f.Field && g.Window == f.Window && g.Equals == f.Equals {
			return
		}
	}
	s.facts = append(s.facts, f)
}
