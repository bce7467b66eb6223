package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apikey"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/witness"
)

// Config wires a Server.
type Config struct {
	Store    portrait.Store
	Point    *policy.Point
	Ledger   *consent.Ledger
	Keys     *keys.Keyring
	Log      *audit.Log
	Ingester *ingest.Ingester
	Logger   *slog.Logger
	// MaxBody is the largest request body accepted (default 32 MiB).
	MaxBody int64
	// TokenTTL is the lifetime of subject tokens (default 1h).
	TokenTTL time.Duration
	// Monitor runs the fairness, price and diversity monitors and keeps
	// protected attributes apart (FP-2); nil leaves its routes unavailable.
	Monitor *monitor.Monitor
	// Rights handles data-subject requests and the privacy centre.
	Rights *rights.Service
	// Demo offers a picker of DemoSubjects on the privacy-centre sign-in
	// page; never set it outside a demo.
	Demo         bool
	DemoSubjects []string
	// Apply gates use-cases and serves recommendations and decisions;
	// Review runs human review. Nil leaves their routes unavailable.
	Apply  *apply.Service
	Review *review.Service
	// Deriver derives labels and serves staff portraits and derivation
	// status; Audiences materialises audiences (CM-6). Nil leaves their
	// routes unavailable.
	Deriver   *derive.Engine
	Audiences *apply.Audiences
	// IdleTimeout closes a keep-alive connection idle this long
	// (default DefaultIdleTimeout). BodyGrace and MinBodyRate (bytes per
	// second) cut a request whose body trickles: after the grace, the
	// body must keep arriving at the rate (defaults DefaultBodyGrace,
	// DefaultMinBodyRate; a negative rate turns the check off).
	IdleTimeout time.Duration
	BodyGrace   time.Duration
	MinBodyRate int64
	// Oversight serves the processing record, the algorithm filing, the
	// evidence pack, breach notices and violation reports; nil leaves
	// their routes unavailable.
	Oversight *oversight.Service
	// Staff checks staff API keys and manages them; nil makes one over
	// Store and Log with the company's roles.
	Staff *apikey.Service
	// Deliveries sends subject-rights events to destinations; nil leaves
	// the dead-letter routes answering that none are configured.
	Deliveries *delivery.Dispatcher
	// TrustedProxies are the peers whose Forwarded and X-Forwarded-*
	// headers are believed for the client's address and scheme (proxy.go);
	// none by default.
	TrustedProxies []netip.Prefix
	// StoreTimeout bounds how long a decision, a recommendation or a key
	// check waits for the store before the request is answered 503 (the
	// call itself runs on to its end: settle); default DefaultStoreTimeout.
	StoreTimeout time.Duration
}

// Server is Portrait's HTTP API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	routes  []route
	metrics *metrics
	// regulated is set when the engine has joined a regulator node.
	regulated atomic.Bool
	// witness is the joined regulator's cosigning key: pages that show a
	// checkpoint's cosignature check it with this key when they show it,
	// rather than repeat that it was checked before publishing.
	witness atomic.Pointer[witness.Verifier]
	// receivership is the receivership in force, if any.
	receivership atomic.Pointer[Receivership]
	// overdue counts the settled calls still running after their request
	// was answered 503 (settle); past maxOverdue no new call starts.
	overdue atomic.Int64
}

// Regulated marks the engine as joined to a regulator node: from then on
// suspensions are imposed and lifted only by the regulator's signed
// orders (package regulator), and no company key — whatever its role —
// may suspend or lift anything (invariant 9, RO-6). key is the
// regulator's witness key, with which the console checks the cosignature
// on every checkpoint it shows.
func (s *Server) Regulated(key *witness.Verifier) {
	s.witness.Store(key)
	s.regulated.Store(true)
}

// errRegulated refuses a company key's suspension or lift on a joined
// engine.
var errRegulated = &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-6",
	Message: "this engine is joined to a regulator: suspensions are imposed and lifted only by the regulator's signed orders, not by any company key"}

// Public is the role set of routes anyone may call: health, metrics,
// OpenAPI and the audit log, which holds no personal data and exists to be
// verified by outsiders (FA-6).
var public = []policy.Role{""}

var staff = []policy.Role{policy.Admin, policy.Operator, policy.Reviewer, policy.Auditor, policy.Regulator}

// route is one endpoint. Roles lists who may call it: deny by default.
type route struct {
	method, pattern string
	roles           []policy.Role
	summary         string
	handle          func(w http.ResponseWriter, r *http.Request, c policy.Caller) error
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 32 << 20
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Staff == nil {
		cfg.Staff = apikey.New(apikey.Deps{Store: cfg.Store, Log: cfg.Log}, apikey.Options{Logger: cfg.Logger})
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.BodyGrace == 0 {
		cfg.BodyGrace = DefaultBodyGrace
	}
	if cfg.MinBodyRate == 0 {
		cfg.MinBodyRate = DefaultMinBodyRate
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), metrics: newMetrics()}
	if cfg.Ingester != nil {
		// Content detections at ingest, by kind and outcome (SM-1).
		s.metrics.reg.MustRegister(cfg.Ingester.Detections(), cfg.Ingester.LexiconFlags())
	}
	if cfg.Log != nil {
		s.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portrait_audit_integrity_failures_total",
			Help: "Checks that found the audit log not matching its hashes and signed checkpoint (tampering); any is an alert (FA-6)."},
			func() float64 { return float64(cfg.Log.Failures()) }))
	}
	s.routes = s.table()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	// The staff console's own pages (sign-in, review queue); routes in the
	// table under /console/ are more specific and win.
	s.mux.Handle("/console/", s.Console())
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := s.allowed(r); allow != nil {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.problem(w, r, portrait.Errorf(methodNotAllowed, "%s is not allowed on this path; it takes %s", r.Method, strings.Join(allow, ", ")))
			return
		}
		s.problem(w, r, portrait.Errorf(portrait.ENOTFOUND, "no route %s %s; see /openapi.json", r.Method, r.URL.Path))
	})
	return s
}

// methodNotAllowed is the problem code of a known path called with a
// method it does not take (405, with Allow).
const methodNotAllowed = "method_not_allowed"

// allowed lists the methods r's path is routed for, or nil when the path
// is not routed at all.
func (s *Server) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		if m == r.Method {
			continue
		}
		if _, pat := s.mux.Handler(&http.Request{Method: m, URL: r.URL, Host: r.Host}); pat != "" && pat != "/" {
			out = append(out, m)
		}
	}
	return out
}

// Route describes one endpoint and the roles that may call it ("" is anyone).
type Route struct {
	Method, Pattern string
	Roles           []policy.Role
}

// Routes lists the endpoints, for documentation and the role-matrix test.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, rt := range s.routes {
		out[i] = Route{rt.method, rt.pattern, rt.roles}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(r.URL.Path, "/privacy/") || strings.HasPrefix(r.URL.Path, "/console/") {
		// Pages: scripts only from this server, never framed, forms only
		// posted back here.
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
	}
	start := time.Now()
	r = s.withPeer(r)
	in := &reqInfo{trace: parseTrace(r.Header)}
	r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, in))
	h.Set("traceparent", in.trace.traceparent())
	if in.trace.state != "" {
		h.Set("tracestate", in.trace.state)
	}
	rec := &statusWriter{ResponseWriter: w, status: 200}
	// The mux records the matched pattern and path values on the request
	// it is given, which the access log then reads.
	r = s.limitBody(rec, r)
	defer func() { s.logAccess(r, rec.status, time.Since(start)) }()
	if err := checkURLText(r); err != nil {
		s.problem(rec, r, err)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// checkURLText applies portrait.CheckText to the path and the query: ids
// in them reach text columns (as lookups) on either engine.
func checkURLText(r *http.Request) error {
	if err := portrait.CheckText("the path", r.URL.Path); err != nil {
		return err
	}
	for k, vs := range r.URL.Query() {
		if err := portrait.CheckText("query parameter "+strconv.Quote(k), append(vs, k)...); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) table() []route {
	subjectStaff := []policy.Role{policy.Admin, policy.Operator}
	me := []policy.Role{policy.Subject}
	routes := []route{
		{"GET", "/healthz", public, "Liveness and store health", s.healthz},
		{"GET", "/metrics", public, "Prometheus metrics", s.serveMetrics},
		{"GET", "/openapi.json", public, "OpenAPI 3.0 description of this API", s.openapi},
		{"GET", "/v1/catalog", staff, "The loaded catalog, with the keys of the YAML", s.getCatalog},
		{"POST", "/v1/events", []policy.Role{policy.Admin, policy.Operator}, "Ingest events (JSON array or NDJSON)", s.postEvents},
		{"PUT", "/v1/subjects/{id}/consents/{purpose}", subjectStaff, "Record a subject's consent decision", s.putConsent},
		{"POST", "/v1/subjects/{id}/guardian-token", subjectStaff, "Issue a guardian token after the verified guardian flow, for one purpose (SM-3)", s.postGuardianToken},
		{"GET", "/v1/subjects/{id}/consents", subjectStaff, "A subject's consents with history", s.getConsents},
		{"POST", "/v1/subjects/{id}/tokens", subjectStaff, "Issue a subject token", s.postToken},
		{"DELETE", "/v1/me/token", me, "End the subject token this request carries, on every node (sign-out)", s.deleteToken},
		{"GET", "/v1/me/consents", me, "My consents with history", s.getConsents},
		{"PUT", "/v1/me/consents/{purpose}", me, "Grant, refuse or withdraw my consent", s.putConsent},
		{"POST", "/v1/receipts/verify", public, "Verify a signed consent receipt", s.verifyReceipt},
		{"GET", "/v1/receipts/key", public, "The handler's Ed25519 public key (base64) that signs receipts, exports and evidence packs, for offline verification", s.receiptKey},
		{"GET", "/v1/suspensions", staff, "Active suspensions", s.getSuspensions},
		{"POST", "/v1/suspensions", []policy.Role{policy.Regulator}, "Suspend a purpose, field, label, model or use-case (RO-6)", s.postSuspension},
		{"DELETE", "/v1/suspensions/{kind}/{id}", []policy.Role{policy.Regulator}, "Lift a suspension (RO-6)", s.deleteSuspension},
		{"GET", "/v1/log/checkpoint", public, "Latest signed checkpoint (text/plain signed note)", s.logCheckpoint},
		{"GET", "/v1/log/key", public, "The checkpoint verifier key (text/plain)", s.logKey},
		{"GET", "/v1/log/entries/{index}", public, "One audit-log entry, exactly as hashed", s.logEntry},
		{"GET", "/v1/log/entries", public, "Audit-log entries from (inclusive) to to (exclusive), at most 4096, exactly as hashed: {\"entries\": [base64, …]}", s.logEntries},
		{"GET", "/v1/log/proof/inclusion", public, "Inclusion proof of entry index in the tree of size", s.logInclusion},
		{"GET", "/v1/log/proof/consistency", public, "Consistency proof between two tree sizes", s.logConsistency},
	}
	routes = append(routes, s.rightsRoutes()...)
	routes = append(routes, s.engineRoutes()...)
	routes = append(routes, s.applyRoutes()...)
	routes = append(routes, s.oversightRoutes()...)
	routes = append(routes, s.approvalRoutes()...)
	routes = append(routes, s.keyRoutes()...)
	routes = append(routes, s.waysRoutes()...)
	return append(routes, s.monitorRoutes()...)
}

// wrap authenticates, authorises by role, limits the body, records metrics
// and turns errors into problem+json.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: 200, route: rt.method + " " + rt.pattern}
		defer func() {
			if v := recover(); v != nil {
				s.cfg.Logger.Error("panic", s.logAttrs(r, "panic", fmt.Sprint(v))...)
				s.problem(rec, r, portrait.Errorf(portrait.EINTERNAL, "internal error"))
			}
			s.metrics.observe(rt.method+" "+rt.pattern, rec.status, time.Since(start))
		}()
		caller, err := s.authenticate(r)
		noteCaller(r.Context(), caller)
		if err == nil {
			err = authorize(rt.roles, caller)
		}
		if err == nil {
			err = s.checkReceivership(r, caller)
		}
		if err != nil {
			s.problem(rec, r, err)
			return
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.cfg.MaxBody)
		if caller.Role == policy.Subject && r.Header.Get("Sec-GPC") == "1" {
			// CN-12: a Global Privacy Control signal on a subject's own
			// request is an opt-out of advertising, sale and sharing.
			if _, err := s.cfg.Ledger.GPC(r.Context(), caller, consent.ByPseudonym(caller.Pseudonym), r.UserAgent(), clientIP(r)); err != nil {
				s.problem(rec, r, err)
				return
			}
		}
		if err := rt.handle(rec, r, caller); err != nil {
			s.problem(rec, r, err)
		} else if observe != nil {
			observe(rec.route, "status", nil, rec.status, nil)
		}
	})
}

func authorize(roles []policy.Role, c policy.Caller) error {
	if slices.Equal(roles, public) {
		return nil
	}
	if c.Role == "" {
		return portrait.Errorf(portrait.EUNAUTHORIZED, "this endpoint needs Authorization: Bearer with a staff API key or a subject token")
	}
	if !slices.Contains(roles, c.Role) {
		return portrait.Errorf(portrait.EFORBIDDEN, "role %s may not call this endpoint", c.Role)
	}
	return nil
}

// authenticate returns the zero Caller when no credentials were sent;
// authorize then decides whether that is enough.
func (s *Server) authenticate(r *http.Request) (policy.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		// A browser on a console page carries the console session cookie
		// instead; only safe methods, since console forms check CSRF
		// themselves and the API's writes want a Bearer key.
		if ck, err := r.Cookie(consoleCookie); err == nil && strings.HasPrefix(r.URL.Path, "/console/") &&
			(r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if c, ok := s.checkStaffSession(r, ck.Value); ok {
				return c, nil
			}
		}
		return policy.Caller{}, nil
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return policy.Caller{}, portrait.Errorf(portrait.EUNAUTHORIZED, "Authorization must be \"Bearer TOKEN\"")
	}
	// The key or session is one indexed row: read without the request's
	// cancellation, which would cost two watcher goroutines (settle).
	k, err := settle(s, r, func(ctx context.Context) (keyCheck, error) { return s.bearer(ctx, tok) })
	if in := info(r.Context()); in != nil && err == nil && k.genRead {
		in.gen, in.genRead = k.gen, true
	}
	return k.caller, err
}

// keyCheck is what bearer found: the caller, and for a staff key the
// governance generation its check read.
type keyCheck struct {
	caller  policy.Caller
	gen     int64
	genRead bool
}

// bearer checks a subject token or staff key.
func (s *Server) bearer(ctx context.Context, tok string) (keyCheck, error) {
	if keys.IsToken(tok) {
		t, err := s.checkSubjectToken(ctx, tok)
		if err != nil {
			return keyCheck{}, err
		}
		return keyCheck{caller: policy.Caller{Role: policy.Subject, Pseudonym: t.Pseudonym}}, nil
	}
	// Unknown, revoked and expired keys are refused here, on every
	// request: the store's generation is read each time, and the key's
	// row whenever a revocation moved it (package apikey).
	c, gen, err := s.cfg.Staff.AuthenticateAt(ctx, tok)
	return keyCheck{caller: c, gen: gen, genRead: true}, err
}

// Problem is an RFC 9457 problem detail with Portrait's extensions.
type Problem struct {
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Status      int             `json:"status"`
	Detail      string          `json:"detail"`
	Code        string          `json:"code"`
	Requirement string          `json:"requirement,omitempty"`
	Reasons     []policy.Reason `json:"reasons,omitempty"`
}

var statuses = map[string]int{
	portrait.EINVALID:      http.StatusBadRequest,
	portrait.ENOTFOUND:     http.StatusNotFound,
	portrait.ECONFLICT:     http.StatusConflict,
	portrait.EUNAUTHORIZED: http.StatusUnauthorized,
	portrait.EFORBIDDEN:    http.StatusForbidden,
	portrait.EDENIED:       http.StatusForbidden,
	portrait.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	portrait.EUNAVAILABLE:  http.StatusServiceUnavailable,
	portrait.EINTERNAL:     http.StatusInternalServerError,
	methodNotAllowed:       http.StatusMethodNotAllowed,
}

func (s *Server) problem(w http.ResponseWriter, r *http.Request, err error) {
	p := Problem{Code: portrait.ErrorCode(err), Detail: portrait.ErrorMessage(err)}
	var denied *policy.Denied
	var perr *portrait.Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &denied):
		p.Code, p.Reasons = portrait.EDENIED, denied.Reasons
		p.Detail = denied.Reasons[0].Message
		p.Requirement = denied.Reasons[0].Requirement
	case errors.As(err, &tooBig):
		p.Code = portrait.ETOOLARGE
		p.Detail = fmt.Sprintf("the body is larger than the limit of %d bytes; split it into smaller requests", tooBig.Limit)
	case errors.As(err, &perr):
		p.Requirement = perr.Requirement
	}
	p.Status = statuses[p.Code]
	if p.Status == 0 {
		p.Status = 500
	}
	if tooSlow(r) {
		// Whatever the handler made of the failed read: the client is
		// told why, and the connection is closed.
		p.Code, p.Status = "timeout", http.StatusRequestTimeout
		p.Detail = fmt.Sprintf("the body arrived slower than %d bytes a second; send it at once", s.cfg.MinBodyRate)
		w.Header().Set("Connection", "close")
	}
	if p.Status >= 500 {
		s.cfg.Logger.Error("request failed", s.logAttrs(r, "err", err)...)
		if p.Code == portrait.EINTERNAL {
			p.Detail = "internal error"
		}
	}
	p.Type = "/problems/" + p.Code
	p.Title = http.StatusText(p.Status)
	w.Header().Set("Content-Type", "application/problem+json")
	if p.Status == http.StatusUnauthorized {
		// RFC 6750 §3: how to authenticate, and whether what was sent failed.
		ch := `Bearer realm="portrait"`
		if r.Header.Get("Authorization") != "" {
			ch += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", ch)
	}
	var wait *storeWait
	if errors.As(err, &wait) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.after.Seconds()))))
	}
	if p.Code == portrait.EDENIED {
		// Tells a legal refusal apart from a role refusal at a glance.
		w.Header().Set("X-Portrait-Denied", p.Requirement)
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// logAttrs names a request in a log line by its route pattern, never by
// its path: a path carries the raw subject id (/v1/subjects/{id}/…), and a
// log line is a copy that erasure cannot reach (invariant 4). The subject
// is named by its pseudonym instead, as the audit log names it.
func (s *Server) logAttrs(r *http.Request, attrs ...any) []any {
	route := r.Pattern
	if route == "" {
		route = "(no route)"
	}
	out := []any{"method", r.Method, "route", route}
	if strings.Contains(route, "/v1/subjects/{id}") {
		if id := r.PathValue("id"); id != "" {
			out = append(out, "subject", s.cfg.Keys.Pseudonym(id))
		}
	}
	out = append(out, attrs...)
	return append(out, traceAttrs(r)...)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	if observe != nil {
		if sw := routeWriter(w); sw != nil {
			data, _ := json.Marshal(v)
			observe(sw.route, "write", reflect.TypeOf(v), status, data)
		}
	}
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// observe, when set (by tests only), sees the type of every body a
// handler decodes (readJSON) or encodes (writeJSON), with the route: the
// contract tests hold the handlers to the document with it.
var observe func(route, dir string, t reflect.Type, status int, body []byte)

// routeWriter finds the statusWriter that wrap made for the route.
func routeWriter(w http.ResponseWriter) *statusWriter {
	for {
		if sw, ok := w.(*statusWriter); ok && sw.route != "" {
			return sw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

// readJSON decodes a small JSON body strictly: unknown keys are refused.
func readJSON(r *http.Request, v any) error {
	if observe != nil {
		observe(r.Pattern, "read", reflect.TypeOf(v).Elem(), 0, nil)
	}
	// Read whole (the body is limited by MaxBytesReader) so that an
	// unknown field can be found again, with its path, in what was sent.
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return &portrait.Error{Code: portrait.EINVALID, Message: "the body could not be read", Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return portrait.Errorf(portrait.EINVALID, "the body is not the JSON this endpoint takes: %s; see /openapi.json", jsonProblem(err, v, data))
	}
	if dec.More() {
		return portrait.Errorf(portrait.EINVALID, "the body holds more than one JSON value")
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	route  string // "METHOD pattern", on the writer wrap gives a handler
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the body
// rate's read deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the store is not reachable", Err: err}
	}
	out := health{Status: "ok"}
	if rv := s.receivership.Load(); rv != nil {
		out.Receivership = rv
	}
	if s.cfg.Apply != nil {
		// The dead-man switch (SG-5) stops the high tier, not the
		// engine: healthz stays 200 and says so.
		if silent, max, stopped := s.cfg.Apply.Silence(); max > 0 {
			out.Regulator = &regulatorHealth{SilentSeconds: int64(silent.Seconds()), MaxSilenceSeconds: int64(max.Seconds()), HighTierStopped: stopped}
		}
	}
	return writeJSON(w, 200, out)
}

func (s *Server) getCatalog(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	return writeJSON(w, 200, s.cfg.Point.Catalog())
}
