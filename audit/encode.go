package audit

import (
	"fmt"
	"strconv"
	"time"

	"github.com/portrait-dev/portrait/marshal"
)

// appendRecord appends the encoding of rec to b without reflection: the
// same bytes json.Marshal writes for a Record (fields in declaration
// order, empty ones omitted, map keys sorted, strings escaped as
// encoding/json escapes them), which the tests check against
// json.Marshal. Encoding was 75 % of an append (issue 14). Detail values
// of types other than the common ones fall back to json.Marshal.
func appendRecord(b []byte, rec *Record) ([]byte, error) {
	if y := rec.Time.Year(); y < 0 || y >= 10000 {
		return nil, fmt.Errorf("record time %v: year outside [0,9999]", rec.Time)
	}
	b = append(b, `{"kind":`...)
	b = marshal.AppendString(b, rec.Kind)
	b = append(b, `,"time":"`...)
	b = rec.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	for _, f := range [...]struct{ name, v string }{{"actor", rec.Actor}, {"subject", string(rec.Pseudonym)}, {"purpose", rec.Purpose}, {"action", rec.Action}} {
		if f.v != "" {
			b = append(b, ',', '"')
			b = append(b, f.name...)
			b = append(b, '"', ':')
			b = marshal.AppendString(b, f.v)
		}
	}
	if rec.Allow != nil {
		b = append(b, `,"allow":`...)
		b = strconv.AppendBool(b, *rec.Allow)
	}
	if len(rec.Codes) > 0 {
		b = append(b, `,"codes":`...)
		b = marshal.AppendStrings(b, rec.Codes)
	}
	if rec.Digest != "" {
		b = append(b, `,"digest":`...)
		b = marshal.AppendString(b, rec.Digest)
	}
	if len(rec.Detail) > 0 {
		b = append(b, `,"detail":`...)
		var err error
		if b, err = marshal.AppendValue(b, rec.Detail); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}
