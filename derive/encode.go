package derive

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
)

// encodeStored returns v as encoding/json encodes it, byte for byte, without
// reflection: a batch run seals millions of values, and json.Marshal's
// reflection and allocations were a tenth of its CPU. Values this encoder
// does not write itself — a forecast, a fact equal to something other than
// a string, number or bool, a string needing escapes, a float JSON cannot
// hold, a time outside years 0–9999 — go to json.Marshal whole, so the
// output (and any error) is always exactly json.Marshal's. TestEncodeStored
// compares the two.
func encodeStored(v *Stored) ([]byte, error) {
	if b, ok := appendStored(make([]byte, 0, 768), v); ok {
		return b, nil
	}
	return json.Marshal(*v)
}

// plainBufs holds the buffers values are encoded into before sealing: the
// plaintext is dropped once sealed, so one buffer serves many values.
var plainBufs = sync.Pool{New: func() any { return new([]byte) }}

// sealStored encodes v (encodeStored) and seals it with c under ad; nil
// if c was destroyed (the subject erased).
func sealStored(c *keys.Cipher, v *Stored, ad []byte) ([]byte, error) {
	buf := plainBufs.Get().(*[]byte)
	defer plainBufs.Put(buf)
	plain, ok := appendStored((*buf)[:0], v)
	if ok {
		*buf = plain
	} else {
		var err error
		if plain, err = json.Marshal(*v); err != nil {
			return nil, err
		}
	}
	return c.Seal(plain, ad), nil
}

// appendStored appends v's JSON; false if it must go to json.Marshal.
func appendStored(b []byte, v *Stored) ([]byte, bool) {
	if v.Forecast != nil {
		return b, false
	}
	ok := true
	str := func(s string) {
		if ok {
			b, ok = appendString(b, s)
		}
	}
	num := func(f float64) {
		if ok {
			b, ok = appendFloat(b, f)
		}
	}
	tm := func(t time.Time) {
		if ok {
			b, ok = appendTime(b, t)
		}
	}
	text := func(t catalog.Text) {
		if t == nil {
			b = append(b, "null"...)
			return
		}
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(t)) {
			if i > 0 {
				b = append(b, ',')
			}
			str(k)
			b = append(b, ':')
			str(t[k])
		}
		b = append(b, '}')
	}
	b = append(b, `{"label":`...)
	str(v.Label)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(v.Version), 10)
	b = append(b, `,"kind":`...)
	str(v.Kind)
	b = append(b, `,"bool":`...)
	b = strconv.AppendBool(b, v.Bool)
	if v.Score != 0 {
		b = append(b, `,"score":`...)
		num(v.Score)
	}
	b = append(b, `,"segment":`...)
	b = strconv.AppendInt(b, int64(v.Segment), 10)
	b = append(b, `,"confidence":`...)
	num(v.Confidence)
	b = append(b, `,"inputs":`...)
	if v.Inputs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, in := range v.Inputs {
			if i > 0 {
				b = append(b, ',')
			}
			str(in)
		}
		b = append(b, ']')
	}
	b = append(b, `,"event_count":`...)
	b = strconv.AppendInt(b, int64(v.EventCount), 10)
	if !v.From.IsZero() {
		b = append(b, `,"from":`...)
		tm(v.From)
	}
	if !v.To.IsZero() {
		b = append(b, `,"to":`...)
		tm(v.To)
	}
	b = append(b, `,"computed":`...)
	tm(v.Computed)
	if !v.Expires.IsZero() {
		b = append(b, `,"expires":`...)
		tm(v.Expires)
	}
	if len(v.Facts) > 0 {
		b = append(b, `,"facts":[`...)
		for i := range v.Facts {
			f := &v.Facts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"func":`...)
			str(f.Func)
			if f.Type != "" {
				b = append(b, `,"type":`...)
				str(f.Type)
			}
			if f.Field != "" {
				b = append(b, `,"field":`...)
				str(f.Field)
			}
			switch x := f.Equals.(type) {
			case nil:
			case string:
				b = append(b, `,"equals":`...)
				str(x)
			case float64:
				b = append(b, `,"equals":`...)
				num(x)
			case bool:
				b = append(b, `,"equals":`...)
				b = strconv.AppendBool(b, x)
			default:
				return b, false
			}
			if f.Window != "" {
				b = append(b, `,"window":`...)
				str(f.Window)
			}
			b = append(b, `,"value":`...)
			num(f.Value)
			if len(f.Text) > 0 {
				b = append(b, `,"text":`...)
				text(f.Text)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r := v.RFM; r != nil {
		b = append(b, `,"rfm":{"recency":`...)
		num(r.Recency)
		b = append(b, `,"frequency":`...)
		b = strconv.AppendInt(b, int64(r.Frequency), 10)
		b = append(b, `,"monetary":`...)
		num(r.Monetary)
		b = append(b, `,"r":`...)
		b = strconv.AppendInt(b, int64(r.R), 10)
		b = append(b, `,"f":`...)
		b = strconv.AppendInt(b, int64(r.F), 10)
		b = append(b, `,"m":`...)
		b = strconv.AppendInt(b, int64(r.M), 10)
		b = append(b, `,"class":`...)
		str(r.Class)
		b = append(b, `,"name":`...)
		text(r.Name)
		b = append(b, '}')
	}
	if v.Seen != 0 {
		b = append(b, `,"seen_event":`...)
		b = strconv.AppendInt(b, v.Seen, 10)
	}
	b = append(b, '}')
	return b, ok
}

// appendString appends s quoted, if it needs no escape: printable ASCII
// other than the quote, the backslash and the HTML characters json.Marshal
// escapes (<, >, &), and valid UTF-8 other than U+2028 and U+2029.
func appendString(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return b, false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			return b, false
		}
		i += n
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

// appendFloat appends f as encoding/json does: the shortest decimal that
// reads back as f, in exponent form below 1e-6 and from 1e21, with a
// one-digit negative exponent written without its leading zero.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendTime appends t quoted in RFC 3339 with nanoseconds, as
// time.Time.MarshalJSON does for years 0–9999 and whole-minute offsets.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off%60 != 0 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}
