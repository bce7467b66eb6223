package audit

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// The encoder without reflection writes exactly what json.Marshal writes
// for a Record, so records encoded before and after it read the same.
func TestAppendRecordMatchesJSON(t *testing.T) {
	yes := false
	type point struct{ X, Y int }
	recs := []Record{
		{Kind: "decision", Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)},
		testRecord(7),
		{Kind: "k<&>\"\\\n\t\x01\b\f\r", Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Actor: "a\u2028b\u2029c", Pseudonym: "bad\xffutf8 中文",
			Purpose: "p", Action: "x", Allow: &yes, Codes: []string{"CN-4", "<b>"}, Digest: "ab",
			Detail: map[string]any{
				"z": nil, "s": "x", "b": true, "i": -3, "i64": int64(1) << 60, "f": 0.1, "tiny": 1e-9, "huge": 1e22, "neg": -2.5e-7, "zero": 0.0,
				"strs": []string{"a", "<"}, "nilstrs": []string(nil), "m": map[string]string{"b": "2", "a": "1"},
				"nested": map[string]any{"k": []any{1.5, "x", map[string]any{"q": false}}}, "i32": int32(7), "pt": point{1, 2},
				"f32": float32(0.1), "uint": uint(9), "max": math.MaxFloat64,
			}},
		{Kind: "empty", Time: time.Unix(0, 0).UTC(), Codes: []string{}, Detail: map[string]any{}},
	}
	for _, rec := range recs {
		want, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendRecord(nil, &rec)
		if err != nil || string(got) != string(want) {
			t.Fatalf("appendRecord = %s, %v\njson.Marshal = %s", got, err, want)
		}
	}
	if _, err := appendRecord(nil, &Record{Kind: "x", Time: time.Unix(0, 0), Detail: map[string]any{"f": math.Inf(1)}}); err == nil {
		t.Fatal("an infinite number was encoded")
	}
}
