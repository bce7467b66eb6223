package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
)

// inspectors may read the oversight documents: the handler's admin, the
// auditor and the regulator, both read-only inspectors (RO-1).
var inspectors = []policy.Role{policy.Admin, policy.Auditor, policy.Regulator}

// maxReportBody bounds a public violation report, far below MaxBody: anyone
// may send one.
const maxReportBody = 16 << 10

// oversightRoutes are the filing, records, evidence, breach and
// violation-report routes for auditors and regulators.
func (s *Server) oversightRoutes() []route {
	if s.cfg.Oversight == nil {
		return nil
	}
	admin := []policy.Role{policy.Admin}
	return []route{
		{"GET", "/v1/records/processing", inspectors, "Record of processing activities (GDPR 30; FA-4), JSON or HTML (?format=html, ?lang=en)", s.getProcessing},
		{"GET", "/v1/filing", inspectors, "Algorithm filing record with change history (ARR 24; FA-3), JSON or HTML", s.getFiling},
		{"GET", "/v1/evidence", inspectors, "Signed evidence pack for compliance audits and inspections (FA-2, RO-1, RO-2)", s.getEvidence},
		{"POST", "/v1/breaches", admin, "Record a personal-information breach and generate its notice (PIPL 57; RO-3)", s.postBreach},
		{"GET", "/v1/breaches", inspectors, "Recorded breaches with their notices (RO-3)", s.getBreaches},
		{"POST", "/v1/reports", public, "Report a suspected violation; no account needed (RO-8)", s.postReport},
		{"GET", "/v1/reports", inspectors, "Violation reports with deadlines (RO-8)", s.getReports},
		{"GET", "/v1/reports/{id}", public, "Follow a violation report with its secret (?secret=…)", s.followReport},
		{"POST", "/v1/reports/{id}/answer", admin, "Answer and close a violation report (RO-8)", s.answerReport},
	}
}

// wantsHTML reports whether the caller asked for a page: ?format=html, or a
// browser's Accept header without ?format=json.
func wantsHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "html":
		return true
	case "json":
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

func writeHTML(w http.ResponseWriter, render func(*bytes.Buffer) error) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := w.Write(buf.Bytes())
	return err
}

func (s *Server) getProcessing(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	p := s.cfg.Oversight.Processing(lang(r))
	if wantsHTML(r) {
		return writeHTML(w, func(b *bytes.Buffer) error { return p.HTML(b) })
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) getFiling(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	f, err := s.cfg.Oversight.Filing(r.Context(), lang(r))
	if err != nil {
		return err
	}
	if wantsHTML(r) {
		return writeHTML(w, func(b *bytes.Buffer) error { return f.HTML(b) })
	}
	return writeJSON(w, http.StatusOK, f)
}

func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	b, err := s.cfg.Oversight.Evidence(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", `attachment; filename="portrait-evidence.json"`)
	return writeJSON(w, http.StatusOK, b)
}

func (s *Server) postBreach(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var in oversight.BreachInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	b, err := s.cfg.Oversight.ReportBreach(r.Context(), c, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, b)
}

func (s *Server) getBreaches(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	list, err := s.cfg.Oversight.Breaches(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, breachesResponse{Breaches: list})
}

func (s *Server) postReport(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxReportBody)
	var in oversight.ReportInput
	if err := readJSON(r, &in); err != nil {
		return err
	}
	rc, err := s.cfg.Oversight.Report(r.Context(), clientIP(r), in)
	if errors.Is(err, oversight.ErrRateLimited) {
		// 429 has no application error code: it is about the client's
		// pace, not the request.
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", strconv.Itoa(60))
		w.WriteHeader(http.StatusTooManyRequests)
		return json.NewEncoder(w).Encode(Problem{Type: "/problems/rate_limited", Title: http.StatusText(http.StatusTooManyRequests),
			Status: http.StatusTooManyRequests, Detail: err.Error(), Code: "rate_limited", Requirement: "RO-8"})
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, rc)
}

func (s *Server) getReports(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	list, err := s.cfg.Oversight.Reports(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, reportsResponse{Reports: list})
}

func (s *Server) followReport(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	secret := r.URL.Query().Get("secret")
	if secret == "" {
		return portrait.Errorf(portrait.EINVALID, "following a report needs ?secret=, as returned when it was made")
	}
	rep, err := s.cfg.Oversight.Follow(r.Context(), r.PathValue("id"), secret)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) answerReport(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var body answerBody
	if err := readJSON(r, &body); err != nil {
		return err
	}
	rep, err := s.cfg.Oversight.Answer(r.Context(), c, r.PathValue("id"), body.Answer)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
