package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
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
	items := itemsPool.get(len(raws))
	each(len(raws), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			items[i] = decodeOne(string(raws[i]))
		}
	})
	return items, nil
}

// decodeLines reads NDJSON. The lines are gathered first, into a few
// large strings (one copy of the body, whose substrings the decoded
// events' strings are, instead of an allocation for every key and value),
// then decoded on every core, each line into its own slot, so that a
// request's items are in its order and each error names its line as
// before.
//
// The items' strings share the body's memory: it lives as long as any of
// them, which is the request.
func decodeLines(r io.Reader) ([]Item, error) {
	w := lineWork.Get().(*lines)
	defer func() {
		w.spans = w.spans[:0]
		lineWork.Put(w)
	}()
	sc := bufio.NewScanner(r)
	sc.Buffer(w.buf[:0], 1<<20)
	var (
		blocks []string // full blocks of lines
		cur    strings.Builder
		spans  = w.spans[:0]
	)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(spans) >= MaxEvents {
			return nil, portrait.Errorf(portrait.ETOOLARGE, "more than %d events in one request; split the NDJSON stream", MaxEvents)
		}
		if cur.Len()+len(b) > cur.Cap() {
			// A new block, never a grown one: growing would copy the
			// lines gathered so far.
			if cur.Len() > 0 {
				blocks = append(blocks, cur.String())
			}
			size := min(max(2*cur.Cap(), 4<<10), 64<<10)
			cur = strings.Builder{}
			cur.Grow(max(size, len(b)))
		}
		spans = append(spans, lineSpan{line: line, block: len(blocks), start: cur.Len(), end: cur.Len() + len(b)})
		cur.Write(b)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, portrait.Errorf(portrait.ETOOLARGE, "line %d is longer than 1 MiB; one event per line, each under 1 MiB", line+1)
		}
		return nil, err
	}
	if len(spans) == 0 {
		return nil, portrait.Errorf(portrait.EINVALID, "the body holds no events; send one JSON object per line")
	}
	blocks = append(blocks, cur.String())
	w.spans = spans // kept for the next request, whatever it grew to
	items := itemsPool.get(len(spans))
	each(len(spans), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sp := spans[i]
			it := decodeOne(blocks[sp.block][sp.start:sp.end])
			if it.Err != nil {
				it.Err.Reason = fmt.Sprintf("line %d: %s", sp.line, it.Err.Reason)
			}
			items[i] = it
		}
	})
	return items, nil
}

// lineSpan is where one non-empty NDJSON line lies in the gathered body.
type lineSpan struct{ line, block, start, end int }

// lines is decodeLines' working space, kept between requests: the
// scanner's buffer and the spans, neither of which the items refer to.
// Keeping them spares the collector a request's largest allocations
// after the items themselves.
type lines struct {
	buf   []byte
	spans []lineSpan
}

var lineWork = sync.Pool{New: func() any { return &lines{buf: make([]byte, 0, 64<<10)} }}

func decodeOne(raw string) Item {
	if !utf8.ValidString(raw) {
		return Item{Err: problem("invalid_utf8", "the event is not valid UTF-8")}
	}
	w, ok := scanEvent(raw)
	if !ok {
		var p *Problem
		if w, p = decodeWire([]byte(raw)); p != nil {
			return Item{Err: p}
		}
	}
	return finish(w)
}

// finish checks a decoded event and returns it as an Item.
func finish(w event) Item {
	var e portrait.Event
	switch {
	case !w.hasSubject || strings.TrimSpace(w.subject) == "":
		return Item{Err: problem("missing_subject", "\"subject\" is missing or empty")}
	case len(w.subject) > 256:
		return Item{Err: problem("invalid_subject", "\"subject\" is longer than 256 bytes")}
	case w.typ == "":
		return Item{Err: problem("missing_type", "\"type\" is missing; name a declared event type")}
	case !w.hasTime:
		return Item{Err: problem("missing_time", "\"time\" is missing; give an RFC 3339 time such as 2026-11-29T10:00:00Z")}
	}
	t, err := time.Parse(time.RFC3339Nano, w.time)
	if err != nil {
		return Item{Err: problem("invalid_time", "\"time\" %q is not an RFC 3339 time such as 2026-11-29T10:00:00Z", w.time)}
	}
	e.SubjectID, e.Type, e.Time, e.IdempotencyKey = w.subject, w.typ, t.UTC(), w.idem
	if len(e.IdempotencyKey) > 256 {
		return Item{Err: problem("invalid_idempotency_key", "\"idempotency_key\" is longer than 256 bytes")}
	}
	if w.fieldsErr {
		return Item{Err: problem("invalid_fields", "\"fields\" must be an object of field name to value")}
	}
	e.Fields = w.fields
	return Item{Event: e}
}

// event is one event as read, before it is checked.
type event struct {
	subject, typ, time  string
	hasSubject, hasTime bool // present (an empty type is missing too)
	idem                string
	fields              map[string]any
	fieldsErr           bool // "fields" is not an object or null
}

// decodeWire decodes raw with encoding/json (unknown keys refused, keys
// matched as encoding/json matches them, numbers kept as json.Number). It
// is the reference the fast path is tested against and the one that
// words every syntax and type error.
func decodeWire(raw []byte) (event, *Problem) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return event{}, problem("malformed", "%s; an event is {\"subject\", \"type\", \"time\", \"idempotency_key\"?, \"fields\": {…}}", jsonError(raw, err))
	}
	if dec.More() {
		return event{}, problem("malformed", "more than one JSON value; send one event per element or line")
	}
	ev := event{idem: w.IdempotencyKey}
	if w.Subject != nil {
		ev.subject, ev.hasSubject = *w.Subject, true
	}
	if w.Type != nil {
		ev.typ = *w.Type
	}
	if w.Time != nil {
		ev.time, ev.hasTime = *w.Time, true
	}
	if len(w.Fields) > 0 && !bytes.Equal(w.Fields, []byte("null")) {
		fd := json.NewDecoder(bytes.NewReader(w.Fields))
		fd.UseNumber()
		if err := fd.Decode(&ev.fields); err != nil {
			ev.fieldsErr = true
		}
	}
	return ev, nil
}

// scanEvent decodes the common shape of an event without reflection:
// one object with the five keys spelt exactly, each at most once, string
// values, and fields an object (or null) whose strings carry no escapes.
// It gives the same event decodeWire would. Anything else — escapes,
// other spellings, unknown or repeated keys, other types, bad syntax,
// deep nesting — reports !ok, and decodeWire decides, so the error
// messages (with their line and field) are always encoding/json's.
// Decoding was 14 % of governed ingest, most of it reflection.
func scanEvent(raw string) (ev event, ok bool) {
	s := scanner{b: raw}
	if !s.next('{') {
		return event{}, false
	}
	if s.next('}') {
		return ev, s.end()
	}
	var seen [5]bool
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return event{}, false
		}
		var k int
		switch key {
		case "subject":
			k = 0
		case "type":
			k = 1
		case "time":
			k = 2
		case "idempotency_key":
			k = 3
		case "fields":
			k = 4
		default:
			return event{}, false
		}
		if seen[k] {
			return event{}, false
		}
		seen[k] = true
		s.ws()
		if k == 4 {
			switch {
			case s.literal("null"):
			case s.i < len(s.b) && s.b[s.i] == '{':
				v, ok := s.value(0)
				if !ok {
					return event{}, false
				}
				ev.fields = v.(map[string]any)
			default:
				return event{}, false
			}
		} else {
			v, ok := s.str()
			if !ok {
				return event{}, false
			}
			switch k {
			case 0:
				ev.subject, ev.hasSubject = v, true
			case 1:
				ev.typ = v
			case 2:
				ev.time, ev.hasTime = v, true
			case 3:
				ev.idem = v
			}
		}
		if s.next(',') {
			continue
		}
		if s.next('}') {
			return ev, s.end()
		}
		return event{}, false
	}
}

// scanner reads the JSON subset scanEvent accepts. Its methods skip
// white space before what they read. The strings it returns are
// substrings of b, not copies.
type scanner struct {
	b string
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c if it comes next.
func (s *scanner) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether nothing but white space is left.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) literal(lit string) bool {
	if strings.HasPrefix(s.b[s.i:], lit) {
		s.i += len(lit)
		return true
	}
	return false
}

// str reads a string without escapes and returns it (raw is valid
// UTF-8, checked before).
func (s *scanner) str() (string, bool) {
	if !s.next('"') {
		return "", false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// maxDepth bounds the nesting scanEvent follows; deeper values go to
// encoding/json.
const maxDepth = 32

// value reads one JSON value as encoding/json with UseNumber decodes it
// into an any.
func (s *scanner) value(depth int) (any, bool) {
	s.ws()
	if s.i >= len(s.b) || depth > maxDepth {
		return nil, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{':
		s.i++
		var m map[string]any
		if depth == 0 {
			m = newFields() // an event's fields: Recycle gives them back
		} else {
			m = map[string]any{}
		}
		if s.next('}') {
			return m, true
		}
		for {
			k, ok := s.str()
			if !ok || !s.next(':') {
				return nil, false
			}
			v, ok := s.value(depth + 1)
			if !ok {
				return nil, false
			}
			m[k] = v
			if s.next(',') {
				continue
			}
			return m, s.next('}')
		}
	case c == '[':
		s.i++
		a := []any{}
		if s.next(']') {
			return a, true
		}
		for {
			v, ok := s.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
			if s.next(',') {
				continue
			}
			return a, s.next(']')
		}
	case c == 't' && s.literal("true"):
		return true, true
	case c == 'f' && s.literal("false"):
		return false, true
	case c == 'n' && s.literal("null"):
		return nil, true
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return nil, false
}

// number reads a JSON number (RFC 8259 grammar) as a json.Number.
func (s *scanner) number() (any, bool) {
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return json.Number(s.b[start:s.i]), true
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

// fieldsPool keeps events' field maps that Recycle gave back, cleared: a
// map of a few fields was a fifth of the bytes a governed request
// allocated, and the collector's work grows with them.
var fieldsPool sync.Pool // of map[string]any

func newFields() map[string]any {
	if m, _ := fieldsPool.Get().(map[string]any); m != nil {
		return m
	}
	return make(map[string]any, 4)
}

// maxRecycled is the most fields a map may hold to be kept for reuse: a
// rare event with many fields should not keep a large map alive.
const maxRecycled = 16

// Recycle gives the field maps of items, which Decode made, back for
// Decode to reuse, and clears every item's fields. The caller must be done
// with the items: Ingest is (nothing it returns or stores refers to a
// field map: values are sealed, and field names are the body's strings,
// not the map's), so a handler that decodes, ingests and answers calls it
// last.
// The slice of items is kept too, cleared, if it is as Decode returned it.
func Recycle(items []Item) {
	for i := range items {
		m := items[i].Event.Fields
		items[i].Event.Fields = nil
		if m == nil || len(m) > maxRecycled {
			continue
		}
		clear(m)
		fieldsPool.Put(m)
	}
	if cap(items) > 0 && cap(items) <= MaxEvents {
		itemsPool.put(items)
	}
}

// itemsPool keeps the slices of items Recycle gave back.
var itemsPool slicePool[Item]
