package server_test

import (
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/policy"
)

// SM-3: a guardian's consent is accepted only with a token from the
// verified guardian flow; a "guardian": true the child's request sends is
// refused, and a subject cannot mint a token for itself.
func TestGuardianToken(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.consent("kid", "marketing", "refused") // the subject exists
		var pr problem
		body := `{"status":"granted","notice_version":"1","guardian":true}`
		if resp := h.do("PUT", "/v1/me/consents/personalization", h.token("kid"), "application/json", []byte(body), &pr); resp.StatusCode != 400 || pr.Requirement != "SM-3" {
			t.Errorf("guardian flag from the subject: %d %+v", resp.StatusCode, pr)
		}
		if resp := h.do("PUT", "/v1/subjects/kid/consents/personalization", h.staff(policy.Operator), "application/json", []byte(body), &pr); resp.StatusCode != 400 || pr.Requirement != "SM-3" {
			t.Errorf("guardian flag from staff: %d %+v", resp.StatusCode, pr)
		}
		if resp := h.do("POST", "/v1/subjects/kid/guardian-token", h.token("kid"), "application/json", []byte(`{"purpose":"personalization"}`), nil); resp.StatusCode != 403 {
			t.Errorf("subject minting a guardian token: %d", resp.StatusCode)
		}
		var tok struct {
			Token string `json:"guardian_token"`
		}
		if resp := h.do("POST", "/v1/subjects/kid/guardian-token", h.staff(policy.Operator), "application/json", []byte(`{"purpose":"personalization"}`), &tok); resp.StatusCode != 200 || !strings.HasPrefix(tok.Token, "pg1.") {
			t.Fatalf("verified flow: %d %+v", resp.StatusCode, tok)
		}
		forged := `{"status":"granted","notice_version":"1","guardian_token":"` + tok.Token + `x"}`
		if resp := h.do("PUT", "/v1/me/consents/personalization", h.token("kid"), "application/json", []byte(forged), &pr); resp.StatusCode != 403 || pr.Requirement != "SM-3" {
			t.Errorf("altered token: %d %+v", resp.StatusCode, pr)
		}
		var rc struct{ Guardian bool }
		good := `{"status":"granted","notice_version":"1","guardian_token":"` + tok.Token + `"}`
		if resp := h.do("PUT", "/v1/me/consents/personalization", h.token("kid"), "application/json", []byte(good), &rc); resp.StatusCode != 200 || !rc.Guardian {
			t.Errorf("token from the verified flow: %d %+v", resp.StatusCode, rc)
		}
	})
}
