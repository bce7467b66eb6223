package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	portrait "github.com/portrait-dev/portrait"
)

// Item is one decoded event, or the reason it could not be decoded. One bad
// item never blocks the others.
type Item struct {
	Event portrait.Event
	Err   *Problem
}

// Problem says why one event was rejected.
type Problem struct {
	Code        string `json:"code"`
	Reason      string `json:"reason"`
	Requirement string `json:"requirement,omitempty"`
}

func problem(code, format string, args ...any) *Problem {
	return &Problem{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// wire is the accepted shape of one event; unknown keys are refused.
type wire struct {
	Subject        *string         `json:"subject"`
	Type           *string         `json:"type"`
	Time           *string         `json:"time"`
	IdempotencyKey string          `json:"idempotency_key"`
	Fields         json.RawMessage `json:"fields"`
}

// MaxEvents is the largest batch one request may carry.
const MaxEvents = 100_000

// Decode reads a JSON array of events, or NDJSON (one event per line) when
// ndjson is true. A body that is not JSON at all is an error for the whole
// request (*portrait.Error with EINVALID); an element that is malformed,
// has unknown keys or wrong types becomes an Item with Err set.
func Decode(r io.Reader, ndjson bool) ([]Item, error) {
	if ndjson {
		return decodeLines(r)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		return nil, portrait.Errorf(portrait.EINVALID, "the body is not valid UTF-8; send UTF-8 encoded JSON")
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "the body is empty; send a JSON array of events or NDJSON with Content-Type: application/x-ndjson")
	}
	if data[0] != '[' {
		return nil, portrait.Errorf(portrait.EINVALID, "the body must be a JSON array of events, or NDJSON with Content-Type: application/x-ndjson")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, portrait.Errorf(portrait.EINVALID, "the body is not a valid JSON array: %s", jsonError(data, err))
	}
	if len(raws) > MaxEvents {
		return nil, portrait.Errorf(portrait.ETOOLARGE, "%d events in one request; send at most %d per request", len(raws), MaxEvents)
	}
	items := make([]Item, len(raws))
	for i, raw := range raws {
		items[i] = decodeOne(raw)
	}
	return items, nil
}

func decodeLines(r io.Reader) ([]Item, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var items []Item
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(items) >= MaxEvents {
			return nil, portrait.Errorf(portrait.ETOOLARGE, "more than %d events in one request; split the NDJSON stream", MaxEvents)
		}
		it := decodeOne(b)
		if it.Err != nil {
			it.Err.Reason = fmt.Sprintf("line %d: %s", line, it.Err.Reason)
		}
		items = append(items, it)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, portrait.Errorf(portrait.ETOOLARGE, "line %d is longer than 1 MiB; one event per line, each under 1 MiB", line+1)
		}
		return nil, err
	}
	if len(items) == 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "the body holds no events; send one JSON object per line")
	}
	return items, nil
}

func decodeOne(raw []byte) Item {
	if !utf8.Valid(raw) {
		return Item{Err: problem("invalid_utf8", "the event is not valid UTF-8")}
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Item{Err: problem("malformed", "%s; an event is {\"subject\", \"type\", \"time\", \"idempotency_key\"?, \"fields\": {…}}", jsonError(raw, err))}
	}
	if dec.More() {
		return Item{Err: problem("malformed", "more than one JSON value; send one event per element or line")}
	}
	var e portrait.Event
	switch {
	case w.Subject == nil || strings.TrimSpace(*w.Subject) == "":
		return Item{Err: problem("missing_subject", "\"subject\" is missing or empty")}
	case len(*w.Subject) > 256:
		return Item{Err: problem("invalid_subject", "\"subject\" is longer than 256 bytes")}
	case w.Type == nil || *w.Type == "":
		return Item{Err: problem("missing_type", "\"type\" is missing; name a declared event type")}
	case w.Time == nil:
		return Item{Err: problem("missing_time", "\"time\" is missing; give an RFC 3339 time such as 2026-11-29T10:00:00Z")}
	}
	t, err := time.Parse(time.RFC3339Nano, *w.Time)
	if err != nil {
		return Item{Err: problem("invalid_time", "\"time\" %q is not an RFC 3339 time such as 2026-11-29T10:00:00Z", *w.Time)}
	}
	e.Subject, e.Type, e.Time, e.IdempotencyKey = *w.Subject, *w.Type, t.UTC(), w.IdempotencyKey
	if len(e.IdempotencyKey) > 256 {
		return Item{Err: problem("invalid_idempotency_key", "\"idempotency_key\" is longer than 256 bytes")}
	}
	if len(w.Fields) > 0 && !bytes.Equal(w.Fields, []byte("null")) {
		fd := json.NewDecoder(bytes.NewReader(w.Fields))
		fd.UseNumber()
		if err := fd.Decode(&e.Fields); err != nil {
			return Item{Err: problem("invalid_fields", "\"fields\" must be an object of field name to value")}
		}
	}
	return Item{Event: e}
}

// jsonError renders a decoding error with the byte offset turned into a
// line and column, which is what people can find in their payload.
func jsonError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		l, c := position(data, syn.Offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d: %v", l, c, syn)
	case errors.As(err, &typ):
		return fmt.Sprintf("%q must be %s, not %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	}
	return err.Error()
}

func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col = 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
