package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// liveCatalog is the demo catalog with its recommender and its credit
// decision switched live (the demo declares them not live).
func liveCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	src := demo.Catalog
	if !bytes.Contains(src, []byte("live:")) {
		src = bytes.Replace(src, []byte("    kind: recommendation\n"), []byte("    kind: recommendation\n    live: true\n"), 1)
		src = bytes.Replace(src, []byte("    kind: decision\n"), []byte("    kind: decision\n    live: true\n"), 1)
	}
	cat, err := catalog.Parse(demo.CatalogName, src, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func (h *harness) json(method, path, token string, body any, out any) *http.Response {
	h.t.Helper()
	b, _ := json.Marshal(body)
	return h.do(method, path, token, "application/json", b, out)
}

func (h *harness) addKey(role policy.Role, id string) string {
	h.t.Helper()
	key := "key-" + id
	sum := sha256.Sum256([]byte(key))
	err := h.store.Update(context.Background(), func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(context.Background(), portrait.APIKey{ID: id, Hash: sum[:], Role: role, Created: time.Now()})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return key
}

func wantProblem(t *testing.T, resp *http.Response, p problem, status int, requirement, inDetail string) {
	t.Helper()
	if resp.StatusCode != status || p.Requirement != requirement || !strings.Contains(p.Detail, inDetail) {
		t.Fatalf("got %d %+v, want %d %s containing %q", resp.StatusCode, p, status, requirement, inDetail)
	}
}

type recResp struct {
	Items []struct {
		ID           string
		Personalized bool
		Reasons      []string
	}
	Personalization int
	LabelsUsed      []string `json:"labels_used"`
}

// TestRecommendationsAPI: items in, recommendations out, marked and
// switched off by the dial at once (LP-4, LP-5, FB-2).
func TestRecommendationsAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.point.SetCatalog(liveCatalog(t))
		op := h.staff(policy.Operator)
		var p problem
		p = problem{}
		resp := h.json("POST", "/v1/items", op, map[string]any{"id": "x"}, &p)
		wantProblem(t, resp, p, 400, "", "JSON array")
		var items []portrait.Item
		for i := range 30 {
			cat := []string{"sports", "books", "home"}[i%3]
			items = append(items, portrait.Item{ID: fmt.Sprintf("%s-%d", cat, i), Categories: []string{cat}, Price: 10})
		}
		if resp := h.json("POST", "/v1/items", op, items, nil); resp.StatusCode != 200 {
			t.Fatalf("items: %d", resp.StatusCode)
		}
		h.consent("alice", "personalization", "granted")
		var evs []portrait.Event
		for i := 0; i < 30; i += 3 {
			evs = append(evs, portrait.Event{SubjectID: "alice", Type: "view", Time: time.Now().Add(-time.Hour), Fields: map[string]any{"item": fmt.Sprintf("sports-%d", i), "category": "sports"}})
		}
		if resp := h.json("POST", "/v1/events", op, evs, nil); resp.StatusCode != 200 {
			t.Fatalf("events: %d", resp.StatusCode)
		}
		for _, n := range []string{"0", "101", "ten"} {
			var p problem
			resp := h.do("GET", "/v1/recommendations?usecase=home_feed&subject=alice&n="+n, op, "", nil, &p)
			wantProblem(t, resp, p, 400, "", "")
		}
		p = problem{}
		resp = h.do("GET", "/v1/recommendations?usecase=promo_audience&subject=alice&n=5", op, "", nil, &p)
		wantProblem(t, resp, p, 400, "", "not a recommendation")
		var r recResp
		if resp := h.do("GET", "/v1/recommendations?usecase=home_feed&subject=alice&n=10", op, "", nil, &r); resp.StatusCode != 200 {
			t.Fatalf("recommend: %d", resp.StatusCode)
		}
		if len(r.Items) != 10 || r.Personalization != 100 || !r.Items[0].Personalized || !strings.HasPrefix(r.Items[0].ID, "sports") {
			t.Fatalf("LP-5: %+v", r)
		}
		// LP-4: the subject turns the dial to 0; the very next answer is
		// non-personalised.
		tok := h.token("alice")
		if resp := h.json("PUT", "/v1/me/personalization", tok, map[string]int{"level": 0}, nil); resp.StatusCode >= 300 {
			t.Fatalf("dial: %d", resp.StatusCode)
		}
		if resp := h.do("GET", "/v1/me/recommendations?usecase=home_feed&n=10", tok, "", nil, &r); resp.StatusCode != 200 {
			t.Fatalf("me/recommendations: %d", resp.StatusCode)
		}
		for _, it := range r.Items {
			if it.Personalized || r.Personalization != 0 {
				t.Errorf("LP-4: personalised after dial 0: %+v", it)
			}
		}
	})
}

type decisionResp struct {
	ID             string
	Status         string
	Outcome        *bool
	Score          *float64
	Contributions  map[string]float64
	Counterfactual *struct{ Field string }
	Explanation    map[string]string
	Notice         map[string]string
}

// TestDecisionsAndReviewAPI runs the high-risk path end to end: gate
// refusals, the decision, a halt, an appeal and its review (AD-2, AD-3,
// AD-5, AD-7, CN-11, RO-7).
func TestDecisionsAndReviewAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.point.SetCatalog(liveCatalog(t))
		op, adm := h.staff(policy.Operator), h.staff(policy.Admin)
		for _, id := range []string{"dave", "erin"} {
			h.consent(id, "credit", "granted")
			evs := []portrait.Event{{SubjectID: id, Type: "profile", Time: time.Now().Add(-time.Minute), Fields: map[string]any{"age": 35.0, "income": 9000.0}}}
			if resp := h.json("POST", "/v1/events", op, evs, nil); resp.StatusCode != 200 {
				t.Fatalf("profile: %d", resp.StatusCode)
			}
		}
		body := map[string]string{"usecase": "credit_limit", "subject": "dave"}
		var p problem
		resp := h.json("POST", "/v1/decisions", op, body, &p)
		wantProblem(t, resp, p, 403, "AD-5", "impact assessment")
		if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", op, art56, nil); resp.StatusCode != 403 {
			t.Fatalf("operator assessed: %d", resp.StatusCode)
		}
		if resp := h.json("POST", "/v1/usecases/credit_limit/assessment", adm, art56, nil); resp.StatusCode != 201 {
			t.Fatalf("assess: %d", resp.StatusCode)
		}
		p = problem{}
		resp = h.json("POST", "/v1/decisions", op, body, &p)
		wantProblem(t, resp, p, 403, "CN-11", "pre-use notice")
		dave, erin := h.token("dave"), h.token("erin")
		for _, tok := range []string{dave, erin} {
			if resp := h.json("POST", "/v1/me/usecases/credit_limit/notice", tok, nil, nil); resp.StatusCode != 201 {
				t.Fatalf("notice: %d", resp.StatusCode)
			}
		}
		var d decisionResp
		if resp := h.json("POST", "/v1/decisions", op, body, &d); resp.StatusCode != 201 {
			t.Fatalf("decision: %d", resp.StatusCode)
		}
		if d.Outcome == nil || d.Score == nil || len(d.Contributions) != 2 || d.Counterfactual == nil || d.Explanation["zh-CN"] == "" || !strings.Contains(d.Notice["en"], "high-risk") {
			t.Fatalf("AD-4/AD-7 answer: %+v", d)
		}

		// AD-7: an overseer halts; the next request says so; resuming restores it.
		p = problem{}
		resp = h.json("POST", "/v1/usecases/credit_limit/halt", adm, map[string]string{"reason": "complaints"}, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("halt: %d", resp.StatusCode)
		}
		p = problem{}
		resp = h.json("POST", "/v1/decisions", op, body, &p)
		wantProblem(t, resp, p, 403, "AD-7", "halted")
		if resp := h.json("POST", "/v1/usecases/credit_limit/resume", adm, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("resume: %d", resp.StatusCode)
		}

		// AD-3: erin may not appeal dave's decision; dave may.
		p = problem{}
		resp = h.json("POST", "/v1/me/decisions/"+d.ID+"/appeal", erin, map[string]string{"statement": "x"}, &p)
		wantProblem(t, resp, p, 404, "", "no decision")
		var rv portrait.Review
		if resp := h.json("POST", "/v1/me/decisions/"+d.ID+"/appeal", dave, map[string]string{"statement": "I was promoted."}, &rv); resp.StatusCode != 201 {
			t.Fatalf("appeal: %d", resp.StatusCode)
		}
		var q struct{ Reviews []portrait.Review }
		rev := h.staff(policy.Reviewer)
		if h.do("GET", "/v1/reviews", rev, "", nil, &q); len(q.Reviews) != 1 || q.Reviews[0].ID != rv.ID {
			t.Fatalf("queue: %+v", q)
		}
		var cs struct {
			Statement string
			Detail    struct{ Explanation map[string]string }
		}
		if h.do("GET", "/v1/reviews/"+rv.ID, rev, "", nil, &cs); cs.Statement != "I was promoted." || cs.Detail.Explanation["en"] == "" {
			t.Fatalf("case: %+v", cs)
		}
		// RO-7: a reviewer from the model's owning team is refused.
		owner := h.addKey(policy.Reviewer, "risk-models/omar")
		p = problem{}
		resp = h.json("POST", "/v1/reviews/"+rv.ID, owner, map[string]string{"outcome": "upheld", "reason": "fine"}, &p)
		wantProblem(t, resp, p, 403, "RO-7", "owns")
		if resp := h.json("POST", "/v1/reviews/"+rv.ID, rev, map[string]string{"outcome": "overturned", "reason": "Promotion confirmed."}, nil); resp.StatusCode != 200 {
			t.Fatalf("review: %d", resp.StatusCode)
		}
		var mine struct {
			Decisions []struct {
				ID      string
				Status  string
				Outcome *bool
				Final   *bool `json:"final_outcome"`
				Reviews []portrait.Review
			}
		}
		h.do("GET", "/v1/me/decisions", dave, "", nil, &mine)
		if len(mine.Decisions) != 1 || mine.Decisions[0].Status != "overturned" || *mine.Decisions[0].Final == *mine.Decisions[0].Outcome || mine.Decisions[0].Reviews[0].Reason != "Promotion confirmed." {
			t.Fatalf("subject's view: %+v", mine)
		}
		var over struct{ Reviews []portrait.Review }
		if resp := h.do("GET", "/v1/reviews/overdue", h.staff(policy.Auditor), "", nil, &over); resp.StatusCode != 200 || len(over.Reviews) != 0 {
			t.Fatalf("overdue: %d %+v", resp.StatusCode, over)
		}
	})
}
