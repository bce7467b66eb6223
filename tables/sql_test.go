package tables

import (
	"testing"
	"time"
)

// Time reads both engines' encodings of a time column as the same UTC
// time, NULL as the zero time, and refuses anything else.
func TestTime(t *testing.T) {
	at := time.Date(2026, 12, 6, 4, 0, 0, 123, time.UTC)
	shanghai := time.FixedZone("CST", 8*3600)
	for _, tc := range []struct {
		name string
		in   any
		want time.Time
		bad  bool
	}{
		{"sqlite nanoseconds", at.UnixNano(), at, false},
		{"postgres timestamptz", at.In(shanghai), at, false},
		{"null", nil, time.Time{}, false},
		{"text", "2026-12-06", time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := time.Now() // overwritten, NULL included
			err := Time(&got).Scan(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("Scan(%T) = nil, want an error", tc.in)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Fatalf("Scan(%v) = %v (%v), %v; want %v in UTC", tc.in, got, got.Location(), err, tc.want)
			}
		})
	}
}
