package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// Every request gets one access-log line (at Info): method, route pattern
// — never the path, which carries raw subject ids — status, duration, the
// caller named pseudonymously (a subject by its pseudonym, staff by the
// name of their key, never the key), and the W3C trace context.
//
// Trace context (https://www.w3.org/TR/trace-context/) is parsed here
// rather than with OpenTelemetry: the server only needs to join the
// caller's trace and say which span it was, which is one header's
// grammar; the OpenTelemetry SDK would bring a dozen modules and an
// exporter nobody has configured. A valid traceparent is continued with
// a new span id; an absent or invalid one starts a new trace. The
// traceparent of this server's span and the caller's tracestate are
// echoed in the response and in the log line.

// reqInfo is what the access log learns while a request is served.
type reqInfo struct {
	caller string
	trace  traceContext
	// gen is the governance generation the staff key check read, if it
	// did (genRead): a decision or recommendation is decided at it
	// (keyCheckGeneration).
	gen     int64
	genRead bool
}

type reqInfoKey struct{}

func info(ctx context.Context) *reqInfo {
	in, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return in
}

// noteCaller records who is calling, for the access log.
func noteCaller(ctx context.Context, c policy.Caller) {
	in := info(ctx)
	if in == nil || c.Role == "" {
		return
	}
	switch {
	case c.Role == policy.Subject:
		in.caller = string("subject:" + c.Pseudonym) // a pseudonym
	case c.ID != "":
		in.caller = string(c.Role) + ":" + c.ID // the key's name, team/person
	default:
		in.caller = string(c.Role)
	}
}

// traceContext is a W3C trace context: the trace this request belongs to,
// the caller's span (parent) and this server's span.
type traceContext struct {
	traceID, parentID, spanID, flags string
	state                            string
}

// maxTraceState bounds the tracestate kept (the spec asks to propagate at
// least 512 characters).
const maxTraceState = 512

// parseTrace reads traceparent and tracestate from h and returns the
// context of this server's span.
func parseTrace(h http.Header) traceContext {
	tc := traceContext{spanID: randomHex(8)}
	if tp, ok := parseTraceparent(h.Get("traceparent")); ok {
		tc.traceID, tc.parentID, tc.flags = tp[0], tp[1], tp[2]
		// tracestate is meaningful only with a valid traceparent.
		if st := strings.Join(h.Values("tracestate"), ","); len(st) <= maxTraceState && printable(st) {
			tc.state = st
		}
		return tc
	}
	tc.traceID, tc.flags = randomHex(16), "00"
	return tc
}

// parseTraceparent returns trace-id, parent-id and flags of a version-00
// header (or of a later version's first fields, as the spec requires).
func parseTraceparent(v string) ([3]string, bool) {
	var out [3]string
	v = strings.TrimSpace(v)
	if len(v) < 55 || (len(v) > 55 && v[55] != '-') {
		return out, false
	}
	ver, trace, parent, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if v[2] != '-' || v[35] != '-' || v[52] != '-' || !lowerHex(ver) || ver == "ff" || (ver == "00" && len(v) != 55) ||
		!lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) ||
		trace == strings.Repeat("0", 32) || parent == strings.Repeat("0", 16) {
		return out, false
	}
	return [3]string{trace, parent, flags}, true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// traceparent is the header naming this server's span.
func (tc traceContext) traceparent() string {
	return "00-" + tc.traceID + "-" + tc.spanID + "-" + tc.flags
}

// logAccess writes the access-log line of one served request.
func (s *Server) logAccess(r *http.Request, status int, took time.Duration) {
	if !s.cfg.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	attrs := []any{"status", status, "duration_ms", float64(took.Microseconds()) / 1000}
	if in := info(r.Context()); in != nil && in.caller != "" {
		attrs = append(attrs, "caller", in.caller)
	}
	s.cfg.Logger.Info("request", s.logAttrs(r, attrs...)...)
}

// traceAttrs names the trace of r in a log line.
func traceAttrs(r *http.Request) []any {
	in := info(r.Context())
	if in == nil {
		return nil
	}
	out := []any{"trace_id", in.trace.traceID, "span_id", in.trace.spanID}
	if in.trace.parentID != "" {
		out = append(out, "parent_id", in.trace.parentID)
	}
	if in.trace.state != "" {
		out = append(out, "tracestate", in.trace.state)
	}
	return out
}
