package derive

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/marshal"
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
			b = marshal.AppendString(b, s)
		}
	}
	num := func(f float64) {
		if ok {
			var err error
			b, err = marshal.AppendFloat(b, f)
			ok = err == nil
		}
	}
	tm := func(t time.Time) {
		if ok {
			b, ok = appendTime(b, t)
		}
	}
	text := func(t catalog.Text) {
		if ok {
			var err error
			b, err = marshal.AppendValue(b, map[string]string(t)) // a map goes into any without an allocation
			ok = err == nil
		}
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
		b = marshal.AppendStrings(b, v.Inputs)
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
