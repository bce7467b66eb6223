package server

import (
	"net/http"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/policy"
)

// engineRoutes are the label, derivation and audience routes. The
// subject's own labels, and staff deleting or restoring them, are rights
// routes (/v1/me/labels, /v1/subjects/{id}/labels); the staff view of a
// subject's portrait for one purpose is /v1/subjects/{id}/portrait.
func (s *Server) engineRoutes() []route {
	var out []route
	subjectStaff := []policy.Role{policy.Admin, policy.Operator}
	if s.cfg.Deriver != nil {
		out = append(out,
			route{"GET", "/v1/subjects/{id}/portrait", subjectStaff, "A subject's labels for ?purpose=P, with provenance and explanations in zh-CN and en (CM-2, SR-1)", s.getPortrait},
			route{"GET", "/v1/labels", staff, "Declared labels with their versions, kinds and purposes (LP-1)", s.getLabelDefs},
			route{"GET", "/v1/derivation", staff, "Derivation status: batch runs, incremental counts, population model", s.getDerivation},
			route{"POST", "/v1/derivation", []policy.Role{policy.Admin}, "Run a batch derivation of every subject now", s.postDerivation},
		)
	}
	if s.cfg.Audiences != nil {
		out = append(out, route{"POST", "/v1/audiences", subjectStaff,
			"Materialise an audience, {\"purpose\": P, \"expression\": CEL over labels, \"output\": \"aggregate|pseudonymous|identified\"} (CM-6)", s.postAudience})
	}
	return out
}

type portraitResponse struct {
	Purpose  string            `json:"purpose"`
	Labels   []derive.View     `json:"labels"`
	Withheld []derive.Withheld `json:"withheld,omitempty"`
}

func (s *Server) getPortrait(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	purpose := r.URL.Query().Get("purpose")
	if purpose == "" {
		return portrait.Errorf(portrait.EINVALID, "a portrait is read for a purpose: add ?purpose=ID, one of the catalog's purposes")
	}
	views, withheld, err := s.cfg.Deriver.Portrait(r.Context(), c, ps, purpose, policy.Read)
	if err != nil {
		return err
	}
	// A staff read of personal data is on the record before it is shown.
	if _, err := s.record(r, audit.Record{Kind: "read", Time: time.Now().UTC(), Actor: actor(c), Pseudonym: ps, Purpose: purpose,
		Action: "portrait", Detail: map[string]any{"labels": len(views), "withheld": len(withheld)}}); err != nil {
		return err
	}
	return writeJSON(w, 200, portraitResponse{Purpose: purpose, Labels: views, Withheld: withheld})
}

func (s *Server) getLabelDefs(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	defs, err := s.cfg.Deriver.Labels()
	resp := labelDefsResponse{Labels: defs}
	if err != nil {
		resp.Problems = err.Error() // labels the engine cannot compile: not derived
	}
	return writeJSON(w, 200, resp)
}

func (s *Server) getDerivation(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	return writeJSON(w, 200, s.cfg.Deriver.Status())
}

func (s *Server) postDerivation(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	sum, err := s.cfg.Deriver.All(r.Context(), nil)
	if err != nil && len(sum.Errors) == 0 {
		return err
	}
	// Labels that could not be fitted (say k above the population) are
	// reported in the summary; the others were derived.
	return writeJSON(w, 200, sum)
}

func (s *Server) postAudience(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var req apply.Request
	if err := readJSON(r, &req); err != nil {
		return err
	}
	res, err := s.cfg.Audiences.Materialize(r.Context(), c, req)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, res)
}
