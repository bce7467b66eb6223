package server_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// postPurchases sends purchases of n buyers over the last 30 weeks, each
// buyer consenting to marketing, the purpose of purchase_forecast.
func (h *harness) postPurchases(n int) {
	h.t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()
	var b strings.Builder
	for i := range n {
		id := fmt.Sprintf("buyer%02d", i)
		if resp := h.consent(id, "marketing", "granted"); resp.StatusCode != 200 {
			h.t.Fatalf("consent: %d", resp.StatusCode)
		}
		k := 1 + i%5
		for j := range k {
			at := now.Add(-time.Duration(1+rng.IntN(210)+j*24) * time.Hour * 24 / 24)
			if j > 0 {
				at = now.Add(-time.Duration(rng.IntN(200*24)) * time.Hour)
			}
			fmt.Fprintf(&b, `{"subject":%q,"type":"purchase","time":%q,"fields":{"item":"cd%d","amount":12.5,"quantity":1,"price":12.5}}`+"\n",
				id, at.Format(time.RFC3339), j)
		}
	}
	if resp := h.do("POST", "/v1/events", h.staff(policy.Operator), "application/x-ndjson", []byte(b.String()), nil); resp.StatusCode != 200 {
		h.t.Fatalf("post events: %d", resp.StatusCode)
	}
}

// A purchase forecast end to end through the API, on both stores: batch
// derivation fits it; the staff portrait and the subject's privacy centre
// explain it in Chinese and English (invariant 6); the export carries it
// with its inputs (SR-2); an audience uses it only for a purpose the
// catalog declares it for (LP-1); withdrawal removes it at once (CN-4).
func TestPurchaseForecastEndToEnd(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		h.postPurchases(30)
		var sum struct {
			Subjects, Written int
			Errors            []string
		}
		if resp := h.do("POST", "/v1/derivation", h.staff(policy.Admin), "", nil, &sum); resp.StatusCode != 200 || sum.Written == 0 {
			t.Fatalf("batch derivation: %d %+v", resp.StatusCode, sum)
		}
		var p portraitBody
		if resp := h.do("GET", "/v1/subjects/buyer03/portrait?purpose=marketing", op, "", nil, &p); resp.StatusCode != 200 {
			t.Fatalf("portrait: %d", resp.StatusCode)
		}
		found := false
		for _, l := range p.Labels {
			if l.Label == "purchase_forecast" {
				found = true
				if l.Kind != "bgnbd" || !strings.Contains(l.Explanation["zh-CN"], "因此预计") || !strings.Contains(l.Explanation["en"], "expected in the next 90 days") {
					t.Errorf("forecast in the portrait: %+v", l)
				}
			}
		}
		if !found {
			t.Fatalf("no purchase_forecast in the portrait: %+v (derivation %+v)", p, sum)
		}

		tok := h.token("buyer03")
		c, _ := signedIn(t, h, tok, "/privacy/labels")
		zh := fetchPage(t, c, h.url+"/privacy/labels")
		en := fetchPage(t, c, h.url+"/privacy/labels?lang=en")
		if !strings.Contains(zh, `id="label-purchase_forecast"`) || !strings.Contains(zh, "您在过去共有4次购买") || !strings.Contains(zh, "最近一次在") ||
			!strings.Contains(zh, "因此预计") || !strings.Contains(en, "most recently on") {
			t.Errorf("privacy centre labels page lacks the forecast and its explanation:\n%s", zh)
		}

		var doc struct {
			Events []struct{ Type string }
			Labels []json.RawMessage
		}
		if resp := h.do("GET", "/v1/me/export", tok, "", nil, &doc); resp.StatusCode != 200 {
			t.Fatalf("export: %d", resp.StatusCode)
		}
		var inExport bool
		for _, l := range doc.Labels {
			s := string(l)
			if strings.Contains(s, "purchase_forecast") {
				inExport = strings.Contains(s, `"expected_purchases"`) && strings.Contains(s, `"p_alive"`) &&
					strings.Contains(s, `"purchases":4`) && strings.Contains(s, `"first_purchase"`) && strings.Contains(s, `"fit_customers"`)
			}
		}
		if !inExport || len(doc.Events) != 4 {
			t.Errorf("export: forecast with inputs %v, %d events; labels %s", inExport, len(doc.Events), doc.Labels)
		}

		var aud struct{ Size int }
		body := `{"purpose":"marketing","expression":"labels.purchase_forecast.p_alive >= 0.0 && labels.purchase_forecast.purchases >= 1"}`
		if resp := h.do("POST", "/v1/audiences", op, "application/json", []byte(body), &aud); resp.StatusCode != 200 || aud.Size != 30 {
			t.Errorf("audience over the forecast: %d, size %d, want 30", resp.StatusCode, aud.Size)
		}
		var pr problem
		body = `{"purpose":"personalization","expression":"labels.purchase_forecast.expected > 1.0"}`
		if resp := h.do("POST", "/v1/audiences", op, "application/json", []byte(body), &pr); resp.StatusCode != 400 || pr.Requirement != "LP-1" {
			t.Errorf("audience for an undeclared purpose: %d %+v", resp.StatusCode, pr)
		}

		// CN-4: withdrawal removes it at once.
		if resp := h.consent("buyer03", "marketing", "withdrawn"); resp.StatusCode != 200 {
			t.Fatalf("withdraw: %d", resp.StatusCode)
		}
		var ls struct{ Labels []struct{ Label string } }
		h.do("GET", "/v1/me/labels", tok, "", nil, &ls)
		for _, l := range ls.Labels {
			if l.Label == "purchase_forecast" {
				t.Errorf("forecast still held after withdrawal: %+v", ls)
			}
		}
		if page := fetchPage(t, c, h.url+"/privacy/labels"); strings.Contains(page, "因此预计") {
			t.Error("privacy centre still shows the forecast after withdrawal")
		}
	})
}
