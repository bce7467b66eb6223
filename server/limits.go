package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Connection limits, the defaults of Config and of portrait serve's flags.
const (
	// DefaultIdleTimeout closes a keep-alive connection that sends no
	// new request for this long.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultBodyGrace and DefaultMinBodyRate bound a slow body: after
	// the grace, a body must keep arriving at the rate (as Apache's
	// mod_reqtimeout does with body=20,MinRate=500).
	DefaultBodyGrace   = 20 * time.Second
	DefaultMinBodyRate = 500 // bytes per second
	// headerTimeout bounds the request line and headers.
	headerTimeout = 10 * time.Second
)

// HTTPServer returns an http.Server for s with its connection limits: a
// header timeout, the idle timeout, and (in ServeHTTP) the minimum body
// rate. There is deliberately no whole-request timeout: it would cut a
// large upload that arrives steadily, while the rate cuts only a client
// that trickles.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s, ReadHeaderTimeout: headerTimeout, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)}
}

// errSlowBody is what a body read returns once the client has fallen below
// the minimum rate; the connection is then closed.
var errSlowBody = errors.New("the request body arrived slower than the server's minimum rate")

// slowBody enforces the minimum body rate on one request's body: before
// each read the connection's read deadline is set to start + grace +
// (bytes so far)/rate, so every byte that arrives buys 1/rate seconds and
// a client that trickles runs out of time however small its steps. At
// the end of the body the deadline is lifted, so that a long handler
// after a complete body is not cut.
type slowBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     float64
	n        int64
	timedOut atomic.Bool
}

type slowBodyKey struct{}

// limitBody wraps r's body with the minimum rate; requests without a body
// are left alone.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) *http.Request {
	if r.Body == nil || r.Body == http.NoBody || s.cfg.MinBodyRate <= 0 {
		return r
	}
	b := &slowBody{body: r.Body, rc: http.NewResponseController(w), start: time.Now(),
		grace: s.cfg.BodyGrace, rate: float64(s.cfg.MinBodyRate)}
	r = r.WithContext(context.WithValue(r.Context(), slowBodyKey{}, b))
	r.Body = b
	return r
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.timedOut.Load() {
		return 0, errSlowBody
	}
	due := b.start.Add(b.grace + time.Duration(float64(b.n)/b.rate*float64(time.Second)))
	b.rc.SetReadDeadline(due) // unsupported only on writers that have no connection
	n, err := b.body.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut.Store(true)
		return n, errSlowBody
	case err == io.EOF:
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *slowBody) Close() error { return b.body.Close() }

// tooSlow reports whether r's body was cut for arriving too slowly,
// whatever the handler made of the read error.
func tooSlow(r *http.Request) bool {
	b, ok := r.Context().Value(slowBodyKey{}).(*slowBody)
	return ok && b.timedOut.Load()
}
