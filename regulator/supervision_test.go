package regulator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/regulator"
	"github.com/portrait-dev/portrait/rules"
	"github.com/portrait-dev/portrait/storetest"
	"github.com/portrait-dev/portrait/witness"
)

// supervised is a fixture whose node takes supervision reports and
// complaints, and one company that filed a receipt key.
func supervised(t *testing.T, db regulator.DB) (*fixture, *company, ed25519.PrivateKey) {
	t.Helper()
	f := newFixture(t, db)
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	kr, err := keys.New(master)
	if err != nil {
		t.Fatal(err)
	}
	f.node.Supervise(db.(regulator.Docs), kr)
	co := f.enrol(t, "a.example/portrait")
	_, receipt, _ := ed25519.GenerateKey(rand.Reader)
	c, _ := regulator.NewClient(f.srv.URL, f.node.WitnessKey(), co.token, http.DefaultClient)
	if err := c.File(context.Background(), regulator.Filing{Origin: "a.example/portrait", LogKey: co.log.VerifierKey(),
		ReceiptKey: base64.StdEncoding.EncodeToString(receipt.Public().(ed25519.PublicKey))}); err != nil {
		t.Fatal(err)
	}
	return f, co, receipt
}

func eachEngine(t *testing.T, fn func(t *testing.T, db regulator.DB)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			if e.name == "postgres" && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			fn(t, e.open(t))
		})
	}
}

// TestSupervisionReports: a report signed with the filed receipt key is
// stored, logged by digest and charted; a report signed by another key,
// naming another company, or altered after signing is refused.
func TestSupervisionReports(t *testing.T) {
	eachEngine(t, func(t *testing.T, db regulator.DB) {
		f, co, receipt := supervised(t, db)
		rate := 0.8
		rep := regulator.Supervision{Company: co.id, Sent: time.Now().UTC(), Noise: regulator.DefaultNoise,
			Noisy: map[string]int64{"subjects_with_requests": 7}, Exact: map[string]int64{"breaches": 1},
			ConsentRate: &rate, ImpactRatios: map[string]float64{"credit_decision": 0.91}}
		send := func(s regulator.SignedSupervision) int {
			b, _ := json.Marshal(s)
			return f.call(t, "POST", "/v1/supervision", co.token, string(b), nil)
		}
		// PP-4: signed reports are stored and charted.
		for i := range 2 {
			rep.Noisy["subjects_with_requests"] = int64(7 + i)
			s, err := regulator.SignSupervision(rep, receipt)
			if err != nil {
				t.Fatal(err)
			}
			if code := send(s); code != 201 {
				t.Fatalf("report %d: %d", i, code)
			}
		}
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		forged, _ := regulator.SignSupervision(rep, other)
		if code := send(forged); code != 403 {
			t.Errorf("report signed by another key: %d", code)
		}
		good, _ := regulator.SignSupervision(rep, receipt)
		good.Body = bytes.Replace(good.Body, []byte(`"breaches":1`), []byte(`"breaches":0`), 1)
		if code := send(good); code != 403 {
			t.Errorf("report altered after signing: %d", code)
		}
		elsewhere := rep
		elsewhere.Company = "co_other"
		s, _ := regulator.SignSupervision(elsewhere, receipt)
		if code := send(s); code != 400 {
			t.Errorf("report naming another company: %d", code)
		}
		var out struct {
			Reports []regulator.SupervisionRecord
			Series  []regulator.Series
		}
		if code := f.call(t, "GET", "/v1/companies/"+co.id+"/supervision", f.admin, "", &out); code != 200 || len(out.Reports) != 2 {
			t.Fatalf("reports: %d %d", code, len(out.Reports))
		}
		var series *regulator.Series
		for i := range out.Series {
			if out.Series[i].Name == "subjects_with_requests" {
				series = &out.Series[i]
			}
		}
		if series == nil || len(series.Values) != 2 || series.Values[0] != 7 || series.Values[1] != 8 {
			t.Errorf("chart series: %+v", out.Series)
		}
		if code := f.call(t, "GET", "/v1/companies/"+co.id+"/supervision", co.token, "", nil); code != 401 {
			t.Errorf("a company reads the regulator's charts: %d", code)
		}
	})
}

// TestComplaints: anyone complains without an account and follows the
// complaint with its secret; the company sees it in its queue and
// answers; only regulator staff close it; the text is sealed at rest and
// the log holds its digest; a flood is refused (RO-8).
func TestComplaints(t *testing.T) {
	eachEngine(t, func(t *testing.T, db regulator.DB) {
		f, co, _ := supervised(t, db)
		const text = "他们把我的购物记录卖给了保险公司 they sold my purchases"
		var rc regulator.ComplaintReceipt
		if code := f.call(t, "POST", "/v1/complaints", "", `{"company":"`+co.id+`","text":"`+text+`"}`, &rc); code != 201 || rc.Secret == "" || rc.Deadline.IsZero() {
			t.Fatalf("complain: %d %+v", code, rc)
		}
		var cm regulator.Complaint
		if code := f.call(t, "GET", "/v1/complaints/"+rc.ID+"?secret="+rc.Secret, "", "", &cm); code != 200 || cm.Status != "open" || cm.Text != text {
			t.Fatalf("follow: %d %+v", code, cm)
		}
		if code := f.call(t, "GET", "/v1/complaints/"+rc.ID+"?secret=guess", "", "", nil); code != 404 {
			t.Errorf("wrong secret: %d", code)
		}
		if code := f.call(t, "POST", "/v1/complaints", "", `{"company":"co_nobody","text":"x"}`, nil); code != 404 {
			t.Errorf("complaint about no company: %d", code)
		}
		// Sealed at rest; the log holds the digest only.
		d, err := db.(regulator.Docs).Doc(context.Background(), "complaint", rc.ID)
		if err != nil || bytes.Contains(d.Body, []byte("保险公司")) || bytes.Contains(d.Body, []byte("sold")) {
			t.Errorf("complaint stored in clear (%v): %s", err, d.Body)
		}
		n, _ := db.LogSize(context.Background())
		es, _ := db.LogEntries(context.Background(), 0, n)
		for _, e := range es {
			if bytes.Contains(e.Data, []byte("保险公司")) {
				t.Errorf("log entry %d holds the complaint text", e.Index)
			}
		}
		// PP-4, RO-8: the company's queue, its answer, and the regulator's close.
		var q struct{ Complaints []regulator.Complaint }
		if code := f.call(t, "GET", "/v1/mirror/complaints", co.token, "", &q); code != 200 || len(q.Complaints) != 1 || q.Complaints[0].Text != text {
			t.Fatalf("company queue: %d %+v", code, q)
		}
		if code := f.call(t, "POST", "/v1/mirror/complaints/"+rc.ID+"/answer", co.token, `{"answer":"已停止 we stopped"}`, &cm); code != 200 || cm.Status != "answered" {
			t.Fatalf("answer: %d %+v", code, cm)
		}
		if code := f.call(t, "POST", "/v1/complaints/"+rc.ID+"/close", co.token, `{"note":"x"}`, nil); code != 401 {
			t.Errorf("the company closes its own complaint: %d", code)
		}
		var insp struct{ Key string }
		f.call(t, "POST", "/v1/staff", f.admin, `{"name":"supervision/li.na","role":"inspector"}`, &insp)
		if code := f.call(t, "POST", "/v1/complaints/"+rc.ID+"/close", insp.Key, `{"note":"x"}`, nil); code != 403 {
			t.Errorf("an inspector closes a complaint: %d", code)
		}
		if code := f.call(t, "POST", "/v1/complaints/"+rc.ID+"/close", f.admin, `{"note":"核实后关闭 verified and closed"}`, &cm); code != 200 || cm.Status != "closed" || cm.ClosedBy == "" {
			t.Fatalf("close: %d %+v", code, cm)
		}
		if code := f.call(t, "POST", "/v1/mirror/complaints/"+rc.ID+"/answer", co.token, `{"answer":"more"}`, nil); code != 409 {
			t.Errorf("answer after close: %d", code)
		}
		f.call(t, "GET", "/v1/complaints/"+rc.ID+"?secret="+rc.Secret, "", "", &cm)
		if len(cm.Answers) != 1 || cm.Answers[0].Text != "已停止 we stopped" || cm.Closing != "核实后关闭 verified and closed" {
			t.Errorf("the complainant does not see the answer and the closing: %+v", cm)
		}
		// Another company cannot answer it.
		other := f.enrol(t, "b.example/portrait")
		if code := f.call(t, "POST", "/v1/mirror/complaints/"+rc.ID+"/answer", other.token, `{"answer":"x"}`, nil); code != 404 {
			t.Errorf("another company answers: %d", code)
		}
		// Bad input and floods.
		big := strings.Repeat("长", 4000)
		if code := f.call(t, "POST", "/v1/complaints", "", `{"company":"`+co.id+`","text":"`+big+`"}`, nil); code != 413 {
			t.Errorf("oversized: %d", code)
		}
		if code := f.call(t, "POST", "/v1/complaints", "", `{"company":"`+co.id+`","text":"  "}`, nil); code != 400 {
			t.Errorf("empty: %d", code)
		}
		codes := map[int]int{}
		for range 6 {
			codes[f.call(t, "POST", "/v1/complaints", "", `{"company":"`+co.id+`","text":"again"}`, nil)]++
		}
		if codes[429] == 0 {
			t.Errorf("no flood refusal: %v", codes)
		}
	})
}

// TestConsultationStores: a draft goes through comment and sign-off and
// is published; a company's client verifies the pack in force through the
// regulator's endorsement, and refuses one whose endorsement is forged;
// simulation runs the filed catalogs through a draft.
func TestConsultationStores(t *testing.T) {
	eachEngine(t, func(t *testing.T, db regulator.DB) {
		f, co, _ := supervised(t, db)
		signer, vkey, err := regulator.PackSigner("regulator.test/rules", make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		f.node.Consult(signer, vkey, func(p *rules.Pack, name string, data []byte) error {
			if !bytes.Contains(data, []byte("good")) {
				return errors.New("rule TEST-1: not good")
			}
			return nil
		})
		c, _ := regulator.NewClient(f.srv.URL, f.node.WitnessKey(), co.token, http.DefaultClient)
		if p, err := c.Pack(context.Background()); err != nil || p != nil {
			t.Fatalf("pack before any publication: %v %v", p, err)
		}
		if err := c.FileCatalog(context.Background(), []byte("bad catalog")); err != nil {
			t.Fatal(err)
		}
		text := string(rules.DefaultPack())
		text = text[:strings.LastIndex(text, "\n\n")]
		body, _ := json.Marshal(map[string]any{"title": "t", "pack": json.RawMessage(text)})
		var d regulator.Draft
		if code := f.call(t, "POST", "/v1/packs", f.admin, string(body), &d); code != 201 {
			t.Fatalf("draft: %d", code)
		}
		var sim struct{ Outcomes []regulator.Outcome }
		f.call(t, "POST", "/v1/packs/"+d.ID+"/simulate", f.admin, "", &sim)
		if len(sim.Outcomes) != 1 || sim.Outcomes[0].Pass || !strings.Contains(sim.Outcomes[0].Error, "TEST-1") {
			t.Errorf("simulation: %+v", sim)
		}
		// PP-1, PP-2: comment, sign-off by the three disciplines, publication.
		f.call(t, "POST", "/v1/packs/"+d.ID+"/open", f.admin, "", nil)
		f.call(t, "POST", "/v1/packs/"+d.ID+"/comments", "", `{"text":"好"}`, nil)
		for _, disc := range regulator.Disciplines {
			if code := f.call(t, "POST", "/v1/packs/"+d.ID+"/signoffs", f.admin, `{"expert":"x","discipline":"`+disc+`","statement":"ok"}`, nil); code != 201 {
				t.Fatalf("sign-off: %d", code)
			}
		}
		if code := f.call(t, "POST", "/v1/packs/"+d.ID+"/publish", f.admin, "", &d); code != 200 || d.Status != "published" || len(d.Comments) != 1 {
			t.Fatalf("publish: %d %+v", code, d.Status)
		}
		p, err := c.Pack(context.Background())
		if err != nil || p == nil || p.ID != "portrait-default" || p.Signers()[0] != "regulator.test/rules" {
			t.Fatalf("pack in force: %v %v", p, err)
		}
		// A client trusting another regulator key refuses the endorsement.
		_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
		other, _ := witnessVerifierKey(otherKey)
		c2, _ := regulator.NewClient(f.srv.URL, other, co.token, http.DefaultClient)
		if _, err := c2.Pack(context.Background()); err == nil || !strings.Contains(err.Error(), "not endorsed") {
			t.Errorf("pack endorsed by another key accepted: %v", err)
		}
	})
}

func witnessVerifierKey(k ed25519.PrivateKey) (string, error) {
	s, err := witness.NewSigner("regulator.test/witness", k)
	if err != nil {
		return "", err
	}
	return s.VerifierKey(), nil
}
