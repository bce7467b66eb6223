package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONProblemUnknownField: an unknown key is named with where it was
// and the JSON names expected there, never a Go type.
func TestJSONProblemUnknownField(t *testing.T) {
	type inner struct {
		Level int `json:"level"`
	}
	type body struct {
		Name  string           `json:"name"`
		Dial  inner            `json:"dial"`
		Dials []inner          `json:"dials"`
		ByKey map[string]inner `json:"by_key"`
	}
	for _, tc := range []struct{ data, want string }{
		{`{"name":"x","colour":1}`, `unknown field "colour"; the fields are "name", "dial", "dials", "by_key"`},
		{`{"dial":{"levle":3}}`, `unknown field "levle" in "dial"; the fields are "level"`},
		{`{"dials":[{"level":1},{"lvl":2}]}`, `unknown field "lvl" in "dials[1]"; the fields are "level"`},
		{`{"by_key":{"a":{"x":1}}}`, `unknown field "x" in "by_key.a"; the fields are "level"`},
		{`{"NAME":"case folds","Dial":{"LEVEL":1,"y":2}}`, `unknown field "y" in "Dial"; the fields are "level"`},
	} {
		var v body
		dec := json.NewDecoder(bytes.NewReader([]byte(tc.data)))
		dec.DisallowUnknownFields()
		err := dec.Decode(&v)
		if err == nil {
			t.Fatalf("%s: decoded", tc.data)
		}
		got := jsonProblem(err, &v, []byte(tc.data))
		if got != tc.want || strings.Contains(got, "server.") {
			t.Errorf("%s:\n got %s\nwant %s", tc.data, got, tc.want)
		}
	}
}
