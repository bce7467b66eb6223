package server

import (
	"encoding/json"
	"net/http"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rights"
)

// rightsRoutes are the data-subject rights routes, each for the subject
// (/v1/me/…) and for staff handling a request on their behalf
// (/v1/subjects/{id}/…), and the case lists and notice. The privacy-centre
// pages authenticate by session cookie, not by Bearer token, so they are
// mounted beside the API rather than in its route table.
func (s *Server) rightsRoutes() []route {
	if s.cfg.Rights == nil {
		return nil
	}
	s.mux.Handle("/privacy/", s.privacy())
	me := []policy.Role{policy.Subject}
	onBehalf := []policy.Role{policy.Admin, policy.Operator}
	caseStaff := []policy.Role{policy.Admin, policy.Operator, policy.Auditor, policy.Regulator}
	per := []struct {
		method, path, summary string
		handle                func(w http.ResponseWriter, r *http.Request, c policy.Caller) error
	}{
		{"GET", "/export", "Everything held about the subject (SR-1); ?signed=1 for a signed bundle (SR-2)", s.getExport},
		{"POST", "/erasure", "Erase the subject and return a signed receipt (SR-3)", s.postErasure},
		{"GET", "/labels", "The subject's labels with explanations (LP-3)", s.getLabels},
		{"DELETE", "/labels/{label}", "Deselect (?mode=deselect) or delete (?mode=delete) a label (LP-3)", s.deleteLabel},
		{"POST", "/labels/{label}/restore", "Restore a deselected or deleted label (LP-3)", s.restoreLabel},
		{"PUT", "/personalization", "Set the personalisation dial, {\"level\": 0..100} (LP-4, LP-5)", s.putPersonalization},
		{"PUT", "/fields/{field}", "Correct a profile field, {\"value\": …} (CM-2)", s.putField},
		{"POST", "/restriction", "Restrict processing to storage only (SR-7, CM-4)", s.postRestriction},
		{"DELETE", "/restriction", "Lift the restriction", s.deleteRestriction},
		{"POST", "/objection", "Object to profiling or marketing, {\"kind\": \"profiling|marketing\", \"withdraw\": false} (SR-7)", s.postObjection},
		{"GET", "/cases", "The subject's requests with deadlines (SR-4, SR-5)", s.getSubjectCases},
		{"POST", "/requests", "Open a request for staff, {\"type\": \"explanation|…\"} (SR-4)", s.postRequest},
	}
	var out []route
	for _, p := range per {
		out = append(out,
			route{p.method, "/v1/me" + p.path, me, p.summary, p.handle},
			route{p.method, "/v1/subjects/{id}" + p.path, onBehalf, p.summary + ", on the subject's behalf", p.handle})
	}
	return append(out,
		route{"GET", "/v1/cases", caseStaff, "All data-subject requests (SR-4)", s.getCases},
		route{"GET", "/v1/cases/overdue", caseStaff, "Open requests past their deadline (SR-5)", s.getOverdue},
		route{"POST", "/v1/cases/{case}/close", onBehalf, "Close a queued request, {\"status\": \"fulfilled|refused\", \"text\": …} (SR-4)", s.closeCase},
		route{"GET", "/v1/notice", public, "The privacy notice generated from the catalog, ?lang=en (CN-7, CN-10, LP-6)", s.getNotice},
	)
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("signed") == "1" {
		b, err := s.cfg.Rights.Export(r.Context(), c, ps)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, b)
	}
	doc, err := s.cfg.Rights.Access(r.Context(), c, ps)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, doc)
}

func (s *Server) postErasure(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	res, err := s.cfg.Rights.Erase(r.Context(), c, ps)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.AlreadyErased {
		status = http.StatusOK
	}
	return writeJSON(w, status, res)
}

func (s *Server) getLabels(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	ls, err := s.cfg.Rights.Labels(r.Context(), c, ps)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, labelsResponse{Labels: ls})
}

func (s *Server) deleteLabel(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	mode := r.URL.Query().Get("mode")
	if mode == "" {
		mode = rights.ModeDelete
	}
	if err := s.cfg.Rights.SuppressLabel(r.Context(), c, ps, r.PathValue("label"), mode); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) restoreLabel(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	if err := s.cfg.Rights.RestoreLabel(r.Context(), c, ps, r.PathValue("label")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) putPersonalization(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	var b personalizationBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Level == nil {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-5", Message: "the body needs \"level\": a whole number from 0 (none) to 100 (full)"}
	}
	if err := s.cfg.Rights.SetPersonalization(r.Context(), c, ps, *b.Level); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, personalizationResponse{Level: *b.Level})
}

func (s *Server) putField(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	var b fieldBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	var v any
	if len(b.Value) > 0 {
		if err := json.Unmarshal(b.Value, &v); err != nil {
			return portrait.Errorf(portrait.EINVALID, "\"value\" is not JSON: %v", err)
		}
	}
	if err := s.cfg.Rights.Correct(r.Context(), c, ps, r.PathValue("field"), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postRestriction(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	if err := s.cfg.Rights.Restrict(r.Context(), c, ps); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteRestriction(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	if err := s.cfg.Rights.Unrestrict(r.Context(), c, ps); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postObjection(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	var b objectionBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if err := s.cfg.Rights.Object(r.Context(), c, ps, b.Kind, b.Withdraw); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getSubjectCases(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	cs, err := s.cfg.Rights.Cases(r.Context(), ps)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, casesResponse{Cases: cs})
}

func (s *Server) postRequest(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	var b caseRequestBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	cs, err := s.cfg.Rights.Request(r.Context(), c, ps, b.Type)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, cs)
}

func (s *Server) getCases(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	cs, err := s.cfg.Rights.Cases(r.Context(), "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, casesResponse{Cases: cs})
}

func (s *Server) getOverdue(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	cs, err := s.cfg.Rights.Overdue(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, casesResponse{Cases: cs})
}

func (s *Server) closeCase(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b closeBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Status != rights.StatusFulfilled && b.Status != rights.StatusRefused {
		return portrait.Errorf(portrait.EINVALID, "status %q: want fulfilled or refused", b.Status)
	}
	cs, err := s.cfg.Rights.Close(r.Context(), c, r.PathValue("case"), b.Status == rights.StatusRefused, b.Text)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cs)
}

func (s *Server) getNotice(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	return writeJSON(w, http.StatusOK, s.cfg.Rights.Notice(lang(r)))
}
