package label

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// DecodeFields decodes the stored fields of an event (or any flat JSON
// object) into what json.Unmarshal into a map[string]any gives: strings,
// float64, bool, nil. The common shape — string keys and string values
// without escapes, numbers, true, false, null — is read without
// reflection; anything else (escapes, nested values, bad syntax) goes to
// json.Unmarshal, which decides and words every error. Decoding each
// event into a map with encoding/json was the largest part of a
// derivation's compute.
func DecodeFields(b []byte) (map[string]any, error) {
	if m, ok := scanFields(b); ok {
		return m, nil
	}
	var m map[string]any
	err := json.Unmarshal(b, &m)
	return m, err
}

func scanFields(b []byte) (map[string]any, bool) {
	i := skip(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	m := make(map[string]any, 8)
	i = skip(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, skip(b, i+1) == len(b)
	}
	for {
		key, j, ok := scanString(b, i)
		if !ok {
			return nil, false
		}
		i = skip(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skip(b, i+1)
		if i >= len(b) {
			return nil, false
		}
		var v any
		switch c := b[i]; {
		case c == '"':
			s, j, ok := scanString(b, i)
			if !ok {
				return nil, false
			}
			v, i = s, j
		case c == 't' && hasAt(b, i, "true"):
			v, i = true, i+4
		case c == 'f' && hasAt(b, i, "false"):
			v, i = false, i+5
		case c == 'n' && hasAt(b, i, "null"):
			v, i = nil, i+4
		case c == '-' || c >= '0' && c <= '9':
			j := i
			for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '-' || b[j] == '+' || b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
				j++
			}
			if !validNumber(b[i:j]) {
				return nil, false
			}
			f, err := strconv.ParseFloat(string(b[i:j]), 64)
			if err != nil {
				return nil, false // out of range: encoding/json words the error
			}
			v, i = f, j
		default:
			return nil, false
		}
		m[key] = v // a repeated key: the last wins, as in encoding/json
		i = skip(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skip(b, i+1)
		case '}':
			return m, skip(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

func skip(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func hasAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// scanString reads a string without escapes or control characters, all
// valid UTF-8, starting at the quote at b[i].
func scanString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			for _, c := range s {
				if c >= 0x80 {
					if !utf8.Valid(s) {
						return "", 0, false
					}
					break
				}
			}
			return string(s), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// validNumber reports whether s is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}
