package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The contract check: every body a handler decodes must be of the type
// its contract names, and every body it encodes must validate against the
// schema the document gives for that route and status. Observations are
// gathered over the whole package's tests (TestMain reads them).

var (
	contractMu     sync.Mutex
	contractErrs   = map[string]bool{}
	contractSeenIn = map[string]bool{}
	contractSeen   = map[string]bool{}
)

func init() { observe = checkObserved }

// WithoutContractCheck turns the contract check off until restore is
// called: a benchmark measures the handler, not the check (which encodes
// every response twice). Not for tests that run in parallel.
func WithoutContractCheck() (restore func()) {
	old := observe
	observe = nil
	return func() { observe = old }
}

func checkObserved(route, dir string, t reflect.Type, status int, body []byte) {
	method, pattern, _ := strings.Cut(route, " ")
	c, ok := contractOf(method, pattern)
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("no contract")
	case dir == "status":
		want := c.status
		if want == 0 {
			want = 200
		}
		// A problem written by the handler itself (429) is the
		// document's default response.
		if status < 400 && status != want && !slices.Contains(c.also, status) {
			err = fmt.Errorf("status %d is not in the document (%d %v)", status, want, c.also)
		}
	case dir == "read":
		if c.in == nil || reflect.TypeOf(c.in) != t {
			err = fmt.Errorf("the handler decodes %v, the document names %v", t, reflect.TypeOf(c.in))
		}
	default:
		err = checkResponse(c, status, t, body)
	}
	contractMu.Lock()
	defer contractMu.Unlock()
	if dir == "read" {
		contractSeenIn[route] = true
	} else {
		contractSeen[route] = true
	}
	if err != nil {
		contractErrs[fmt.Sprintf("%s (%s, %d): %v", route, dir, status, err)] = true
	}
}

func checkResponse(c contract, status int, t reflect.Type, body []byte) error {
	want := c.status
	if want == 0 {
		want = 200
	}
	if status != want && !slices.Contains(c.also, status) {
		return fmt.Errorf("status %d is not in the document (%d %v)", status, want, c.also)
	}
	if c.out == nil {
		return fmt.Errorf("a %v body where the document has none", t)
	}
	g, schema := schemaOf(c)
	if g.err != nil {
		return g.err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	return validate(g.defs, schema, v, "$")
}

var schemaCache sync.Map // reflect.Type of out → schemaEntry

type schemaEntry struct {
	g      *schemaGen
	schema map[string]any
}

// schemaOf derives a contract's response schema once.
func schemaOf(c contract) (*schemaGen, map[string]any) {
	key := [2]reflect.Type{reflect.TypeOf(c.out), reflect.TypeOf(c.alt)}
	if e, ok := schemaCache.Load(key); ok {
		return e.(schemaEntry).g, e.(schemaEntry).schema
	}
	g := newSchemaGen()
	schema := g.of(reflect.TypeOf(c.out), response)
	if c.alt != nil {
		schema = map[string]any{"oneOf": []any{schema, g.of(reflect.TypeOf(c.alt), response)}}
	}
	schemaCache.Store(key, schemaEntry{g, schema})
	return g, schema
}

// ContractErrors lists the disagreements seen so far between handlers and
// the document, and the routes whose bodies no test exercised.
func ContractErrors() (errs, unseenIn, unseenOut []string, _ error) {
	contractMu.Lock()
	defer contractMu.Unlock()
	for e := range contractErrs {
		errs = append(errs, e)
	}
	sort.Strings(errs)
	for k, c := range contracts {
		if c.in != nil && !contractSeenIn[k] && !c.inText {
			unseenIn = append(unseenIn, k)
		}
		if c.out != nil && !contractSeen[k] {
			unseenOut = append(unseenOut, k)
		}
	}
	sort.Strings(unseenIn)
	sort.Strings(unseenOut)
	return errs, unseenIn, unseenOut, nil
}

// validate checks v (decoded with UseNumber) against the subset of JSON
// Schema that schemaGen writes; it is strict where a client would be
// misled: unknown properties, missing required ones, wrong types.
func validate(defs map[string]any, s map[string]any, v any, at string) error {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		d, ok := defs[name].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: no schema %s", at, name)
		}
		return validate(defs, d, v, at)
	}
	if v == nil {
		if s["nullable"] == true || s["type"] == nil && s["allOf"] == nil && s["oneOf"] == nil {
			return nil
		}
		return fmt.Errorf("%s: null, but the document does not allow null", at)
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if err := validate(defs, sub.(map[string]any), v, at); err != nil {
				return err
			}
		}
		return nil
	}
	if one, ok := s["oneOf"].([]any); ok {
		var errs []string
		n := 0
		for _, sub := range one {
			if err := validate(defs, sub.(map[string]any), v, at); err != nil {
				errs = append(errs, err.Error())
			} else {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: matches %d of oneOf: %s", at, n, strings.Join(errs, "; "))
		}
		return nil
	}
	switch s["type"] {
	case nil:
		return nil
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, the document says object", at, v)
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := m[r]; !ok {
				return fmt.Errorf("%s: required property %q is missing", at, r)
			}
		}
		extra, _ := s["additionalProperties"].(map[string]any)
		for k, val := range m {
			if p, ok := props[k].(map[string]any); ok {
				if err := validate(defs, p, val, at+"."+k); err != nil {
					return err
				}
				continue
			}
			if extra == nil {
				return fmt.Errorf("%s: property %q is not in the document", at, k)
			}
			if err := validate(defs, extra, val, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, the document says array", at, v)
		}
		items, _ := s["items"].(map[string]any)
		for i, e := range a {
			if err := validate(defs, items, e, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, the document says string", at, v)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				return fmt.Errorf("%s: %q is not a date-time", at, str)
			}
		}
		if e := asStrings(s["enum"]); e != nil && !slices.Contains(e, str) {
			return fmt.Errorf("%s: %q is not one of %v", at, str, e)
		}
	case "integer":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			return fmt.Errorf("%s: %v, the document says integer", at, v)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s: %T, the document says number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, the document says boolean", at, v)
		}
	}
	return nil
}

func asStrings(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			out[i], _ = e.(string)
		}
		return out
	}
	return nil
}

// RouteHandlers names the handler function of each route, "METHOD
// pattern" → function name, for the query-parameter check.
func (s *Server) RouteHandlers() map[string]string {
	out := map[string]string{}
	for _, rt := range s.routes {
		name := runtime.FuncForPC(reflect.ValueOf(rt.handle).Pointer()).Name()
		name = strings.TrimSuffix(name[strings.LastIndexByte(name, '.')+1:], "-fm")
		out[rt.method+" "+rt.pattern] = name
	}
	return out
}

// ContractQuery lists the query parameters the document declares for a
// route, and those it knowingly leaves out.
func ContractQuery(method, pattern string) ([]string, bool) {
	c, ok := contractOf(method, pattern)
	var out []string
	for _, p := range c.query {
		out = append(out, p.name)
	}
	return append(out, c.ignored...), ok
}

// ContractKeys lists the routes that have contracts.
func ContractKeys() []string {
	var out []string
	for k := range contracts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DocumentProblems lists what the document could not describe.
func (s *Server) DocumentProblems() []error {
	_, problems := s.document()
	return problems
}

// Unobserved turns the contract check off until restore is called: a
// benchmark measures the server as it runs outside tests, without the
// check's second encoding of every body.
func Unobserved() (restore func()) {
	prev := observe
	observe = nil
	return func() { observe = prev }
}
