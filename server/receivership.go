package server

import (
	"net/http"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

// Receivership is a regulator's takeover (接管) of a company engine: the
// receiver's key, registered by the signed order, has admin powers, and
// the company's own admin keys are frozen until the regulator ends it.
type Receivership struct {
	Order    string    `json:"order"`
	Receiver string    `json:"receiver"` // the receiver's API key id
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
}

// ReceiverPrefix starts the key id of every receiver key.
const ReceiverPrefix = "receiver:"

// SetReceivership puts the engine under receivership, or (nil) ends it.
func (s *Server) SetReceivership(r *Receivership) { s.receivership.Store(r) }

// checkReceivership refuses a receiver key outside its receivership, and
// any change by a company admin key during one (invariant 9, RO-6).
func (s *Server) checkReceivership(r *http.Request, c policy.Caller) error {
	rv := s.receivership.Load()
	if strings.HasPrefix(c.ID, ReceiverPrefix) && (rv == nil || c.ID != rv.Receiver) {
		return portrait.Errorf(portrait.EUNAUTHORIZED, "this receiver key belongs to a receivership that has ended")
	}
	if rv != nil && c.Role == policy.Admin && c.ID != rv.Receiver && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-6",
			Message: "the company's admin powers are frozen: the service is operated by a receiver under regulator order " + rv.Order + " (" + rv.Reason + ")"}
	}
	return nil
}
