package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/storetest"
)

// CN-4, AD-2, invariant 5: two `portrait serve` processes on one PostgreSQL
// database. Node B serves a subject — labels derived from its events,
// personalised recommendations, automated decisions — and so holds that
// subject's consent state, label memo and keys in its memory; the
// subject withdraws consent through node A; the very next request on
// node B honours it: the recommendation is served without
// personalisation and says why, the decision is refused naming CN-4, and
// the events B ingests next derive no label for the withdrawn purpose; and
// after the subject refuses automated decisions through node A, B's next
// decision goes to human review (AD-2).
// Each case warms B just before the withdrawal, so B holds the state
// the withdrawal makes stale.
//
// SQLite is one node only (docs/OPERATIONS.md; sqlite.DB.CommittedLogSize
// assumes one process owns the file), so there is no SQLite case.
func TestTwoNodesWithdrawal(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	const admin = "nodes-admin-key"
	master := newMaster(t)
	a := startKillable(t, dsn, master, admin, "--assessments", filepath.Join(t.TempDir(), "assessments"))
	b := startKillable(t, dsn, master, admin, "--assessments", filepath.Join(t.TempDir(), "assessments"))
	ctx := context.Background()
	must := func(url, method, path, body string, out any) {
		t.Helper()
		if _, err := try(ctx, url, method, path, admin, body, out); err != nil {
			t.Fatal(err)
		}
	}
	consent := func(url, subject, purpose, status string) {
		t.Helper()
		must(url, "PUT", "/v1/subjects/"+subject+"/consents/"+purpose, fmt.Sprintf(`{"status":%q,"notice_version":"1"}`, status), nil)
	}
	// calls is how many incremental derivations node B has run.
	calls := func() int {
		t.Helper()
		var st derive.Status
		must(b.url, "GET", "/v1/derivation", "", &st)
		return st.Calls
	}
	hasFan := func(url, subject string) bool {
		t.Helper()
		return strings.Contains(labelsOf(t, url, admin, []string{subject})[subject], "sports_fan=")
	}
	// ingest stores events through node B and waits until B has derived
	// them (derivation runs off the request, in B's queue).
	ingest := func(body string) {
		t.Helper()
		before := calls()
		var res ingestResponse
		must(b.url, "POST", "/v1/events", body, &res)
		if res.Accepted == 0 {
			t.Fatalf("nothing accepted: %+v", res)
		}
		for deadline := time.Now().Add(30 * time.Second); calls() == before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("node B did not derive the ingested events within 30 s")
			}
		}
	}

	must(b.url, "POST", "/v1/usecases/credit_limit/assessment", string(demo.Assessment), nil)
	var items strings.Builder
	items.WriteByte('[')
	for i := range 30 {
		if i > 0 {
			items.WriteByte(',')
		}
		cat := []string{"sports", "books", "home"}[i%3]
		fmt.Fprintf(&items, `{"id":"%s-%d","categories":[%q],"price":%d}`, cat, i, cat, 10+i)
	}
	items.WriteByte(']')
	must(b.url, "POST", "/v1/items", items.String(), nil)

	now := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	recommend := func(subject string) apply.Recommendation {
		t.Helper()
		var r apply.Recommendation
		must(b.url, "GET", "/v1/recommendations?subject="+subject+"&usecase=home_feed&n=5", "", &r)
		return r
	}
	personalised := func(r apply.Recommendation) (n int) {
		for _, it := range r.Items {
			if it.Personalized {
				n++
			}
		}
		return n
	}
	decide := func(subject string) (int, error) {
		return try(ctx, b.url, "POST", "/v1/decisions", admin, `{"usecase":"credit_limit","subject":"`+subject+`"}`, nil)
	}
	cases := []struct {
		name, purpose string
		warm          func(t *testing.T, subject string) // on B, before the withdrawal
		withdraw      func(t *testing.T, subject string) // on A; nil withdraws consent to purpose
		next          func(t *testing.T, subject string) // B's next request, after it
	}{{
		name: "recommendation", purpose: "personalization",
		warm: func(t *testing.T, s string) {
			if r := recommend(s); r.Personalization == 0 || r.NotPersonalized != "" || personalised(r) == 0 {
				t.Fatalf("before the withdrawal: %+v, want personalised items", r)
			}
		},
		next: func(t *testing.T, s string) {
			r := recommend(s)
			if r.Personalization != 0 || personalised(r) != 0 || len(r.LabelsUsed) != 0 || !strings.Contains(r.NotPersonalized, "CN-4") {
				t.Errorf("node B's next recommendation after a withdrawal on node A: personalization %d, %d items personalised, labels %v, not personalised %q; want 0, 0, none, CN-4",
					r.Personalization, personalised(r), r.LabelsUsed, r.NotPersonalized)
			}
		},
	}, {
		name: "decision", purpose: "credit",
		warm: func(t *testing.T, s string) {
			if code, err := decide(s); code != 201 {
				t.Fatalf("before the withdrawal: %d %v", code, err)
			}
		},
		next: func(t *testing.T, s string) {
			code, err := decide(s)
			if code != 403 || err == nil || !strings.Contains(err.Error(), `"CN-4"`) {
				t.Errorf("node B's next decision after a withdrawal on node A: %d %v; want 403 naming CN-4", code, err)
			}
		},
	}, {
		// AD-2: the subject refuses purely automated decisions for the
		// use-case through node A; B's next decision goes to a person.
		name: "objection",
		warm: func(t *testing.T, s string) {
			if code, err := decide(s); code != 201 {
				t.Fatalf("before the objection: %d %v", code, err)
			}
		},
		withdraw: func(t *testing.T, s string) {
			var tok struct{ Token string }
			must(a.url, "POST", "/v1/subjects/"+s+"/tokens", "", &tok)
			if _, err := try(ctx, a.url, "PUT", "/v1/me/usecases/credit_limit/automation", tok.Token, `{"refused":true}`, nil); err != nil {
				t.Fatal(err)
			}
		},
		next: func(t *testing.T, s string) {
			var d apply.Determination
			if _, err := try(ctx, b.url, "POST", "/v1/decisions", admin, `{"usecase":"credit_limit","subject":"`+s+`"}`, &d); err != nil {
				t.Fatal(err)
			}
			if d.Status != "pending_review" || d.Outcome != nil {
				t.Errorf("node B's next decision after the subject refused automated decisions on node A (AD-2): status %q, outcome %v; want pending_review, none", d.Status, d.Outcome)
			}
		},
	}, {
		name: "derivation", purpose: "personalization",
		warm: func(t *testing.T, s string) {
			ingest(viewEvents(s, "warm", 1, now.Add(2*time.Minute))) // B's memo is current
			if !hasFan(b.url, s) {
				t.Fatal("before the withdrawal: no sports_fan label")
			}
		},
		next: func(t *testing.T, s string) {
			ingest(viewEvents(s, "after", 3, now.Add(3*time.Minute)))
			if hasFan(b.url, s) {
				t.Errorf("node B derived sports_fan from events ingested after a withdrawal of personalization on node A: %s",
					labelsOf(t, b.url, admin, []string{s})[s])
			}
		},
	}}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := fmt.Sprintf("nodes-%d", i)
			for _, purpose := range []string{"credit", "personalization"} {
				consent(a.url, s, purpose, "granted")
			}
			must(b.url, "POST", "/v1/events", fmt.Sprintf(`[{"subject":%q,"type":"profile","time":%q,"fields":{"age":40,"income":20000}}]`, s, now.Format(time.RFC3339)), nil)
			ingest(viewEvents(s, "v", 6, now))
			if !hasFan(b.url, s) {
				t.Fatalf("node B derived no sports_fan label from six sports views:\n%s", tail(b.stderr.String(), 2000))
			}
			must(b.url, "POST", "/v1/subjects/"+s+"/usecases/credit_limit/notice", "", nil)
			c.warm(t, s)
			if c.withdraw != nil {
				c.withdraw(t, s)
			} else {
				consent(a.url, s, c.purpose, "withdrawn")
			}
			c.next(t, s)
		})
	}
}
