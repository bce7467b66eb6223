package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// jsonProblem explains a decoding error in the body's own terms — JSON
// field names and JSON types — never the server's Go types.
func jsonProblem(err error, v any) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ):
		what := "the body"
		if typ.Field != "" {
			what = fmt.Sprintf("field %q", typ.Field)
		}
		return fmt.Sprintf("%s must be %s, not a JSON %s", what, jsonKind(typ.Type), typ.Value)
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		names := jsonNames(reflect.TypeOf(v))
		if len(names) == 0 {
			return fmt.Sprintf("unknown field %s", name)
		}
		return fmt.Sprintf("unknown field %s; the fields are %s", name, strings.Join(names, ", "))
	}
	switch {
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON: the body ends in the middle of a value"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names what a Go type decodes from, in JSON's words.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 time string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a JSON value"
}

// jsonNames lists the JSON names of a struct's fields, quoted.
func jsonNames(t reflect.Type) []string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case name == "" && f.Anonymous:
			out = append(out, jsonNames(f.Type)...)
			continue
		case name == "":
			name = f.Name
		}
		out = append(out, fmt.Sprintf("%q", name))
	}
	return out
}
