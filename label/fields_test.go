package label

import (
	"encoding/json"
	"reflect"
	"testing"
)

var fieldInputs = []string{
	`{}`, ` { } `, `{"item":"i1","category":"sports","amount":12.5}`, `{"a":-0,"b":1e3,"c":-1.5E-2,"d":true,"e":false,"f":null}`,
	`{"城市":"上海","x":"运动"}`, `{"a":"x","a":"y"}`, `{"a":"\u00e9"}`, `{"a":"<\u003c>"}`, `{"a":[1,2]}`, `{"a":{"b":1}}`,
	`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e400}`, `{"a":+1}`, `{"a":"\x01"}`, `{"a":"\xff"}`, `{"a":1,}`,
	`{"a" 1}`, `{"a":1}x`, `[1]`, `null`, ``, `{"a":tru}`, `{"a":nul}`, `{"a":"b"`, `{"a":-}`, `{"a":1.5e+10}`,
}

// DecodeFields gives what json.Unmarshal gives, values and errors alike.
func TestDecodeFieldsMatchesEncodingJSON(t *testing.T) {
	for _, in := range fieldInputs {
		checkFields(t, in)
	}
}

func checkFields(t *testing.T, in string) {
	t.Helper()
	got, gerr := DecodeFields([]byte(in))
	var want map[string]any
	werr := json.Unmarshal([]byte(in), &want)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("DecodeFields(%q) error %v, encoding/json %v", in, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeFields(%q) = %#v, encoding/json %#v", in, got, want)
	}
}

func FuzzDecodeFields(f *testing.F) {
	for _, in := range fieldInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) { checkFields(t, in) })
}
