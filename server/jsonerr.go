package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// jsonProblem explains a decoding error in the body's own terms — JSON
// field names and JSON types — never the server's Go types.
func jsonProblem(err error, v any, data []byte) string {
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
		// encoding/json names the key but not where it was: find it
		// again in what was sent, beside the type it was decoded into.
		var sent any
		key, _ := strconv.Unquote(name)
		path, t := "", reflect.TypeOf(v)
		if json.Unmarshal(data, &sent) == nil {
			if p, at, ok := findUnknown(sent, reflect.TypeOf(v), key, ""); ok {
				path, t = p, at
			}
		}
		what := fmt.Sprintf("unknown field %s", name)
		if path != "" {
			what = fmt.Sprintf("unknown field %s in %q", name, path)
		}
		names := jsonNames(t)
		if len(names) == 0 {
			return what
		}
		return fmt.Sprintf("%s; the fields are %s", what, strings.Join(names, ", "))
	}
	switch {
	case errors.Is(err, io.EOF):
		return "the body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON: the body ends in the middle of a value"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// findUnknown walks a decoded body beside the type it was decoded into
// and returns the path of the object holding key where t has no such
// field, and that object's type.
func findUnknown(v any, t reflect.Type, key, path string) (string, reflect.Type, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		switch t.Kind() {
		case reflect.Struct:
			fields := jsonFields(t)
			for _, k := range keys {
				ft, ok := fieldOf(fields, k)
				if !ok {
					if k == key {
						return path, t, true
					}
					continue
				}
				if p, at, ok := findUnknown(v[k], ft, key, join(path, k)); ok {
					return p, at, true
				}
			}
		case reflect.Map:
			for _, k := range keys {
				if p, at, ok := findUnknown(v[k], t.Elem(), key, join(path, k)); ok {
					return p, at, true
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range v {
				if p, at, ok := findUnknown(e, t.Elem(), key, fmt.Sprintf("%s[%d]", path, i)); ok {
					return p, at, true
				}
			}
		}
	}
	return "", nil, false
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// fieldOf finds a key among a struct's JSON fields as encoding/json does:
// exactly, or else without regard to case.
func fieldOf(fields map[string]reflect.Type, k string) (reflect.Type, bool) {
	if t, ok := fields[k]; ok {
		return t, true
	}
	for name, t := range fields {
		if strings.EqualFold(name, k) {
			return t, true
		}
	}
	return nil, false
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case name == "" && f.Anonymous:
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		case !f.IsExported():
			continue
		case name == "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
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
