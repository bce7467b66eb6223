package server_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
)

// get fetches path as token with an Accept header and returns the body.
func (h *harness) get(path, token, accept string) (*http.Response, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestFilingAndRecordsHTTP: the inspectors read the filing and the record of
// processing as JSON or HTML in either language, and a catalog swapped in
// at run time shows in the filing's history (FA-3, FA-4, RO-1).
func TestFilingAndRecordsHTTP(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		reg := h.staff(policy.Regulator)
		var f oversight.Filing
		if resp := h.do("GET", "/v1/filing", reg, "", nil, &f); resp.StatusCode != 200 || len(f.History) != 1 || f.Lang != "zh-CN" {
			t.Fatalf("filing: %d %+v", resp.StatusCode, f.History)
		}
		resp, page := h.get("/v1/filing?lang=en", reg, "text/html")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(page, []byte("Algorithm filing record")) {
			t.Errorf("filing page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp, page := h.get("/v1/records/processing?format=html", h.staff(policy.Auditor), ""); resp.StatusCode != 200 || !bytes.Contains(page, []byte("个人信息处理活动记录")) {
			t.Errorf("processing page: %d", resp.StatusCode)
		}
		var p oversight.Processing
		if resp := h.do("GET", "/v1/records/processing?lang=en", h.staff(policy.Auditor), "", nil, &p); resp.StatusCode != 200 || len(p.Purposes) != len(h.point.Catalog().Purposes) || p.Lang != "en" {
			t.Errorf("processing: %d %+v", resp.StatusCode, p)
		}

		changed, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
		if err != nil {
			t.Fatal(err)
		}
		changed.Version = "2"
		changed.Handler.Officer = "privacy-officer@example.com"
		h.point.SetCatalog(changed)
		f = oversight.Filing{}
		h.do("GET", "/v1/filing?format=json", reg, "", nil, &f)
		if len(f.History) != 2 || f.History[1].Version != "2" || len(f.History[1].Changed) != 1 || f.History[1].Changed[0] != "handler" ||
			f.Provider.Officer != "privacy-officer@example.com" {
			t.Errorf("after the catalog changed: %+v", f.History)
		}
	})
}

// TestEvidenceHTTP: the auditor and the regulator download the signed
// evidence pack and verify it offline with the handler's public key; a
// changed byte fails (FA-2, RO-1).
func TestEvidenceHTTP(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.consent("erin", "personalization", "granted")
		pub := h.keys.ReceiptKey().Public().(ed25519.PublicKey)
		for _, role := range []policy.Role{policy.Auditor, policy.Regulator} {
			resp, data := h.get("/v1/evidence", h.staff(role), "")
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", role, resp.StatusCode, data)
			}
			ev, err := oversight.Verify(data, pub)
			if err != nil {
				t.Fatalf("%s: %v", role, err)
			}
			if ev.Log.Stats.Size < 2 || !strings.Contains(ev.Log.Retention, "never pruned") {
				t.Errorf("%s: log evidence %+v", role, ev.Log)
			}
			tampered := bytes.Replace(data, []byte(`"consent"`), []byte(`"consenT"`), 1)
			if _, err := oversight.Verify(tampered, pub); !errors.Is(err, oversight.ErrSignature) {
				t.Errorf("%s: tampered bundle: %v", role, err)
			}
		}
	})
}

// TestBreachHTTP: an admin records a breach notice; a missing part is a 400
// naming it; inspectors list the notices (RO-3).
func TestBreachHTTP(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		adm := h.staff(policy.Admin)
		body := map[string]any{"categories": []string{"user.contact.email"}, "cause": "c", "harm": "h", "measures": "m", "advice": "a", "contact": "dpo@example.com"}
		bad := map[string]any{}
		for k, v := range body {
			if k != "harm" {
				bad[k] = v
			}
		}
		var p problem
		raw, _ := json.Marshal(bad)
		if resp := h.do("POST", "/v1/breaches", adm, "application/json", raw, &p); resp.StatusCode != 400 || !strings.Contains(p.Detail, `"harm"`) || p.Requirement != "RO-3" {
			t.Errorf("missing harm: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("POST", "/v1/breaches", adm, "application/json", []byte(`{"categories":["user.contact.email"],"extra":1}`), &p); resp.StatusCode != 400 {
			t.Errorf("unknown key: %d", resp.StatusCode)
		}
		raw, _ = json.Marshal(body)
		var b oversight.Breach
		if resp := h.do("POST", "/v1/breaches", adm, "application/json", raw, &b); resp.StatusCode != 201 || b.Notice["zh-CN"] == "" || b.Notice["en"] == "" {
			t.Fatalf("breach: %d %+v", resp.StatusCode, b)
		}
		var list struct{ Breaches []oversight.Breach }
		if resp := h.do("GET", "/v1/breaches", h.staff(policy.Regulator), "", nil, &list); resp.StatusCode != 200 || len(list.Breaches) != 1 || list.Breaches[0].ID != b.ID {
			t.Errorf("list: %d %+v", resp.StatusCode, list)
		}
	})
}

// TestReportHTTP: anyone reports without an account, follows the report
// with its secret, and sees the admin's answer; oversized and flooding
// clients are refused (RO-8).
func TestReportHTTP(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		var rc oversight.ReportReceipt
		if resp := h.do("POST", "/v1/reports", "", "application/json", []byte(`{"description":"my data was sold","contact":"me@example.org"}`), &rc); resp.StatusCode != 201 || rc.Secret == "" {
			t.Fatalf("report: %d %+v", resp.StatusCode, rc)
		}
		var r oversight.Report
		if resp := h.do("GET", "/v1/reports/"+rc.ID+"?secret="+rc.Secret, "", "", nil, &r); resp.StatusCode != 200 || r.Status != "open" || r.Description != "my data was sold" {
			t.Errorf("follow: %d %+v", resp.StatusCode, r)
		}
		var p problem
		if resp := h.do("GET", "/v1/reports/"+rc.ID, "", "", nil, &p); resp.StatusCode != 400 {
			t.Errorf("no secret: %d", resp.StatusCode)
		}
		if resp := h.do("GET", "/v1/reports/"+rc.ID+"?secret=guess", "", "", nil, &p); resp.StatusCode != 404 {
			t.Errorf("wrong secret: %d", resp.StatusCode)
		}
		var list struct{ Reports []oversight.Report }
		if resp := h.do("GET", "/v1/reports", h.staff(policy.Auditor), "", nil, &list); resp.StatusCode != 200 || len(list.Reports) != 1 || list.Reports[0].Contact != "me@example.org" {
			t.Errorf("list: %d %+v", resp.StatusCode, list)
		}
		if resp := h.do("POST", "/v1/reports/"+rc.ID+"/answer", h.staff(policy.Admin), "application/json", []byte(`{"answer":"we stopped the sale and told the regulator"}`), &r); resp.StatusCode != 200 || r.Status != "fulfilled" {
			t.Fatalf("answer: %d %+v", resp.StatusCode, r)
		}
		h.do("GET", "/v1/reports/"+rc.ID+"?secret="+rc.Secret, "", "", nil, &r)
		if r.Answer != "we stopped the sale and told the regulator" {
			t.Errorf("the reporter does not see the answer: %+v", r)
		}

		big, _ := json.Marshal(map[string]string{"description": strings.Repeat("x", 20<<10)})
		if resp := h.do("POST", "/v1/reports", "", "application/json", big, &p); resp.StatusCode != 413 {
			t.Errorf("oversized: %d %+v", resp.StatusCode, p)
		}
		// The default burst is 5 per address: one was used above.
		for i := range 4 {
			if resp := h.do("POST", "/v1/reports", "", "application/json", []byte(`{"description":"again"}`), nil); resp.StatusCode != 201 {
				t.Fatalf("report %d: %d", i+2, resp.StatusCode)
			}
		}
		resp := h.do("POST", "/v1/reports", "", "application/json", []byte(`{"description":"flood"}`), &p)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || p.Code != "rate_limited" {
			t.Errorf("flood: %d %+v", resp.StatusCode, p)
		}
	})
}
