package server

import (
	_ "embed"
	"fmt"
	"net/http"
	"slices"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

//go:embed sdk/portrait.js
var sdkJS []byte

// waysRoutes are the routes websites and apps use directly: the SDK, a
// subject's own events, and a GPC signal the browser reports.
func (s *Server) waysRoutes() []route {
	me := []policy.Role{policy.Subject}
	return []route{
		{"GET", "/sdk/portrait.js", public, "The browser SDK (ES module, text/javascript)", s.serveSDK},
		{"POST", "/v1/me/events", me, "Send my own events (JSON array or NDJSON), as the SDK does", s.postEvents},
		{"POST", "/v1/me/gpc", me, "Record the browser's Global Privacy Control signal: opt out of advertising, sale and sharing (CN-12)", s.postGPC},
		{"GET", "/v1/deliveries/dead", []policy.Role{policy.Admin, policy.Auditor}, "Events a destination did not take after every retry", s.getDeadLetters},
		{"POST", "/v1/deliveries/dead/replay", []policy.Role{policy.Admin}, "Send a dead letter to its destination once more", s.replayDeadLetter},
	}
}

func (s *Server) deliveries() (*delivery.Dispatcher, error) {
	if s.cfg.Deliveries == nil {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "no destinations are configured (serve --webhook or --nats-rights)")
	}
	return s.cfg.Deliveries, nil
}

func (s *Server) getDeadLetters(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	d, err := s.deliveries()
	if err != nil {
		return err
	}
	dead := d.Dead()
	if dead == nil {
		dead = []delivery.DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, deadLettersResponse{Dead: dead})
}

type replayBody struct {
	Destination string `json:"destination"`
	ID          string `json:"id"`
}

func (s *Server) replayDeadLetter(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	d, err := s.deliveries()
	if err != nil {
		return err
	}
	var b replayBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if err := d.Replay(r.Context(), b.Destination, b.ID); err != nil {
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return err
		}
		return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the destination did not take the event; it stays a dead letter", Err: err}
	}
	return writeJSON(w, http.StatusOK, statusResponse{Status: "delivered"})
}

func (s *Server) serveSDK(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(sdkJS)
	return err
}

func (s *Server) postGPC(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	rs, err := s.cfg.Ledger.GPC(r.Context(), c, consent.ByPseudonym(c.Pseudonym), r.UserAgent(), clientIP(r))
	if err != nil {
		return err
	}
	if rs == nil {
		rs = []consent.Receipt{}
	}
	return writeJSON(w, http.StatusOK, receiptsResponse{Receipts: rs})
}

// ownEvents refuses, one by one, events a subject token sends about
// anyone else: the token names one subject, and so may its events.
func (s *Server) ownEvents(items []ingest.Item, c policy.Caller) {
	if c.Role != policy.Subject {
		return
	}
	for i := range items {
		if items[i].Err == nil && s.cfg.Keys.Pseudonym(items[i].Event.SubjectID) != c.Pseudonym {
			items[i].Err = &ingest.Problem{Code: "forbidden", Reason: "a subject token may send only its own subject's events; set subject to the id the token was issued for"}
		}
	}
}

// CORS lets the listed origins (exact "scheme://host[:port]" strings) call
// the API from a browser: it answers their preflights and sets
// Access-Control-Allow-Origin for them only. Other origins get no CORS
// headers, so browsers keep the answer from their scripts, and their
// preflights a 403. Credentials are never allowed: the SDK authenticates
// with a bearer subject token, so no cookie rides along (no CSRF).
func CORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := origin != "" && slices.Contains(origins, origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
			if !allowed {
				http.Error(w, "origin not allowed; list it in serve --cors-origins", http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "X-Portrait-Denied")
		}
		next.ServeHTTP(w, r)
	})
}

// ParseOrigins splits a --cors-origins list and checks each entry is an
// exact origin: scheme and host, no path, no wildcard.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		scheme, rest, ok := strings.Cut(o, "://")
		if !ok || (scheme != "https" && scheme != "http") || rest == "" || strings.ContainsAny(rest, "/*?#@ ") {
			return nil, fmt.Errorf("--cors-origins: %q is not an exact origin such as https://shop.example.com (no path, no wildcard)", o)
		}
		out = append(out, o)
	}
	return out, nil
}
