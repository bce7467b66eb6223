package apply_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/examples/demo"
)

// TestAssessArt56: an impact assessment answers each of PIPL Art. 56's
// questions — purpose, necessity and lawfulness, impact on rights,
// risks, safeguards — and is signed by two or more named people; without
// that it is not put on record, and an assessment on record without
// answers (written before they were asked, or edited and re-signed with
// none) does not open the gate (FA-1).
func TestAssessArt56(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		good := demo.Answers()
		blank := func(f func(*apply.Answers)) apply.Answers {
			a := good
			a.SignedBy = append([]string(nil), good.SignedBy...)
			f(&a)
			return a
		}
		for name, c := range map[string]struct {
			a    apply.Answers
			want string
		}{
			"no purpose":        {blank(func(a *apply.Answers) { a.Purpose = "" }), "answers.purpose"},
			"tick necessity":    {blank(func(a *apply.Answers) { a.Necessity = "yes, necessary" }), "answers.necessity"},
			"no rights impact":  {blank(func(a *apply.Answers) { a.Rights = "  " }), "answers.rights_impact"},
			"no risks":          {blank(func(a *apply.Answers) { a.Risks = "" }), "answers.risks"},
			"no safeguards":     {blank(func(a *apply.Answers) { a.Safeguards = "" }), "answers.safeguards"},
			"one signer":        {blank(func(a *apply.Answers) { a.SignedBy = []string{"risk/alice"} }), "two different named people"},
			"same signer twice": {blank(func(a *apply.Answers) { a.SignedBy = []string{"risk/alice", "risk/alice"} }), "two different named people"},
			"unnamed signer":    {blank(func(a *apply.Answers) { a.SignedBy = []string{"risk/alice", "Bob"} }), "signed_by[1]"},
		} {
			_, err := e.svc.Assess(ctx, admin, "credit_limit", c.a)
			if portrait.ErrorCode(err) != portrait.EINVALID || !strings.Contains(portrait.ErrorMessage(err), c.want) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := apply.ParseAnswers([]byte("purpose: x\nmood: good\n")); portrait.ErrorCode(err) != portrait.EINVALID || !strings.Contains(err.Error(), "mood") {
			t.Errorf("unknown key: %v", err)
		}
		a, err := e.svc.Assess(ctx, admin, "credit_limit", good)
		if err != nil {
			t.Fatal(err)
		}
		if a.Answers.Risks != good.Risks || len(a.Answers.SignedBy) != 2 {
			t.Errorf("answers not kept: %+v", a.Answers)
		}
		// Signed with the rest: changing an answer breaks the signature.
		edited := a
		edited.Answers.Safeguards = "none at all, but we promise to be careful"
		if err := apply.VerifyAssessment(edited, e.keys.ReceiptKey().Public().(ed25519.PublicKey)); err == nil {
			t.Error("an edited answer still verifies")
		}
		// An assessment on record without answers, validly signed by this
		// installation (as before answers were asked), is not enough.
		old := a
		old.Answers, old.Signature, old.LogIndex = apply.Answers{}, "", 0
		signed, _ := json.Marshal(old) // what VerifyAssessment checks
		old.Signature = hex.EncodeToString(ed25519.Sign(e.keys.ReceiptKey(), signed))
		out, _ := json.Marshal(old)
		dir := filepath.Join(t.TempDir(), "as")
		os.MkdirAll(dir, 0o700)
		if err := os.WriteFile(filepath.Join(dir, "credit_limit.json"), out, 0o600); err != nil {
			t.Fatal(err)
		}
		svc, err := apply.New(apply.Deps{Store: e.store, Point: e.point, Ledger: e.ledger, Keys: e.keys, Log: e.log}, apply.Options{Assessments: dir})
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.Gate(ctx, "credit_limit", apply.KindDecision, nil)
		wantErr(t, err, portrait.EDENIED, "FA-1", "does not answer PIPL Art. 56")
	})
}
