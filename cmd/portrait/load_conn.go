package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// connPool is the load commands' one HTTP client (load and load-apply).
// It sends HTTP/1.1 requests over keep-alive connections to one
// plain-HTTP server, each connection carrying one request at a time, and
// the goroutine that sends a request writes it and reads its answer
// itself. http.Transport runs two goroutines per connection and hands
// every request and answer between them and the caller: on a 2-core
// machine shared with the server under test those hand-offs are
// scheduling delays charged to the server, and CPU taken from it. This is
// the load generator's client only; it speaks nothing but plain
// HTTP/1.1 with a Content-Length or chunked answer (http.ReadResponse).
type connPool struct {
	base, key string // the server's URL; the API key every request carries
	addr      string
	idle      chan *poolConn
	dial      net.Dialer
}

type poolConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// newConnPool returns a pool for base, an http:// URL, keeping up to max
// idle connections; every request carries key as its bearer token. The
// load commands measure a server on the same machine: plain HTTP to a
// loopback address is what they are for.
func newConnPool(base, key string, max int) (*connPool, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("--server %q: the load generator speaks plain http:// only (use a loopback address)", base)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	return &connPool{base: base, key: key, addr: host, idle: make(chan *poolConn, max), dial: net.Dialer{Timeout: 5 * time.Second}}, nil
}

// call sends a request with the pool's key and, if body is not nil, the
// content type, and returns the status and the whole answer.
func (p *connPool) call(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.key)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	return p.do(ctx, req)
}

// do sends req and returns the status and the whole body. A connection
// is reused unless the answer or an error ends it.
func (p *connPool) do(ctx context.Context, req *http.Request) (int, []byte, error) {
	var pc *poolConn
	select {
	case pc = <-p.idle:
	default:
		c, err := p.dial.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return 0, nil, err
		}
		pc = &poolConn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c)}
	}
	st, body, keep, err := pc.roundTrip(req)
	if err != nil || !keep {
		pc.c.Close()
		return st, body, err
	}
	select {
	case p.idle <- pc:
	default:
		pc.c.Close()
	}
	return st, body, nil
}

func (pc *poolConn) roundTrip(req *http.Request) (status int, body []byte, keep bool, err error) {
	pc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := req.Write(pc.bw); err != nil {
		return 0, nil, false, err
	}
	if err := pc.bw.Flush(); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, body, err == nil && !resp.Close, err
}

// close closes the idle connections.
func (p *connPool) close() {
	for {
		select {
		case pc := <-p.idle:
			pc.c.Close()
		default:
			return
		}
	}
}
