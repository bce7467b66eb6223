package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/policy"
)

// postSportsViews sends n sports views of subject through the API.
func (h *harness) postSportsViews(subject string, n int) {
	h.t.Helper()
	var b strings.Builder
	now := time.Now().UTC()
	for i := range n {
		fmt.Fprintf(&b, `{"subject":%q,"type":"view","time":%q,"fields":{"item":"s%d","category":"sports","price":20}}`+"\n",
			subject, now.Add(-time.Duration(i+1)*time.Hour).Format(time.RFC3339), i)
	}
	if resp := h.do("POST", "/v1/events", h.staff(policy.Operator), "application/x-ndjson", []byte(b.String()), nil); resp.StatusCode != 200 {
		h.t.Fatalf("post events: %d", resp.StatusCode)
	}
}

type portraitBody struct {
	Purpose string
	Labels  []struct {
		Label, Kind string
		Version     int
		Current     bool
		Bool        bool
		EventCount  int `json:"event_count"`
		Inputs      []string
		Computed    time.Time
		Explanation map[string]string
	}
	Withheld []struct {
		Label   string
		Reasons []policy.Reason
	}
}

// CM-2, SR-1, LP-3: the staff portrait shows each label with provenance and
// explanations, purpose-bound, and withholds a deselected label.
func TestPortraitAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		for _, id := range []string{"pat", "quin", "ray", "sam"} {
			h.consent(id, "personalization", "granted")
			h.postSportsViews(id, 5)
		}
		var sum struct{ Subjects, Written int }
		if resp := h.do("POST", "/v1/derivation", h.staff(policy.Admin), "", nil, &sum); resp.StatusCode != 200 || sum.Subjects != 4 || sum.Written == 0 {
			t.Fatalf("batch derivation: %d %+v", resp.StatusCode, sum)
		}
		var p portraitBody
		if resp := h.do("GET", "/v1/subjects/pat/portrait?purpose=personalization", op, "", nil, &p); resp.StatusCode != 200 {
			t.Fatalf("portrait: %d", resp.StatusCode)
		}
		found := false
		for _, l := range p.Labels {
			if l.Label != "sports_fan" {
				continue
			}
			found = true
			if !l.Bool || l.Version != 1 || !l.Current || l.EventCount != 5 || l.Computed.IsZero() ||
				!strings.Contains(l.Explanation["zh-CN"], "浏览了5次") || !strings.Contains(l.Explanation["en"], "5 times") {
				t.Errorf("sports_fan: %+v", l)
			}
		}
		if !found {
			t.Fatalf("no sports_fan in %+v", p)
		}
		// The credit label is not part of the personalization view.
		for _, l := range p.Labels {
			if l.Label == "credit_score" {
				t.Errorf("credit_score shown for personalization")
			}
		}
		// LP-3: a deselected label is withheld with its reason.
		if resp := h.do("DELETE", "/v1/subjects/pat/labels/sports_fan?mode=deselect", op, "", nil, nil); resp.StatusCode >= 300 {
			t.Fatalf("deselect: %d", resp.StatusCode)
		}
		p = portraitBody{}
		h.do("GET", "/v1/subjects/pat/portrait?purpose=personalization", op, "", nil, &p)
		if len(p.Withheld) != 1 || p.Withheld[0].Label != "sports_fan" || p.Withheld[0].Reasons[0].Requirement != "LP-3" {
			t.Errorf("after deselect: withheld %+v", p.Withheld)
		}
		// Refusals: no purpose; a purpose the subject never consented to.
		var pr problem
		if resp := h.do("GET", "/v1/subjects/pat/portrait", op, "", nil, &pr); resp.StatusCode != 400 || !strings.Contains(pr.Detail, "?purpose=") {
			t.Errorf("no purpose: %d %+v", resp.StatusCode, pr)
		}
		if resp := h.do("GET", "/v1/subjects/pat/portrait?purpose=marketing", op, "", nil, &pr); resp.StatusCode != 403 || pr.Requirement != "CN-1" {
			t.Errorf("marketing without consent: %d %+v", resp.StatusCode, pr)
		}

		var defs struct {
			Labels []struct {
				ID      string
				Version int
			}
		}
		if resp := h.do("GET", "/v1/labels", h.staff(policy.Auditor), "", nil, &defs); resp.StatusCode != 200 || len(defs.Labels) != 6 {
			t.Errorf("label definitions: %d %+v", resp.StatusCode, defs)
		}
		var st struct {
			BatchRuns int `json:"batch_runs"`
			Labels    int
		}
		if resp := h.do("GET", "/v1/derivation", h.staff(policy.Auditor), "", nil, &st); resp.StatusCode != 200 || st.BatchRuns != 1 || st.Labels != 6 {
			t.Errorf("derivation status: %d %+v", resp.StatusCode, st)
		}
	})
}

// CM-6: audiences through the API — aggregate by default, identified
// refused for a purpose that does not allow it, bad expressions named.
func TestAudienceAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		op := h.staff(policy.Operator)
		for _, id := range []string{"ua", "ub", "uc", "ud"} {
			h.consent(id, "personalization", "granted")
			h.postSportsViews(id, 5)
		}
		h.do("POST", "/v1/derivation", h.staff(policy.Admin), "", nil, nil)
		var res struct {
			Output, By string
			Size       int
			Counts     map[string]int
			Pseudonyms []string
			LogIndex   int64 `json:"log_index"`
		}
		body := `{"purpose":"personalization","expression":"labels.sports_fan && labels.shopper_segment >= 0"}`
		if resp := h.do("POST", "/v1/audiences", op, "application/json", []byte(body), &res); resp.StatusCode != 200 ||
			res.Output != "aggregate" || res.Size != 4 || res.Pseudonyms != nil || res.By != "shopper_segment" || len(res.Counts) == 0 {
			t.Errorf("aggregate audience: %d %+v", resp.StatusCode, res)
		}
		var pr problem
		body = `{"purpose":"personalization","expression":"labels.sports_fan","output":"identified"}`
		if resp := h.do("POST", "/v1/audiences", op, "application/json", []byte(body), &pr); resp.StatusCode != 403 || pr.Requirement != "CM-6" {
			t.Errorf("identified: %d %+v", resp.StatusCode, pr)
		}
		body = `{"purpose":"personalization","expression":"labels.night_owl"}`
		if resp := h.do("POST", "/v1/audiences", op, "application/json", []byte(body), &pr); resp.StatusCode != 400 || pr.Requirement != "LP-1" || !strings.Contains(pr.Detail, "night_owl") {
			t.Errorf("undeclared label: %d %+v", resp.StatusCode, pr)
		}
	})
}
