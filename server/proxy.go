package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a reverse proxy the peer of every request is the proxy. The
// client's address (consent evidence, the violation-report rate limit) and
// whether it came over HTTPS (the Secure cookie flag) are then what the
// proxy says in Forwarded (RFC 7239) or X-Forwarded-For/-Proto — headers
// any client can also send. They are believed only from a peer in
// Config.TrustedProxies, and only as far back as the chain of trusted
// hops goes: the client is the right-most address not itself a trusted
// proxy, so an address a client wrote into the header is never taken.

// ParseProxies parses --trusted-proxies: comma-separated CIDR prefixes or
// single addresses.
func ParseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q is not a CIDR prefix (10.0.0.0/8) or an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// peer is what is known of a request's client once the trusted hops are
// peeled off.
type peer struct {
	addr   string // the client's IP address, without port
	secure bool   // the client's hop was HTTPS
}

type peerKey struct{}

// withPeer resolves r's client address and scheme and keeps them in its
// context for clientIP and secure.
func (s *Server) withPeer(r *http.Request) *http.Request {
	p := s.resolvePeer(r)
	return r.WithContext(context.WithValue(r.Context(), peerKey{}, p))
}

func (s *Server) resolvePeer(r *http.Request) peer {
	p := peer{addr: remoteIP(r.RemoteAddr), secure: r.TLS != nil}
	if !s.trusted(p.addr) {
		return p
	}
	hops, protos := forwarded(r.Header)
	// Walk from the nearest hop back, as long as each hop is a trusted
	// proxy that speaks for the one before it.
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // "unknown" or an obfuscated name: stop at the last address we can vouch for
		}
		p.addr = a.Unmap().String()
		if i < len(protos) && protos[i] != "" {
			p.secure = protos[i] == "https"
		}
		if !s.trusted(p.addr) {
			break
		}
	}
	return p
}

func (s *Server) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwarded returns the client addresses a proxy chain reports, the
// farthest first, and the scheme of each hop where known. Forwarded wins
// over the X-Forwarded-* headers when both are present.
func forwarded(h http.Header) (hops, protos []string) {
	if vs := h.Values("Forwarded"); len(vs) > 0 {
		for _, v := range vs {
			for _, elem := range strings.Split(v, ",") {
				var forHop, proto string
				for _, pair := range strings.Split(elem, ";") {
					k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if !ok {
						continue
					}
					val = strings.Trim(val, `"`)
					switch strings.ToLower(k) {
					case "for":
						forHop = forNode(val)
					case "proto":
						proto = strings.ToLower(val)
					}
				}
				hops, protos = append(hops, forHop), append(protos, proto)
			}
		}
		return hops, protos
	}
	for _, v := range h.Values("X-Forwarded-For") {
		for _, a := range strings.Split(v, ",") {
			hops = append(hops, remoteIP(strings.TrimSpace(a)))
		}
	}
	// X-Forwarded-Proto is the scheme the nearest proxy was reached by:
	// it belongs to the last hop only.
	if pr := h.Values("X-Forwarded-Proto"); len(pr) > 0 && len(hops) > 0 {
		protos = make([]string, len(hops))
		last := strings.Split(pr[len(pr)-1], ",")
		protos[len(hops)-1] = strings.ToLower(strings.TrimSpace(last[len(last)-1]))
	}
	return hops, protos
}

// forNode is the address of a Forwarded for= node: 192.0.2.60,
// "192.0.2.60:4711", "[2001:db8::17]:4711".
func forNode(v string) string {
	if strings.HasPrefix(v, "[") {
		if i := strings.Index(v, "]"); i > 0 {
			return v[1:i]
		}
	}
	return remoteIP(v)
}

// remoteIP is the host part of host:port, or s itself.
func remoteIP(s string) string {
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// clientIP is the client's address (evidence is truncated by the ledger):
// the peer, or what trusted proxies say the peer was.
func clientIP(r *http.Request) string {
	if p, ok := r.Context().Value(peerKey{}).(peer); ok {
		return p.addr
	}
	return remoteIP(r.RemoteAddr)
}

// secure reports whether the client reached us over HTTPS, directly or
// through a trusted proxy: cookies are then marked Secure.
func secure(r *http.Request) bool {
	if p, ok := r.Context().Value(peerKey{}).(peer); ok {
		return p.secure
	}
	return r.TLS != nil
}
