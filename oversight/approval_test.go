package oversight_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/witness"
)

// changedCatalog is the demo catalog with sports_fan's rule and
// credit_limit's description changed: a label and a high-tier use-case.
func changedCatalog(tb testing.TB) *catalog.Catalog {
	tb.Helper()
	src := strings.Replace(string(demo.Catalog), `"sports") >= 5'`, `"sports") >= 3'`, 1)
	src = strings.Replace(src, "自动评估消费信贷额度", "自动评估消费信贷额度（第二版）", 1)
	cat, err := catalog.Parse(demo.CatalogName, []byte(src), label.Check)
	if err != nil {
		tb.Fatal(err)
	}
	return cat
}

func (e *env) startAs(tb testing.TB, operator string) *oversight.Service {
	tb.Helper()
	svc, err := oversight.New(context.Background(), oversight.Deps{Store: e.store, Point: e.point, Keys: e.keys, Log: e.log, Apply: e.apply},
		oversight.Options{Now: e.clock.Now, Operator: operator})
	if err != nil {
		tb.Fatal(err)
	}
	return svc
}

// derives reports whether the decision point lets sports_fan be derived
// for a subject who consented to personalization, and the code if not.
func derives(p *policy.Point) (bool, string) {
	st := &policy.State{Pseudonym: "ps1", Personalization: 100, Consents: map[string]policy.Consent{
		"personalization": {Status: policy.Granted, NoticeVersion: "1", At: time.Now()}}}
	d := p.Decide(policy.Request{State: st, Purpose: "personalization", Labels: []string{"sports_fan"}, Action: policy.Derive, Caller: policy.Caller{Role: policy.System}})
	if d.Allow {
		return true, ""
	}
	return false, d.Reasons[0].Code
}

var judgement = oversight.Judgement{
	Data:      "浏览类目足以判断运动兴趣，不读取敏感字段 / category views suffice",
	Algorithm: "阈值从5次降到3次，覆盖率合理，可解释 / a plain count threshold",
}

// TestFourEyes: the catalog a new store starts with is the baseline,
// accepted by the operator who started it; a changed label or use-case
// is held — refused by the decision point and the use-case gate on every
// node — until a named person other than its author approves it with a
// judgement (SG-7, RO-7).
func TestFourEyes(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		first := e.entry(t, 0)
		if first.Kind != oversight.KindCatalog || first.Action != "accept_baseline" || first.Actor != "operator:operator/unnamed" || first.Detail["baseline"] != true {
			t.Fatalf("baseline record = %+v", first)
		}
		if crs, err := e.svc.ChangeRequests(ctx); err != nil || len(crs) != 0 {
			t.Fatalf("baseline: change requests %v, %v", crs, err)
		}
		if ok, code := derives(e.point); !ok {
			t.Fatalf("baseline label refused: %s", code)
		}

		// SG-7: alice starts the node with a changed label and use-case.
		e.point.SetCatalog(changedCatalog(t))
		svc := e.startAs(t, "risk/alice")
		crs, err := svc.ChangeRequests(ctx)
		if err != nil || len(crs) != 1 {
			t.Fatalf("change requests = %+v, %v", crs, err)
		}
		cr := crs[0]
		if cr.Status != oversight.StatusPending || cr.Author != "risk/alice" || len(cr.Items) != 2 ||
			cr.Items["label:sports_fan"] == "" || cr.Items["use_case:credit_limit"] == "" || len(cr.Changes) != 2 || cr.Changes[0].Needs != catalog.NeedsApproval {
			t.Fatalf("change request = %+v", cr)
		}
		if ok, code := derives(e.point); ok || code != "not_approved" {
			t.Fatalf("changed label before approval: allowed=%v code=%s", ok, code)
		}
		if _, err := e.apply.Gate(ctx, "credit_limit", "decision", nil); portrait.ErrorCode(err) != portrait.EDENIED || !strings.Contains(portrait.ErrorMessage(err), "not live until") {
			t.Fatalf("changed use-case before approval: %v", err)
		}
		// Another node, or a restart, files nothing new and holds the same.
		again := e.startAs(t, "risk/carol")
		if crs, _ := again.ChangeRequests(ctx); len(crs) != 1 {
			t.Fatalf("a restart filed another request: %+v", crs)
		}

		refusals := []struct {
			name   string
			caller policy.Caller
			j      oversight.Judgement
			code   string
		}{
			{"author", policy.Caller{Role: policy.Reviewer, ID: "risk/alice"}, judgement, portrait.EDENIED},
			{"unnamed key", policy.Caller{Role: policy.Reviewer, ID: "k-123"}, judgement, portrait.EDENIED},
			{"operator role", policy.Caller{Role: policy.Operator, ID: "ops/dave"}, judgement, portrait.EFORBIDDEN},
			{"checkbox", policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, oversight.Judgement{Data: "ok", Algorithm: "ok"}, portrait.EINVALID},
			{"no algorithm judgement", policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, oversight.Judgement{Data: judgement.Data}, portrait.EINVALID},
		}
		for _, r := range refusals {
			if _, err := svc.Approve(ctx, r.caller, cr.Index, r.j); portrait.ErrorCode(err) != r.code {
				t.Errorf("%s: err = %v, want %s", r.name, err, r.code)
			}
		}
		if _, err := svc.Approve(ctx, policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, cr.Index+1000, judgement); portrait.ErrorCode(err) != portrait.ENOTFOUND {
			t.Errorf("unknown request: %v", err)
		}
		if ok, _ := derives(e.point); ok {
			t.Fatal("a refused approval made the label live")
		}

		got, err := svc.Approve(ctx, policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, cr.Index, judgement)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != oversight.StatusApproved || got.Approval == nil || got.Approval.By != "reviewer:risk/bob" || got.Approval.Data != judgement.Data {
			t.Fatalf("approved request = %+v", got)
		}
		if ok, code := derives(e.point); !ok {
			t.Fatalf("approved label refused: %s", code)
		}
		if _, err := e.apply.Gate(ctx, "credit_limit", "decision", nil); err != nil && strings.Contains(portrait.ErrorMessage(err), "not live until") {
			t.Fatalf("approved use-case still held: %v", err)
		}
		if _, err := svc.Approve(ctx, policy.Caller{Role: policy.Admin, ID: "risk/erin"}, cr.Index, judgement); portrait.ErrorCode(err) != portrait.ECONFLICT {
			t.Errorf("second approval: %v", err)
		}
		// The judgement is in the log, read back through the verifier.
		rec := e.entry(t, got.Approval.Index)
		if rec.Kind != oversight.KindApproval || rec.Detail["algorithm"] != judgement.Algorithm || rec.Actor != "reviewer:risk/bob" {
			t.Errorf("approval record = %+v", rec)
		}
		// A restart keeps it live and files nothing.
		e.startAs(t, "risk/alice")
		if ok, _ := derives(e.point); !ok {
			t.Error("approved label held again after a restart")
		}
		if crs, _ := svc.ChangeRequests(ctx); len(crs) != 1 || crs[0].Status != oversight.StatusApproved {
			t.Errorf("after restart: %+v", crs)
		}

		// Going back to the baseline's definitions is itself a change.
		e.point.SetCatalog(demoCatalog(t))
		e.startAs(t, "risk/alice")
		if ok, code := derives(e.point); ok || code != "not_approved" {
			t.Errorf("rolled-back label: allowed=%v code=%s", ok, code)
		}
	})
}

// TestFourEyesCountersign: joined to a regulator, a high-tier use-case
// needs the regulator's countersignature as well as the approval; a
// countersignature by another key, for another company or request, is
// refused (SG-7, invariant 8).
func TestFourEyesCountersign(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := witness.NewSigner("regulator.test/witness", key)
		forger, _ := witness.NewSigner("regulator.test/witness", other)
		v, err := witness.NewVerifier(signer.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		e.point.SetCatalog(changedCatalog(t))
		svc := e.startAs(t, "risk/alice")
		if err := svc.SetRegulator(ctx, regulator.CountersignVerifier(v, "c1")); err != nil {
			t.Fatal(err)
		}
		crs, _ := svc.ChangeRequests(ctx)
		cr := crs[0]
		if len(cr.Countersign) != 1 || cr.Countersign[0] != "use_case:credit_limit" {
			t.Fatalf("needs countersignature: %v", cr.Countersign)
		}
		got, err := svc.Approve(ctx, policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, cr.Index, judgement)
		if err != nil || got.Status != oversight.StatusCountersign {
			t.Fatalf("approve: %+v, %v", got, err)
		}
		if _, err := e.apply.Gate(ctx, "credit_limit", "decision", nil); !strings.Contains(portrait.ErrorMessage(err), "not live until") {
			t.Fatalf("high tier live without the regulator: %v", err)
		}
		if ok, code := derives(e.point); !ok {
			t.Errorf("the label is held as well: it needs no countersignature (%s)", code)
		}
		doc := func(s *witness.Signer, c regulator.Countersignature) []byte {
			sc, err := regulator.SignCountersignature(s, c)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(sc)
			return b
		}
		good := regulator.Countersignature{Company: "c1", Request: cr.Index, Items: cr.Items, Signed: time.Now(), SignedBy: "supervision/zhang"}
		bad := map[string][]byte{
			"forged":        doc(forger, good),
			"other company": doc(signer, regulator.Countersignature{Company: "c2", Request: cr.Index, Items: cr.Items, Signed: time.Now(), SignedBy: "supervision/zhang"}),
			"other request": doc(signer, regulator.Countersignature{Company: "c1", Request: cr.Index - 1, Items: cr.Items, Signed: time.Now(), SignedBy: "supervision/zhang"}),
			"other items":   doc(signer, regulator.Countersignature{Company: "c1", Request: cr.Index, Items: map[string]string{"use_case:credit_limit": "00"}, Signed: time.Now(), SignedBy: "supervision/zhang"}),
			"not json":      []byte("yes"),
			// A signed refusal is not a countersignature.
			"a refusal": doc(signer, regulator.Countersignature{Company: "c1", Request: cr.Index, Items: cr.Items, Signed: time.Now(), SignedBy: "supervision/zhang", Refused: true, Note: "no"}),
		}
		for name, d := range bad {
			if _, err := svc.Countersign(ctx, admin, cr.Index, d); portrait.ErrorCode(err) != portrait.EINVALID {
				t.Errorf("%s: err = %v", name, err)
			}
			if name == "a refusal" {
				continue
			}
			if _, err := svc.Receive(ctx, d); err == nil {
				t.Errorf("received %s: recorded", name)
			}
		}
		if _, err := svc.Countersign(ctx, policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, cr.Index, doc(signer, good)); portrait.ErrorCode(err) != portrait.EFORBIDDEN {
			t.Errorf("reviewer records a countersignature: %v", err)
		}
		got, err = svc.Countersign(ctx, admin, cr.Index, doc(signer, good))
		if err != nil || got.Status != oversight.StatusApproved {
			t.Fatalf("countersign: %+v, %v", got, err)
		}
		if _, err := e.apply.Gate(ctx, "credit_limit", "decision", nil); err != nil && strings.Contains(portrait.ErrorMessage(err), "not live until") {
			t.Fatalf("countersigned use-case still held: %v", err)
		}
		// A decision received again (the poll sees it every time) is not
		// recorded twice.
		if _, err := svc.Receive(ctx, doc(signer, good)); portrait.ErrorCode(err) != portrait.ECONFLICT {
			t.Errorf("received twice: %v", err)
		}
	})
}

// TestCountersignRefused: the regulator's signed refusal, received by
// the poll, is verified and recorded; the request says so, with the
// regulator's reason, and its high-tier use-case stays held (SG-7).
func TestCountersignRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, open backend) {
		ctx := context.Background()
		e := newEnv(t, open)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := witness.NewSigner("regulator.test/witness", key)
		v, _ := witness.NewVerifier(signer.VerifierKey())
		e.point.SetCatalog(changedCatalog(t))
		svc := e.startAs(t, "risk/alice")
		if err := svc.SetRegulator(ctx, regulator.CountersignVerifier(v, "c1")); err != nil {
			t.Fatal(err)
		}
		crs, _ := svc.ChangeRequests(ctx)
		cr := crs[0]
		if _, err := svc.Approve(ctx, policy.Caller{Role: policy.Reviewer, ID: "risk/bob"}, cr.Index, judgement); err != nil {
			t.Fatal(err)
		}
		sc, _ := regulator.SignCountersignature(signer, regulator.Countersignature{Company: "c1", Request: cr.Index, Items: cr.Items,
			Signed: time.Now(), SignedBy: "supervision/zhang", Refused: true, Note: "影响评估未说明申诉渠道"})
		d, _ := json.Marshal(sc)
		got, err := svc.Receive(ctx, d)
		if err != nil || got.Status != oversight.StatusRefused || got.Refusal == nil || got.Refusal.Note != "影响评估未说明申诉渠道" || got.Refusal.By != "regulator:supervision/zhang" {
			t.Fatalf("refusal: %+v, %v", got, err)
		}
		if _, err := e.apply.Gate(ctx, "credit_limit", "decision", nil); !strings.Contains(portrait.ErrorMessage(err), "not live until") {
			t.Fatalf("refused high tier live: %v", err)
		}
		// Read back from the log on a fresh service, as another node would.
		svc2 := e.startAs(t, "risk/alice")
		svc2.SetRegulator(ctx, regulator.CountersignVerifier(v, "c1"))
		if crs, _ := svc2.ChangeRequests(ctx); crs[0].Status != oversight.StatusRefused {
			t.Errorf("from the log: %+v", crs[0])
		}
	})
}
