package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// TestProtectedAPI: protected attributes are accepted only when declared
// protected, read only by the auditor, and each read is logged (FP-2).
func TestProtectedAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		if resp := h.do("PUT", "/v1/subjects/alice/protected", op, "application/json", []byte(`{"gender":"F"}`), nil); resp.StatusCode != 204 {
			t.Fatalf("put: %d", resp.StatusCode)
		}
		var p problem
		if resp := h.do("PUT", "/v1/subjects/alice/protected", op, "application/json", []byte(`{"city":"Paris"}`), &p); resp.StatusCode != 400 || !strings.Contains(p.Detail, "protected: true") {
			t.Errorf("unprotected field: %d %+v", resp.StatusCode, p)
		}
		if resp := h.do("PUT", "/v1/subjects/alice/protected", op, "application/json", []byte(`{"ethnicity":"x"}`), &p); resp.StatusCode != 400 || p.Requirement != "FP-2" {
			t.Errorf("undeclared: %d %+v", resp.StatusCode, p)
		}
		var got struct{ Attributes map[string]string }
		if resp := h.do("GET", "/v1/subjects/alice/protected", h.staff(policy.Auditor), "", nil, &got); resp.StatusCode != 200 || got.Attributes["gender"] != "F" {
			t.Fatalf("auditor read: %d %+v", resp.StatusCode, got)
		}
		for _, role := range []policy.Role{policy.Admin, policy.Operator, policy.Reviewer, policy.Regulator} {
			if resp := h.do("GET", "/v1/subjects/alice/protected", h.staff(role), "", nil, nil); resp.StatusCode != 403 {
				t.Errorf("%s read protected attributes: %d", role, resp.StatusCode)
			}
		}
		if resp := h.do("GET", "/v1/subjects/alice/protected", h.token("alice"), "", nil, nil); resp.StatusCode != 403 {
			t.Errorf("subject read protected attributes: %d", resp.StatusCode)
		}
		if n := len(logRecords(t, h, "protected_access")); n != 1 {
			t.Errorf("%d protected_access records, want 1", n)
		}
	})
}

// TestMonitorAPI: price dispersion across segments raises an alert that
// lands in the audit log, in /metrics and in the HTML console (FP-1).
func TestMonitorAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		cat, err := catalog.Load("../monitor/testdata/catalog.yaml", label.Check)
		if err != nil {
			t.Fatal(err)
		}
		h.point.SetCatalog(cat) // a catalog that declares price_shown events
		ctx := context.Background()
		now := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
		var nd strings.Builder
		for i := range 20 {
			price := 100
			if i%2 == 0 {
				price = 130
			}
			fmt.Fprintf(&nd, `{"subject":"p%d","type":"price_shown","time":%q,"fields":{"item":"kettle","price":%d,"context":"app"}}`+"\n", i, now, price)
		}
		var er eventsResp
		if resp := h.do("POST", "/v1/events", h.staff(policy.Operator), "application/x-ndjson", []byte(nd.String()), &er); resp.StatusCode != 200 || er.Accepted != 20 {
			t.Fatalf("ingest: %d %+v", resp.StatusCode, er)
		}
		for i := range 20 {
			id := fmt.Sprintf("p%d", i)
			ps := h.keys.Pseudonym(id)
			subs, _ := h.store.Subjects(ctx, []portrait.Pseudonym{ps})
			c, err := h.keys.Open(subs[ps])
			if err != nil {
				t.Fatal(err)
			}
			st, _ := h.store.States(ctx, []portrait.Pseudonym{ps})
			d := h.point.Decide(policy.Request{State: st[ps], Action: policy.Derive, Purpose: "analytics", Caller: policy.Caller{Role: policy.System, ID: "test"}})
			b, _ := json.Marshal(label.Value{Label: "loyal", Kind: catalog.KindRule, Bool: i%2 == 0})
			err = h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
				return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: d.Grant, Pseudonym: ps, Label: "loyal", Version: 1, Sealed: c.Seal(b, []byte(ps+"/label/loyal")), Computed: time.Now()}})
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		var p problem
		if resp := h.do("GET", "/v1/monitor/report", h.staff(policy.Auditor), "", nil, &p); resp.StatusCode != 404 {
			t.Errorf("report before any run: %d", resp.StatusCode)
		}
		var rep struct {
			Alerts []struct{ Kind, Requirement string }
		}
		if resp := h.do("POST", "/v1/monitor/runs", h.staff(policy.Admin), "", nil, &rep); resp.StatusCode != 201 {
			t.Fatalf("run: %d", resp.StatusCode)
		}
		if len(rep.Alerts) != 1 || rep.Alerts[0].Kind != "price" || rep.Alerts[0].Requirement != "FP-1" {
			t.Errorf("alerts: %+v", rep.Alerts)
		}
		alerts := logRecords(t, h, "alert")
		if len(alerts) != 1 || alerts[0].Codes[0] != "FP-1" {
			t.Errorf("alert records: %+v", alerts)
		}
		metrics := get(t, h, "/metrics", "")
		if !strings.Contains(metrics, `portrait_monitor_alerts_total{kind="price"} 1`) || !strings.Contains(metrics, "portrait_price_segment_gap_max 0.3") {
			t.Errorf("metrics lack the price alert:\n%s", grep(metrics, "portrait_"))
		}
		page := get(t, h, "/console/monitor", h.staff(policy.Regulator))
		if !strings.Contains(page, "<svg") || strings.Contains(strings.ToLower(page), "<script") || !strings.Contains(page, "kettle") {
			t.Errorf("console page:\n%.1500s", page)
		}
		if resp := h.do("GET", "/v1/monitor/report", h.staff(policy.Auditor), "", nil, nil); resp.StatusCode != 200 {
			t.Errorf("report: %d", resp.StatusCode)
		}
		if resp := h.do("POST", "/v1/monitor/proxies/loyal/clear", h.staff(policy.Reviewer), "application/json", []byte(`{"reason":"ok"}`), &p); resp.StatusCode != 404 {
			t.Errorf("clear unflagged: %d %+v", resp.StatusCode, p)
		}
		// FP-1: the same gap in three consecutive runs recommends halting the
		// declared pricing use-case; the escalation is logged and counted.
		var esc struct {
			Escalations []struct {
				Item    string
				Runs    int `json:"consecutive_runs"`
				Actions map[string]string
			}
		}
		for range 2 {
			if resp := h.do("POST", "/v1/monitor/runs", h.staff(policy.Auditor), "", nil, &esc); resp.StatusCode != 201 {
				t.Fatalf("run: %d", resp.StatusCode)
			}
		}
		if len(esc.Escalations) != 1 || esc.Escalations[0].Item != "kettle" || esc.Escalations[0].Runs != 3 || esc.Escalations[0].Actions["dynamic_price"] != "recommend_halt" {
			t.Errorf("escalations: %+v", esc.Escalations)
		}
		if len(logRecords(t, h, "escalation")) != 1 {
			t.Error("the escalation is not in the audit log")
		}
		if metrics := get(t, h, "/metrics", ""); !strings.Contains(metrics, `portrait_price_escalations_total{action="recommend_halt"} 1`) {
			t.Errorf("metrics lack the escalation:\n%s", grep(metrics, "portrait_price"))
		}
	})
}

func get(t *testing.T, h *harness, path, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", h.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func logRecords(t *testing.T, h *harness, kind string) []audit.Record {
	t.Helper()
	ctx := context.Background()
	size, _ := h.store.LogSize(ctx)
	ents, err := h.store.LogEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, e := range ents {
		var r audit.Record
		json.Unmarshal(e.Data, &r)
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}
