package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/policy"
)

type newKey struct {
	Name, Role, Key string
	Expires         time.Time
}

type keyList struct {
	Keys []struct {
		Name, Role       string
		Created, Expires time.Time
		LastUsed         time.Time `json:"last_used"`
		Expired          bool
	}
}

// TestStaffKeys: an admin creates, lists and revokes keys of named people
// through the API; refusals are problem+json naming the field; revoked and
// expired keys get 401 (CM-5, RO-6, RO-7).
func TestStaffKeys(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		admin := h.staff(policy.Admin)
		for _, tc := range []struct {
			body         string
			status       int
			code, req    string
			detailPrefix string
		}{
			{`{"role":"reviewer","name":"alice"}`, 400, "invalid", "RO-7", "name "},
			{`{"role":"reviewer","name":"Risk/Alice"}`, 400, "invalid", "RO-7", "name "},
			{`{"role":"reviewer"}`, 400, "invalid", "RO-7", "name "},
			{`{"role":"regulator","name":"risk/alice"}`, 400, "invalid", "RO-6", "role "},
			{`{"role":"superuser","name":"risk/alice"}`, 400, "invalid", "", "role "},
			{`{"role":"subject","name":"risk/alice"}`, 400, "invalid", "", "role "},
			{`{"role":"reviewer","name":"risk/alice","expires_in":"forever"}`, 400, "invalid", "", "expires_in "},
			{`{"role":"reviewer","name":"risk/alice","expires_in":"400d"}`, 400, "invalid", "", "expires_in "},
			{`{"role":"reviewer","name":"risk/alice","expires_in":"-5h"}`, 400, "invalid", "", "expires_in "},
			{`{"role":"reviewer","name":"risk/alice","key":"mine"}`, 400, "invalid", "", "the body"},
		} {
			var p problem
			resp := h.do("POST", "/v1/keys", admin, "application/json", []byte(tc.body), &p)
			if resp.StatusCode != tc.status || p.Code != tc.code || p.Requirement != tc.req || !strings.HasPrefix(p.Detail, tc.detailPrefix) ||
				resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: %d %+v, want %d %s %q starting %q", tc.body, resp.StatusCode, p, tc.status, tc.code, tc.req, tc.detailPrefix)
			}
		}

		var k newKey
		resp := h.do("POST", "/v1/keys", admin, "application/json", []byte(`{"role":"reviewer","name":"risk/alice","expires_in":"720h"}`), &k)
		if resp.StatusCode != 201 || k.Name != "risk/alice" || k.Role != "reviewer" || k.Key == "" ||
			k.Expires.Sub(time.Now().Add(720*time.Hour)).Abs() > time.Minute || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("create: %d %+v", resp.StatusCode, k)
		}
		var d newKey
		if resp := h.do("POST", "/v1/keys", admin, "application/json", []byte(`{"role":"operator","name":"ops/dan"}`), &d); resp.StatusCode != 201 ||
			d.Expires.Sub(time.Now().Add(90*24*time.Hour)).Abs() > time.Minute {
			t.Fatalf("default lifetime: %d %+v", resp.StatusCode, d)
		}
		var p problem
		if resp := h.do("POST", "/v1/keys", admin, "application/json", []byte(`{"role":"auditor","name":"risk/alice"}`), &p); resp.StatusCode != 409 || !strings.HasPrefix(p.Detail, "name ") {
			t.Errorf("duplicate name: %d %+v", resp.StatusCode, p)
		}

		// The new key works, as the person it names.
		if resp := h.do("GET", "/v1/reviews", k.Key, "", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("the new reviewer key: %d", resp.StatusCode)
		}
		// A reviewer may not make keys.
		if resp := h.do("POST", "/v1/keys", k.Key, "application/json", []byte(`{"role":"admin","name":"risk/alice2"}`), nil); resp.StatusCode != 403 {
			t.Errorf("reviewer created a key: %d", resp.StatusCode)
		}

		// The listing: names, roles, dates, last use; never the key.
		var list keyList
		resp = h.do("GET", "/v1/keys", h.staff(policy.Auditor), "", nil, &list)
		var alice, dan bool
		for _, e := range list.Keys {
			switch e.Name {
			case "risk/alice":
				alice = e.Role == "reviewer" && !e.Created.IsZero() && e.Expires.Equal(k.Expires) && !e.LastUsed.IsZero()
			case "ops/dan":
				dan = e.Role == "operator" && e.LastUsed.IsZero()
			}
		}
		if resp.StatusCode != 200 || !alice || !dan {
			t.Errorf("list: %d %+v", resp.StatusCode, list)
		}
		var raw json.RawMessage
		h.do("GET", "/v1/keys", admin, "", nil, &raw)
		sum := sha256.Sum256([]byte(k.Key))
		if strings.Contains(string(raw), k.Key) || strings.Contains(string(raw), "pk_") || strings.Contains(string(raw), hex.EncodeToString(sum[:])) ||
			strings.Contains(string(raw), base64.StdEncoding.EncodeToString(sum[:])) {
			t.Errorf("the listing shows key material: %s", raw)
		}

		// Revocation binds the next request; the name may hold '/' as is
		// or escaped.
		if resp := h.do("DELETE", "/v1/keys/risk/alice", admin, "", nil, nil); resp.StatusCode != 204 {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		p = problem{}
		if resp := h.do("GET", "/v1/reviews", k.Key, "", nil, &p); resp.StatusCode != 401 || p.Code != portrait.EUNAUTHORIZED {
			t.Errorf("revoked key: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("DELETE", "/v1/keys/risk/alice", admin, "", nil, nil); resp.StatusCode != 404 {
			t.Errorf("revoke twice: %d", resp.StatusCode)
		}
		if resp := h.do("DELETE", "/v1/keys/ops%2Fdan", admin, "", nil, nil); resp.StatusCode != 204 {
			t.Errorf("revoke escaped: %d", resp.StatusCode)
		}
		if resp := h.do("GET", "/v1/catalog", d.Key, "", nil, nil); resp.StatusCode != 401 {
			t.Errorf("revoked ops/dan: %d", resp.StatusCode)
		}

		// Expired keys get 401.
		ctx := context.Background()
		sum = sha256.Sum256([]byte("expired-key"))
		err := h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
			return tx.PutAPIKey(ctx, portrait.APIKey{ID: "k-exp", Name: "ops/old", Hash: sum[:], Role: policy.Operator,
				Created: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Second)})
		})
		if err != nil {
			t.Fatal(err)
		}
		p = problem{}
		if resp := h.do("GET", "/v1/catalog", "expired-key", "", nil, &p); resp.StatusCode != 401 || !strings.Contains(p.Detail, "expired") {
			t.Errorf("expired key: %d %+v", resp.StatusCode, p)
		}
	})
}

// TestStaffKeysSeparationOfDuties: keys created through the API carry
// their team/person name, so the review's separation of duties fires on
// them: the model's team may not review its decisions, and nobody may
// review their own appeal (RO-7).
func TestStaffKeysSeparationOfDuties(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.point.SetCatalog(liveCatalog(t))
		admin := h.staff(policy.Admin)
		if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", admin, art56, nil); resp.StatusCode != 201 {
			t.Fatalf("assess: %d", resp.StatusCode)
		}
		_, rv := appealed(h, "dave", "I was promoted last month.")
		create := func(name string) string {
			var k newKey
			if resp := h.json("POST", "/v1/keys", admin, map[string]string{"role": "reviewer", "name": name}, &k); resp.StatusCode != 201 {
				t.Fatalf("create %s: %d", name, resp.StatusCode)
			}
			return k.Key
		}
		decide := func(key string) (*http.Response, problem) {
			var p struct{ Detail, Requirement string }
			resp := h.json("POST", "/v1/reviews/"+rv, key, map[string]string{"outcome": "overturned", "reason": "Promotion confirmed."}, &p)
			return resp, problem{Detail: p.Detail, Requirement: p.Requirement}
		}
		// risk-models owns the credit model; dave is the appellant.
		for name, detail := range map[string]string{"risk-models/omar": "owns", "audit-team/dave": "own appeal"} {
			resp, p := decide(create(name))
			if resp.StatusCode != 403 || p.Requirement != "RO-7" || !strings.Contains(p.Detail, detail) {
				t.Errorf("%s reviewed: %d %+v", name, resp.StatusCode, p)
			}
		}
		if resp, p := decide(create("audit-team/ann")); resp.StatusCode != 200 {
			t.Fatalf("an independent reviewer: %d %+v", resp.StatusCode, p)
		}
		got, err := h.store.ReviewByID(context.Background(), rv)
		if err != nil || got.Reviewer != "audit-team/ann" {
			t.Errorf("the review names its reviewer %q, %v", got.Reviewer, err)
		}
	})
}

// TestRevokedKeyEndsConsoleSession: a console session stands on its key;
// revoking the key ends the session at the next page.
func TestRevokedKeyEndsConsoleSession(t *testing.T) {
	t.Parallel()
	h, base, dave, _ := consoleHarness(t)
	var k newKey
	if resp := h.json("POST", "/v1/keys", h.staff(policy.Admin), map[string]string{"role": "reviewer", "name": "audit-team/ann"}, &k); resp.StatusCode != 201 {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	c, _, _ := staffClient(t, base, k.Key, "/console/reviews/"+dave)
	if resp := h.do("DELETE", "/v1/keys/audit-team/ann", h.staff(policy.Admin), "", nil, nil); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	resp, err := c.Get(base + "/console/reviews")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("console after revocation: %d", resp.StatusCode)
	}
}
