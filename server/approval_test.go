package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
)

// art56 is the demo's answers to PIPL Art. 56's questions (FA-1), the
// body of POST /v1/usecases/{id}/assessment.
var art56 = json.RawMessage(demo.Assessment)

// namedKey registers a staff key for team/person name and returns it.
func (h *harness) namedKey(name string, role policy.Role) string {
	h.t.Helper()
	key := "test-" + strings.ReplaceAll(name, "/", "-")
	sum := sha256.Sum256([]byte(key))
	ctx := context.Background()
	err := h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(ctx, portrait.APIKey{ID: key, Name: name, Hash: sum[:], Role: role, Created: time.Now()})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return key
}

// TestCatalogApprovalHTTP: a change request is listed with its diff and
// what it holds, and approved by API by a named person other than its
// author with a judgement; the held label is then live (SG-7, RO-7).
func TestCatalogApprovalHTTP(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		src := strings.Replace(string(demo.Catalog), `"sports") >= 5'`, `"sports") >= 3'`, 1)
		changed, err := catalog.Parse(demo.CatalogName, []byte(src), label.Check)
		if err != nil {
			t.Fatal(err)
		}
		h.point.SetCatalog(changed)
		// alice restarts the node with the changed catalog.
		if _, err := oversight.New(ctx, oversight.Deps{Store: h.store, Point: h.point, Keys: h.keys, Log: h.log}, oversight.Options{Operator: "risk/alice"}); err != nil {
			t.Fatal(err)
		}
		var list struct {
			Changes []oversight.ChangeRequest `json:"changes"`
			Held    map[string]int64          `json:"held"`
		}
		if resp := h.do("GET", "/v1/catalog/changes", h.staff(policy.Auditor), "", nil, &list); resp.StatusCode != 200 || len(list.Changes) != 1 ||
			list.Changes[0].Status != oversight.StatusPending || list.Held["label:sports_fan"] != list.Changes[0].Index {
			t.Fatalf("changes: %d %+v", resp.StatusCode, list)
		}
		path := "/v1/catalog/changes/" + strconv.FormatInt(list.Changes[0].Index, 10) + "/approve"
		good := []byte(`{"data": "只读浏览类目，不含敏感字段", "algorithm": "计数阈值从5改为3，规则可解释"}`)
		alice, bob := h.namedKey("risk/alice", policy.Reviewer), h.namedKey("risk/bob", policy.Reviewer)
		for _, c := range []struct {
			name, path, token string
			body              []byte
			status            int
			code              string
		}{
			{"operator", path, h.namedKey("ops/olga", policy.Operator), good, 403, "forbidden"},
			{"author", path, alice, good, 403, "denied"},
			{"checkbox", path, bob, []byte(`{"data": "ok", "algorithm": "ok"}`), 400, "invalid"},
			{"no such request", "/v1/catalog/changes/99999/approve", bob, good, 404, "not_found"},
			{"not an index", "/v1/catalog/changes/abc/approve", bob, good, 400, "invalid"},
		} {
			var p struct{ Code, Requirement string }
			if resp := h.do("POST", c.path, c.token, "application/json", c.body, &p); resp.StatusCode != c.status || p.Code != c.code {
				t.Errorf("%s: %d %+v", c.name, resp.StatusCode, p)
			}
		}
		var cr oversight.ChangeRequest
		if resp := h.do("POST", path, bob, "application/json", good, &cr); resp.StatusCode != 200 || cr.Status != oversight.StatusApproved || cr.Approval.By != "reviewer:risk/bob" {
			t.Fatalf("approve: %d %+v", resp.StatusCode, cr)
		}
		list.Changes, list.Held = nil, nil
		h.do("GET", "/v1/catalog/changes", h.staff(policy.Auditor), "", nil, &list)
		if len(list.Held) != 0 || list.Changes[0].Status != oversight.StatusApproved {
			t.Errorf("after approval: %+v", list)
		}
	})
}

// TestNoticeChangeWhy: a subject who consented under an older notice
// version is asked again on the consents page, which says what changed
// in the purpose since that version — read from the catalog records of
// the audit log (CN-3).
func TestNoticeChangeWhy(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		h.seedSubject("alice", 1)
		src := strings.Replace(string(demo.Catalog), `    data_use: personalize.content.profiling
    notice_version: "1"`, `    data_use: personalize.content.profiling
    recipients: [ads.example.com]
    separate_consent: true
    notice_version: "2"`, 1)
		changed, err := catalog.Parse(demo.CatalogName, []byte(src), label.Check)
		if err != nil {
			t.Fatal(err)
		}
		h.point.SetCatalog(changed)
		if _, err := oversight.New(ctx, oversight.Deps{Store: h.store, Point: h.point, Keys: h.keys, Log: h.log}, oversight.Options{Operator: "risk/alice"}); err != nil {
			t.Fatal(err)
		}
		c, _ := signedIn(t, h, h.token("alice"), "/privacy/consents")
		page := fetchPage(t, c, h.url+"/privacy/consents")
		for _, want := range []string{`id="why-personalization"`, "第 1 版", "第 2 版", "接收方 无 → ads.example.com", "单独同意 不需要 → 需要", `id="grant-personalization"`} {
			if !strings.Contains(page, want) {
				t.Errorf("consents page lacks %q", want)
			}
		}
		if strings.Contains(page, `id="why-marketing"`) {
			t.Error("a purpose whose notice did not change is explained as changed")
		}
	})
}

// TestConsoleApproval: the console lists a change request with its diff
// and lets a named reviewer other than its author approve it with a
// judgement; the author's own approval is refused on the page (SG-7, RO-7).
func TestConsoleApproval(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h, base, _, _ := consoleHarnessOn(t, h)
		ctx := context.Background()
		src := strings.Replace(string(demo.Catalog), `"sports") >= 5'`, `"sports") >= 3'`, 1)
		changed, err := catalog.Parse(demo.CatalogName, []byte(src), label.Check)
		if err != nil {
			t.Fatal(err)
		}
		h.point.SetCatalog(changed)
		svc, err := oversight.New(ctx, oversight.Deps{Store: h.store, Point: h.point, Keys: h.keys, Log: h.log}, oversight.Options{Operator: "risk/alice"})
		if err != nil {
			t.Fatal(err)
		}
		crs, err := svc.ChangeRequests(ctx)
		if err != nil || len(crs) != 1 {
			t.Fatalf("change requests: %v %v", crs, err)
		}
		path := "/console/changes/" + strconv.FormatInt(crs[0].Index, 10)
		form := url.Values{"data": {"只读浏览类目，不含敏感字段"}, "algorithm": {"计数阈值从5改为3，规则可解释"}}
		post := func(c *http.Client, csrf string) (int, string) {
			t.Helper()
			f := url.Values{"csrf": {csrf}}
			for k, v := range form {
				f[k] = v
			}
			resp, err := c.PostForm(base+path, f)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		alice, acsrf, page := staffClient(t, base, h.namedKey("risk/alice", policy.Reviewer), "/console/changes")
		if !strings.Contains(page, `id="change-`) || !strings.Contains(page, `标签「运动爱好者」：定义已修改；须由作者以外的具名人员批准`) || strings.Contains(page, "sports_fan") || !strings.Contains(page, `id="approve-`) {
			t.Fatalf("changes page:\n%s", page)
		}
		if code, body := post(alice, acsrf); code != 403 || !strings.Contains(body, "SG-7") {
			t.Errorf("the author approved on the console: %d", code)
		}
		bob, bcsrf, _ := staffClient(t, base, h.namedKey("risk/bob", policy.Reviewer), "/console/changes")
		if code, body := post(bob, bcsrf); code != 200 || !strings.Contains(body, "risk/bob") {
			t.Errorf("approve on the console: %d\n%s", code, body)
		}
		if crs, _ := svc.ChangeRequests(ctx); crs[0].Status != oversight.StatusApproved || crs[0].Approval.Algorithm != form.Get("algorithm") {
			t.Errorf("after the console approval: %+v", crs[0])
		}
	})
}
