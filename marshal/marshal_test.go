package marshal

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestAppendValue: every value gives json.Marshal's bytes, or its error.
func TestAppendValue(t *testing.T) {
	values := []any{
		nil, "", "plain", `quote " and \ backslash`, "<b>&</b>", "tab\tnew\nline\r\b\f\x00\x1f",
		"中文", "bad \xff utf-8", "line\u2028para\u2029", "emoji 🙂",
		true, false, 0, -7, int64(1) << 62,
		0.0, math.Copysign(0, -1), 1.5, -2.25, 1e-7, 1e-6, 123456789.0, 1e20, 1e21, 5e-324, math.MaxFloat64,
		math.NaN(), math.Inf(1), math.Inf(-1),
		[]string(nil), []string{}, []string{"a", "<"},
		map[string]string(nil), map[string]string{"b": "2", "a": "1"},
		map[string]any(nil), map[string]any{"z": 1.5, "a": []any{"x", true, nil}, "m": map[string]any{"k": "v"}},
		map[string]any{"bad": math.NaN()},
		[]any(nil), []any{},
		time.Date(2026, 12, 6, 1, 2, 3, 4, time.UTC), // through json.Marshal
		struct{ A int }{1},
	}
	for _, v := range values {
		want, wantErr := json.Marshal(v)
		got, err := AppendValue([]byte("prefix"), v)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%#v: error %v, json.Marshal's %v", v, err, wantErr)
			continue
		}
		if err != nil {
			if err.Error() != wantErr.Error() {
				t.Errorf("%#v: error %q, json.Marshal's %q", v, err, wantErr)
			}
			continue
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Errorf("%#v: %s, json.Marshal writes %s", v, got[len("prefix"):], want)
		}
	}
}

// TestAppendStringRandom compares strings of arbitrary bytes, runes and
// the characters encoding/json escapes.
func TestAppendStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "0", " ", `"`, `\`, "<", ">", "&", "\n", "\x01", "\x7f", "é", "中", "\u2028", "\u2029", "\xff", "\xe4\xb8", "🙂"}
	for range 2000 {
		var sb strings.Builder
		for range r.IntN(12) {
			sb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := sb.String()
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, json.Marshal writes %s", s, got, want)
		}
	}
	for range 2000 {
		f := math.Float64frombits(r.Uint64())
		want, wantErr := json.Marshal(f)
		got, err := AppendFloat(nil, f)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%v: %s %v, json.Marshal writes %s %v", f, got, err, want, wantErr)
		}
	}
}
