package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/client"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/policy"
)

// as returns a generated client that calls the server with token.
func (h *harness) as(token string) *client.ClientWithResponses {
	h.t.Helper()
	c, err := client.NewClientWithResponses(h.url, client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}))
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// TestGeneratedClient drives the whole integrator flow through the Go
// client generated from /openapi.json, against a real server on each
// store: consent, events, portrait, recommendation, decision, appeal,
// export, erasure. It asserts what came back, decoded by the client's
// own types, so a document that misdescribes an answer fails here too.
func TestGeneratedClient(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		h.point.SetCatalog(liveCatalog(t))
		op, adm, rev := h.as(h.staff(policy.Operator)), h.as(h.staff(policy.Admin)), h.as(h.staff(policy.Reviewer))
		const ada = "ada-e2e"

		// Consent: the receipt comes back signed, for the purpose asked.
		for _, purpose := range []string{"personalization", "credit"} {
			r, err := op.PutV1SubjectsByIdConsentsByPurposeWithResponse(ctx, ada, purpose, client.ConsentBody{Status: "granted", NoticeVersion: "1", Channel: "e2e"})
			if err != nil || r.JSON200 == nil {
				t.Fatalf("consent %s: %v %d %s", purpose, err, r.StatusCode(), r.Body)
			}
			if rc := r.JSON200; rc.Purpose != purpose || rc.Status != "granted" || rc.Signature == "" || rc.Subject == ada {
				t.Fatalf("receipt: %+v", rc)
			}
		}
		// A refusal decodes as the problem it is.
		if r, err := op.PutV1SubjectsByIdConsentsByPurposeWithResponse(ctx, ada, "personalization", client.ConsentBody{Status: "maybe"}); err != nil || r.ApplicationproblemJSON400 == nil || r.ApplicationproblemJSON400.Code != "invalid" {
			t.Fatalf("bad status: %v %d %s", err, r.StatusCode(), r.Body)
		}

		// Items and events.
		var items []client.ItemRequest
		for i := range 12 {
			cat := []string{"sports", "books", "home"}[i%3]
			items = append(items, client.ItemRequest{Id: fmt.Sprintf("%s-%d", cat, i), Categories: []string{cat}, Price: 10})
		}
		if r, err := op.PostV1ItemsWithResponse(ctx, items); err != nil || r.JSON200 == nil || r.JSON200.Stored != 12 {
			t.Fatalf("items: %v %d %s", err, r.StatusCode(), r.Body)
		}
		now := time.Now().Add(-time.Hour)
		evs := []client.EventInput{{Subject: ada, Type: "profile", Time: now, Fields: map[string]any{"age": 35, "income": 9000}}}
		for i := range 6 {
			evs = append(evs, client.EventInput{Subject: ada, Type: "view", Time: now, Fields: map[string]any{"item": fmt.Sprintf("sports-%d", i*3), "category": "sports"}})
		}
		r, err := op.PostV1EventsWithResponse(ctx, evs)
		if err != nil || r.JSON200 == nil || r.JSON200.Accepted != int64(len(evs)) || r.JSON200.Rejected != 0 || len(r.JSON200.Results) != len(evs) {
			t.Fatalf("events: %v %d %s", err, r.StatusCode(), r.Body)
		}

		// Portrait, after a batch derivation.
		if r, err := adm.PostV1DerivationWithResponse(ctx); err != nil || r.JSON200 == nil || r.JSON200.Subjects != 1 {
			t.Fatalf("derivation: %v %d %s", err, r.StatusCode(), r.Body)
		}
		pr, err := op.GetV1SubjectsByIdPortraitWithResponse(ctx, ada, &client.GetV1SubjectsByIdPortraitParams{Purpose: "personalization"})
		if err != nil || pr.JSON200 == nil || pr.JSON200.Purpose != "personalization" {
			t.Fatalf("portrait: %v %d %s", err, pr.StatusCode(), pr.Body)
		}
		i := slices.IndexFunc(pr.JSON200.Labels, func(v client.View) bool { return v.Label == "sports_fan" })
		if i < 0 || !pr.JSON200.Labels[i].Bool || pr.JSON200.Labels[i].EventCount != 6 || pr.JSON200.Labels[i].Explanation["en"] == "" {
			t.Fatalf("portrait labels: %+v", pr.JSON200.Labels)
		}

		// Recommendation: personalised towards sports.
		rec, err := op.GetV1RecommendationsWithResponse(ctx, &client.GetV1RecommendationsParams{Subject: ada, Usecase: "home_feed", N: 4})
		if err != nil || rec.JSON200 == nil || len(rec.JSON200.Items) != 4 || !rec.JSON200.Items[0].Personalized || !strings.HasPrefix(rec.JSON200.Items[0].Id, "sports") {
			t.Fatalf("recommendation: %v %d %s", err, rec.StatusCode(), rec.Body)
		}

		// Decision: assessed, notice shown, decided and explained.
		var answers client.AnswersRequest // PIPL Art. 56's questions, answered and signed
		if err := json.Unmarshal(demo.Assessment, &answers); err != nil {
			t.Fatal(err)
		}
		if r, err := adm.PostV1UsecasesByIdAssessmentWithResponse(ctx, "credit_limit", answers); err != nil || r.JSON201 == nil {
			t.Fatalf("assessment: %v %d %s", err, r.StatusCode(), r.Body)
		}
		tr, err := op.PostV1SubjectsByIdTokensWithResponse(ctx, ada)
		if err != nil || tr.JSON201 == nil || tr.JSON201.Token == "" || !tr.JSON201.ExpiresAt.After(time.Now()) {
			t.Fatalf("token: %v %d %s", err, tr.StatusCode(), tr.Body)
		}
		me := h.as(tr.JSON201.Token)
		if r, err := me.PostV1MeUsecasesByIdNoticeWithResponse(ctx, "credit_limit"); err != nil || r.JSON201 == nil || r.JSON201.Usecase != "credit_limit" || r.JSON201.Notice["en"] == "" {
			t.Fatalf("notice: %v %d %s", err, r.StatusCode(), r.Body)
		}
		dr, err := op.PostV1DecisionsWithResponse(ctx, client.DecisionBody{Usecase: "credit_limit", Subject: ada})
		if err != nil || dr.JSON201 == nil {
			t.Fatalf("decision: %v %d %s", err, dr.StatusCode(), dr.Body)
		}
		d := dr.JSON201
		if d.Id == "" || d.Usecase != "credit_limit" || d.Explanation["zh-CN"] == "" || len(d.Contributions) == 0 {
			t.Fatalf("decision: %+v", d)
		}

		// Appeal, seen by the reviewer.
		ar, err := me.PostV1MeDecisionsByIdAppealWithResponse(ctx, d.Id, client.AppealBody{Statement: "I was promoted."})
		if err != nil || ar.JSON201 == nil || ar.JSON201.Decision != d.Id || ar.JSON201.Status == "" {
			t.Fatalf("appeal: %v %d %s", err, ar.StatusCode(), ar.Body)
		}
		q, err := rev.GetV1ReviewsWithResponse(ctx)
		if err != nil || q.JSON200 == nil || len(q.JSON200.Reviews) != 1 || q.JSON200.Reviews[0].Id != ar.JSON201.Id {
			t.Fatalf("review queue: %v %d %s", err, q.StatusCode(), q.Body)
		}

		// A request for staff, closed by staff; automated decisions
		// refused for the use-case; the notice recorded on her behalf.
		cr, err := me.PostV1MeRequestsWithResponse(ctx, client.CaseRequestBody{Type: "explanation"})
		if err != nil || cr.JSON201 == nil || cr.JSON201.Type != "explanation" || cr.JSON201.Deadline.IsZero() {
			t.Fatalf("request: %v %d %s", err, cr.StatusCode(), cr.Body)
		}
		cl, err := op.PostV1CasesByCaseCloseWithResponse(ctx, cr.JSON201.Id, client.CloseBody{Status: "fulfilled", Text: "Explained by letter."})
		if err != nil || cl.JSON200 == nil || cl.JSON200.Id != cr.JSON201.Id || cl.JSON200.Status != "fulfilled" {
			t.Fatalf("close: %v %d %s", err, cl.StatusCode(), cl.Body)
		}
		au, err := me.PutV1MeUsecasesByIdAutomationWithResponse(ctx, "credit_limit", client.AutomationBody{Refused: true})
		if err != nil || au.JSON200 == nil || !au.JSON200.Refused || au.JSON200.Usecase != "credit_limit" {
			t.Fatalf("automation: %v %d %s", err, au.StatusCode(), au.Body)
		}
		if r, err := op.PostV1SubjectsByIdUsecasesByUsecaseNoticeWithResponse(ctx, ada, "credit_limit"); err != nil || r.JSON201 == nil || r.JSON201.Usecase != "credit_limit" {
			t.Fatalf("staff notice: %v %d %s", err, r.StatusCode(), r.Body)
		}

		// Export: the plain export and the signed bundle, one document
		// each way (oneOf).
		er, err := me.GetV1MeExportWithResponse(ctx, &client.GetV1MeExportParams{})
		if err != nil || er.JSON200 == nil {
			t.Fatalf("export: %v %d %s", err, er.StatusCode(), er.Body)
		}
		ex, err := er.JSON200.AsExport()
		if err != nil || len(ex.Decisions) != 1 || ex.Decisions[0].Id != d.Id || len(ex.Events) != len(evs) ||
			!slices.ContainsFunc(ex.Consents, func(c client.ConsentEntry) bool { return c.Purpose == "credit" && c.Status == "granted" }) {
			t.Fatalf("export: %v %s", err, er.Body)
		}
		sr, err := me.GetV1MeExportWithResponse(ctx, &client.GetV1MeExportParams{Signed: "1"})
		if err != nil || sr.JSON200 == nil {
			t.Fatalf("signed export: %v %d %s", err, sr.StatusCode(), sr.Body)
		}
		if b, err := sr.JSON200.AsBundle(); err != nil || b.Signature == "" {
			t.Fatalf("signed export: %v %s", err, sr.Body)
		}

		// Erasure: a receipt; asked again, already erased; the portrait
		// is gone.
		xr, err := me.PostV1MeErasureWithResponse(ctx)
		if err != nil || xr.JSON201 == nil || xr.JSON201.AlreadyErased || xr.JSON201.Receipt.Signature == "" {
			t.Fatalf("erasure: %v %d %s", err, xr.StatusCode(), xr.Body)
		}
		again, err := op.PostV1SubjectsByIdErasureWithResponse(ctx, ada)
		if err != nil || again.JSON200 == nil || !again.JSON200.AlreadyErased {
			t.Fatalf("erasure again: %v %d %s", err, again.StatusCode(), again.Body)
		}
		pr, err = op.GetV1SubjectsByIdPortraitWithResponse(ctx, ada, &client.GetV1SubjectsByIdPortraitParams{Purpose: "personalization"})
		if err != nil || (pr.JSON200 != nil && len(pr.JSON200.Labels) != 0) {
			t.Fatalf("portrait after erasure: %v %d %s", err, pr.StatusCode(), pr.Body)
		}
	})
}
