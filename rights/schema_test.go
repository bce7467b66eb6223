package rights_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The export schema is checked with a small validator for the part of
// JSON Schema docs/export.schema.json uses — type, const, enum, required,
// properties, additionalProperties, items, minimum, maximum, $ref and the
// date-time format — so that the published schema and the encoder cannot
// drift apart without a test failing, and no dependency is added.

type schemaChecker struct {
	defs map[string]map[string]any
	errs []string
}

func loadSchema(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../docs/export.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("docs/export.schema.json: %v", err)
	}
	return s
}

// validate returns every way doc breaks schema, each with its JSON path.
func validate(schema map[string]any, doc []byte) []string {
	c := &schemaChecker{defs: map[string]map[string]any{}}
	if defs, ok := schema["$defs"].(map[string]any); ok {
		for k, v := range defs {
			c.defs[k], _ = v.(map[string]any)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{"$: not JSON: " + err.Error()}
	}
	c.check("$", schema, v)
	return c.errs
}

func (c *schemaChecker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, path+": "+fmt.Sprintf(format, args...))
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func (c *schemaChecker) check(path string, s map[string]any, v any) {
	if ref, ok := s["$ref"].(string); ok {
		def, found := c.defs[strings.TrimPrefix(ref, "#/$defs/")]
		if !found || !strings.HasPrefix(ref, "#/$defs/") {
			c.fail(path, "schema has an unresolvable $ref %q", ref)
			return
		}
		c.check(path, def, v)
		return
	}
	got := jsonType(v)
	if t, ok := s["type"]; ok {
		var want []string
		switch x := t.(type) {
		case string:
			want = []string{x}
		case []any:
			for _, w := range x {
				want = append(want, w.(string))
			}
		}
		if !slices.Contains(want, got) && !(got == "integer" && slices.Contains(want, "number")) {
			c.fail(path, "is %s, want %s", got, strings.Join(want, " or "))
			return
		}
	}
	if want, ok := s["const"]; ok && !reflect.DeepEqual(v, want) {
		c.fail(path, "is %v, want %v", v, want)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return reflect.DeepEqual(e, v) }) {
		c.fail(path, "%v is not one of %v", v, enum)
	}
	if s["format"] == "date-time" {
		if str, _ := v.(string); str != "" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				c.fail(path, "%q is not an RFC 3339 date-time", str)
			}
		}
	}
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		if min, ok := s["minimum"].(float64); ok && f < min {
			c.fail(path, "%v is below %v", f, min)
		}
		if max, ok := s["maximum"].(float64); ok && f > max {
			c.fail(path, "%v is above %v", f, max)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		required, _ := s["required"].([]any)
		for _, r := range required {
			if _, ok := x[r.(string)]; !ok {
				c.fail(path, "lacks required %q", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, val := range x {
			if ps, ok := props[k].(map[string]any); ok {
				c.check(path+"."+k, ps, val)
			} else if ap, ok := s["additionalProperties"].(map[string]any); ok {
				c.check(path+"."+k, ap, val)
			} else if s["additionalProperties"] == false {
				c.fail(path, "has undeclared %q", k)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, val := range x {
				c.check(fmt.Sprintf("%s[%d]", path, i), items, val)
			}
		}
	}
}

// SR-2: the checker itself refuses what the schema forbids, so that its
// silence on a real export means something.
func TestSchemaCheckerRefuses(t *testing.T) {
	schema := loadSchema(t)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not an object", `[]`, "$: is array, want object"},
		{"missing keys", `{"schema":"portrait.export/v1"}`, `lacks required "events"`},
		{"wrong version", `{"schema":"portrait.export/v2"}`, "want portrait.export/v1"},
		{"events not an array", `{"events":{}}`, "$.events: is object, want array"},
		{"dial out of range", `{"flags":{"restricted":false,"object_profiling":false,"object_marketing":false,"personalization":101}}`, "above 100"},
		{"bad time", `{"generated":"yesterday"}`, "not an RFC 3339"},
		{"bad label status", `{"labels":[{"label":"x","name":{},"description":{},"kind":"rule","purposes":[],"status":"hidden"}]}`, "hidden is not one of"},
		{"text not strings", `{"handler":{"name":{"en":1},"contact":"c"}}`, "$.handler.name.en: is integer, want string"},
	} {
		errs := validate(schema, []byte(tc.doc))
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
			t.Errorf("%s: errors %q, want one containing %q", tc.name, errs, tc.want)
		}
	}
}

// checkSchema fails t when the export raw breaks docs/export.schema.json.
func checkSchema(t *testing.T, raw []byte) {
	t.Helper()
	for _, e := range validate(loadSchema(t), raw) {
		t.Errorf("export against docs/export.schema.json: %s", e)
	}
}
