package server

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// schemaGen derives JSON Schema (the OpenAPI 3.0 dialect, which code
// generators read) from the Go types the handlers decode and encode, by
// the rules encoding/json follows: json tags, omitempty, embedded structs,
// time.Time as an RFC 3339 string, maps as objects, nil slices as null.
//
// Named structs become components. A type used both as a request and as
// a response becomes two: a response lists every field it always sends as
// required, while a request requires nothing (absent and zero decode
// alike), so a client need not send what the server does not read.
type schemaGen struct {
	defs  map[string]any
	names map[reflect.Type]string
	taken map[string]reflect.Type
	err   error
}

func newSchemaGen() *schemaGen {
	return &schemaGen{defs: map[string]any{}, names: map[reflect.Type]string{}, taken: map[string]reflect.Type{}}
}

// direction of a schema: what the server reads, or what it writes.
type direction int

const (
	response direction = iota
	request
)

var (
	timeType      = reflect.TypeFor[time.Time]()
	durationType  = reflect.TypeFor[time.Duration]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[encoding.TextMarshaler]()
)

// customSchemas describe types that marshal themselves: reflection on
// their fields would describe the wrong thing. A type that implements
// json.Marshaler and is not here is an error, so a new one cannot slip
// into the document described by its Go fields.
var customSchemas = map[reflect.Type]map[string]any{}

// of returns the schema of t.
func (g *schemaGen) of(t reflect.Type, dir direction) map[string]any {
	if s, ok := customSchemas[t]; ok {
		return s
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "integer", "format": "int64", "description": "nanoseconds"}
	case t == rawType:
		return map[string]any{"description": "any JSON value"}
	}
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
			g.fail("%s marshals itself: describe it in customSchemas", t)
			return map[string]any{}
		}
		if t.Implements(textType) || reflect.PointerTo(t).Implements(textType) {
			return map[string]any{"type": "string"}
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.of(t.Elem(), dir)
	case reflect.Interface:
		return map[string]any{"description": "any JSON value"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Uint32:
		s := map[string]any{"type": "integer", "format": "int64"}
		if t.Kind() >= reflect.Uint {
			s["minimum"] = 0
		}
		return s
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16:
		s := map[string]any{"type": "integer", "format": "int32"}
		if t.Kind() >= reflect.Uint {
			s["minimum"] = 0
		}
		return s
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return map[string]any{"type": "string", "format": "byte"}
		}
		return map[string]any{"type": "array", "items": g.of(t.Elem(), dir)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem(), dir)}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t, dir)
		}
		return map[string]any{"$ref": "#/components/schemas/" + g.component(t, dir)}
	}
	g.fail("%s: no JSON form", t)
	return map[string]any{}
}

// component registers the named struct t and returns its component name.
func (g *schemaGen) component(t reflect.Type, dir direction) string {
	key := t
	if dir == request {
		// A distinct key per direction: the same Go type may be both.
		key = reflect.ArrayOf(0, t)
	}
	if name, ok := g.names[key]; ok {
		return name
	}
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i] // generic instantiation
	}
	name = upperFirst(name)
	if dir == request && !strings.HasSuffix(name, "Request") && !strings.HasSuffix(name, "Input") && !strings.HasSuffix(name, "Body") {
		name += "Request"
	}
	if other, ok := g.taken[name]; ok && other != key {
		pkg := t.PkgPath()[strings.LastIndexByte(t.PkgPath(), '/')+1:]
		name = upperFirst(pkg) + name
	}
	g.taken[name] = key
	g.names[key] = name
	g.defs[name] = map[string]any{} // placeholder: recursive types end here
	g.defs[name] = g.object(t, dir)
	return name
}

// object describes a struct's fields as encoding/json sees them.
func (g *schemaGen) object(t reflect.Type, dir direction) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, dir, props, &required)
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	if dir == request {
		// The server refuses unknown fields (readJSON).
		s["additionalProperties"] = false
	}
	return s
}

func (g *schemaGen) fields(t reflect.Type, dir direction, props map[string]any, required *[]string) {
	g.fieldsOf(t, dir, props, required, false)
}

// fieldsOf adds t's fields; under a nil embedded pointer they are all
// left out, so none of them is required.
func (g *schemaGen) fieldsOf(t reflect.Type, dir direction, props map[string]any, required *[]string, maybeAbsent bool) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			ft, absent := f.Type, maybeAbsent
			if ft.Kind() == reflect.Pointer {
				ft, absent = ft.Elem(), true
			}
			if ft.Kind() == reflect.Struct {
				g.fieldsOf(ft, dir, props, required, absent)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := g.of(f.Type, dir)
		if strings.Contains(","+opts+",", ",string,") {
			s = map[string]any{"type": "string", "description": "a number or boolean, as a string"}
		}
		optional := maybeAbsent || strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		if dir == response && !optional {
			switch f.Type.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
				if f.Type != rawType && !(f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8) {
					s = nullable(s)
				}
			}
			*required = append(*required, name)
		}
		if d := f.Tag.Get("doc"); d != "" {
			s = withDesc(s, d)
		}
		// Constraints the handler checks, stated where a client reads them.
		for _, k := range []string{"enum", "pattern", "default"} {
			v := f.Tag.Get(k)
			if v == "" {
				continue
			}
			s = withKey(s, k, v)
		}
		props[name] = s
	}
}

// nullable marks s as also null. A $ref cannot carry siblings in 3.0, so
// a reference is wrapped.
func nullable(s map[string]any) map[string]any {
	if _, ok := s["$ref"]; ok {
		return map[string]any{"allOf": []any{s}, "nullable": true}
	}
	if _, ok := s["type"]; !ok {
		return s // any value already admits null
	}
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	out["nullable"] = true
	return out
}

func withKey(s map[string]any, k, v string) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	if k == "enum" {
		out[k] = strings.Split(v, ",")
	} else {
		out[k] = v
	}
	return out
}

func withDesc(s map[string]any, d string) map[string]any {
	if _, ok := s["$ref"]; ok {
		return map[string]any{"allOf": []any{s}, "description": d}
	}
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	out["description"] = d
	return out
}

func (g *schemaGen) fail(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf("openapi: "+format, args...)
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
