package server

import (
	"net/http"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// keyRoutes manage the staff API keys of named people (RO-7).
func (s *Server) keyRoutes() []route {
	admin := []policy.Role{policy.Admin}
	return []route{
		{"POST", "/v1/keys", admin, `Create a staff API key {"role", "name": "team/person", "expires_in"}; the key is in the answer, shown once. Roles: admin, operator, reviewer, auditor. expires_in: "720h", "90d" or "1y"; default 90d, at most 365d`, s.postKey},
		{"GET", "/v1/keys", []policy.Role{policy.Admin, policy.Auditor}, "Staff API keys in force: name, role, created, expires, last use (to the minute); never the key", s.getKeys},
		{"DELETE", "/v1/keys/{name...}", admin, "Revoke the key named team/person, at once on every node", s.deleteKey},
	}
}

// keyRequest is the body of POST /v1/keys.
type keyRequest struct {
	Role      policy.Role `json:"role" enum:"admin,operator,reviewer,auditor"`
	Name      string      `json:"name" pattern:"^[a-z0-9][a-z0-9._-]{0,62}/[a-z0-9][a-z0-9._-]{0,62}$" doc:"team/person: separation of duties compares the team with catalog owners and the person with appellants (RO-7)"`
	ExpiresIn string      `json:"expires_in,omitempty" default:"90d" doc:"lifetime: \"720h\", \"90d\" or \"1y\"; default 90 days, at most 365 days"`
}

func (s *Server) postKey(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var req keyRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.ExpiresIn != "" {
		d, err := catalog.ParseDuration(req.ExpiresIn)
		if err != nil {
			return portrait.Errorf(portrait.EINVALID, "expires_in %q: want a length such as \"720h\", \"90d\" or \"1y\" (default 90d, at most 365d)", req.ExpiresIn)
		}
		ttl = time.Duration(d)
	}
	k, err := s.cfg.Staff.Create(r.Context(), c, req.Name, req.Role, ttl)
	if err != nil {
		return err
	}
	// The key is in this answer only: no cache may keep it.
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, k)
}

func (s *Server) getKeys(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	ks, err := s.cfg.Staff.List(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, keysResponse{Keys: ks})
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	if _, err := s.cfg.Staff.Revoke(r.Context(), c, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
