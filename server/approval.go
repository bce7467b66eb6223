package server

import (
	"encoding/json"
	"net/http"
	"strconv"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
)

// approvers may approve a catalog change request (SG-7): a named admin or
// reviewer other than its author; the service checks the rest.
var approvers = []policy.Role{policy.Admin, policy.Reviewer}

func (s *Server) approvalRoutes() []route {
	if s.cfg.Oversight == nil {
		return nil
	}
	return []route{
		{"GET", "/v1/catalog/changes", staff, "Catalog change requests (new or changed labels and use-cases) with their diff, approval and status, and what is held (SG-7)", s.getChanges},
		{"POST", "/v1/catalog/changes/{index}/approve", approvers, "Approve a catalog change request with a judgement of the data and the algorithm; not by its author (SG-7, RO-7)", s.approveChange},
		{"POST", "/v1/catalog/changes/{index}/countersign", []policy.Role{policy.Admin}, "Record the regulator's signed countersignature of a change request's high-tier use-cases (SG-7)", s.countersignChange},
	}
}

func (s *Server) getChanges(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	list, err := s.cfg.Oversight.ChangeRequests(r.Context())
	if err != nil {
		return err
	}
	held, err := s.cfg.Oversight.Held(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, 200, changeList{Changes: list, Held: held})
}

// changeList is GET /v1/catalog/changes: the change requests and, per
// held label or use-case, the log index of the request that holds it.
type changeList struct {
	Changes []oversight.ChangeRequest `json:"changes"`
	Held    map[string]int64          `json:"held"`
}

func changeIndex(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("index"), 10, 64)
	if err != nil || n < 0 {
		return 0, portrait.Errorf(portrait.EINVALID, "change request %q: want its log index, a number (GET /v1/catalog/changes)", r.PathValue("index"))
	}
	return n, nil
}

func (s *Server) approveChange(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	n, err := changeIndex(r)
	if err != nil {
		return err
	}
	var j oversight.Judgement
	if err := readJSON(r, &j); err != nil {
		return err
	}
	cr, err := s.cfg.Oversight.Approve(r.Context(), c, n, j)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, cr)
}

func (s *Server) countersignChange(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	n, err := changeIndex(r)
	if err != nil {
		return err
	}
	var doc json.RawMessage
	if err := readJSON(r, &doc); err != nil {
		return err
	}
	cr, err := s.cfg.Oversight.Countersign(r.Context(), c, n, doc)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, cr)
}
