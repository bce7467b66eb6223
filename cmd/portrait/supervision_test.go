package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/storetest"
)

// waitFor polls cond every 100 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSupervision runs a regulator and two joined company engines as real
// processes (company B on PostgreSQL when it is available). Their
// supervision reports arrive signed and noisy and are charted; a
// complaint filed at the regulator reaches company A's case queue, A
// answers, and only the regulator closes it; a report made at A's own
// /v1/reports goes to the regulator too (RO-8).
func TestSupervision(t *testing.T) {
	reg := startRegulator(t)
	idA, tokA := reg.enrol(t, "甲公司 A Co.")
	idB, tokB := reg.enrol(t, "乙公司 B Co.")
	const admin = "company-admin-key"
	a := company{dsn: filepath.Join(t.TempDir(), "a.db"), master: masterKey(), origin: "a.example/portrait", token: tokA, reg: reg,
		extra: []string{"--supervise-every", "500ms"}}
	b := company{master: masterKey(), origin: "b.example/portrait", token: tokB, reg: reg, extra: a.extra}
	if os.Getenv(storetest.EnvPostgres) != "" {
		b.dsn = storetest.PostgresDatabase(t)
	} else {
		b.dsn = filepath.Join(t.TempDir(), "b.db")
	}
	pa, pb := a.serve(t, admin), b.serve(t, admin)
	const granted = 6
	for i := range granted {
		if code := pa.call(t, "PUT", "/v1/subjects/s"+string(rune('a'+i))+"/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
			t.Fatalf("grant: %d", code)
		}
	}

	// SM-1: content detections at ingest are counted in the reports: a
	// resident ID in an ordinary field refused, a lexicon term flagged.
	now := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	var ing struct {
		Results []struct{ Status, Code string }
	}
	for _, p := range []*proc{pa, pb} {
		batch := fmt.Sprintf(`[{"subject":"sa","type":"view","time":%q,"fields":{"item":"11010519491231002X"}},
		 {"subject":"sa","type":"view","time":%q,"fields":{"item":"清真牛肉面","category":"food"}}]`, now, now)
		if code := p.call(t, "POST", "/v1/events", admin, batch, &ing); code != 200 || len(ing.Results) != 2 || ing.Results[0].Code != "sensitive_content" || ing.Results[1].Status == "rejected" {
			t.Fatalf("ingest with detections: %d %+v", code, ing)
		}
	}

	// PP-4: reports signed (the regulator verified them to store them), noisy
	// within the documented bound, charted.
	type report struct {
		Signed struct{ Signature []byte }
		Parsed struct {
			Company      string
			Detections   map[string]int64
			Exact_counts map[string]int64
			Noisy_counts map[string]int64
			Noise        struct {
				Mechanism string
				Epsilon   float64
				Bound     int64
			}
		}
	}
	var sup struct {
		Reports []report
		Series  []struct {
			Name   string
			Values []float64
		}
	}
	differs := 0
	for _, id := range []string{idA, idB} {
		waitFor(t, 20*time.Second, "three supervision reports from "+id, func() bool {
			reg.call(t, "GET", "/v1/companies/"+id+"/supervision", reg.admin, "", &sup)
			return len(sup.Reports) >= 3
		})
		for _, r := range sup.Reports {
			if r.Parsed.Company != id || len(r.Signed.Signature) == 0 || r.Parsed.Noise.Mechanism != "discrete_laplace" || r.Parsed.Noise.Epsilon <= 0 {
				t.Fatalf("report: %+v", r)
			}
		}
		if len(sup.Series) == 0 {
			t.Errorf("no chart series for %s", id)
		}
		waitFor(t, 20*time.Second, "a report from "+id+" counting the detections", func() bool {
			reg.call(t, "GET", "/v1/companies/"+id+"/supervision", reg.admin, "", &sup)
			last := sup.Reports[len(sup.Reports)-1].Parsed
			return last.Detections["resident_id/refused"] >= 1 && last.Detections["lexicon/flagged"] >= 1 && last.Exact_counts["fields_flagged_lexicon"] >= 1
		})
		charted := false
		for _, s := range sup.Series {
			charted = charted || s.Name == "detections/resident_id/refused"
		}
		if !charted {
			t.Errorf("detections not charted for %s", id)
		}
		if id != idA {
			continue
		}
		// Company A has exactly `granted` subjects who granted consent.
		for _, r := range sup.Reports {
			got := r.Parsed.Noisy_counts["subjects_granting_consent"]
			if d := got - granted; d < -r.Parsed.Noise.Bound || d > r.Parsed.Noise.Bound {
				t.Errorf("noisy count %d is beyond the bound %d of the truth %d", got, r.Parsed.Noise.Bound, granted)
			} else if d != 0 {
				differs++
			}
		}
	}
	// A's own log records each report it sent, by digest.
	sent := 0
	for i := 0; i < 100; i++ {
		if bytes.Contains(pa.get(t, fmt.Sprintf("/v1/log/entries/%d", i)), []byte(`"kind":"supervision"`)) {
			sent++
		}
	}
	if sent < 3 {
		t.Errorf("A's log records %d supervision reports sent, want at least 3", sent)
	}
	if differs == 0 {
		// P(no noise in 3 draws) = 0.245³ ≈ 1.5 %; with more reports less.
		t.Logf("warning: every report of A carried the exact count")
	}

	// PP-4, RO-8: a complaint at the regulator reaches A's queue.
	var rc struct{ ID, Secret, Deadline string }
	if code := reg.call(t, "POST", "/v1/complaints", "", `{"company":"`+idA+`","text":"推荐总是一样 the same recommendations every day"}`, &rc); code != 201 || rc.Secret == "" || rc.Deadline == "" {
		t.Fatalf("complaint: %d %+v", code, rc)
	}
	type queued struct{ ID, Type, Status, Description, Answer string }
	find := func(p *proc) (queued, bool) {
		var list struct{ Reports []queued }
		p.call(t, "GET", "/v1/reports", admin, "", &list)
		for _, r := range list.Reports {
			if r.ID == rc.ID {
				return r, true
			}
		}
		return queued{}, false
	}
	waitFor(t, 10*time.Second, "the complaint in A's queue", func() bool { _, ok := find(pa); return ok })
	if q, _ := find(pa); q.Type != "complaint" || q.Status != "open" || !strings.Contains(q.Description, "recommendations") {
		t.Errorf("queued: %+v", q)
	}
	if _, ok := find(pb); ok {
		t.Error("A's complaint reached B")
	}
	// A answers; the complaint stays open until the regulator closes it.
	var ans queued
	if code := pa.call(t, "POST", "/v1/reports/"+rc.ID+"/answer", admin, `{"answer":"已加入多样性 we added diversity"}`, &ans); code != 200 || ans.Status != "answered" {
		t.Fatalf("answer: %d %+v", code, ans)
	}
	if code := pa.call(t, "POST", "/v1/reports/"+rc.ID+"/answer", admin, `{"answer":"again"}`, nil); code != 409 {
		t.Errorf("answered twice: %d", code)
	}
	var cm struct {
		Status  string
		Answers []struct{ Text string }
		Closing string
	}
	reg.call(t, "GET", "/v1/complaints/"+rc.ID+"?secret="+rc.Secret, "", "", &cm)
	if cm.Status != "answered" || len(cm.Answers) != 1 {
		t.Fatalf("at the regulator after the answer: %+v", cm)
	}
	if code := reg.call(t, "POST", "/v1/complaints/"+rc.ID+"/close", reg.admin, `{"note":"答复充分 answer sufficient"}`, &cm); code != 200 || cm.Status != "closed" {
		t.Fatalf("close: %d %+v", code, cm)
	}
	waitFor(t, 10*time.Second, "A's case closed", func() bool { q, _ := find(pa); return q.Status == "closed" })

	// A report at A's own /v1/reports goes to the regulator.
	var fwd struct{ ID, Secret, Follow string }
	resp, err := http.Post(pa.url+"/v1/reports", "application/json", strings.NewReader(`{"description":"价格对老用户更高 higher prices for loyal users","contact":"me@example.org"}`))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&fwd)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.HasPrefix(fwd.ID, "cmp_") || !strings.HasPrefix(fwd.Follow, reg.url) {
		t.Fatalf("forwarded report: %d %+v", resp.StatusCode, fwd)
	}
	resp, err = http.Get(fwd.Follow)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("follow at the regulator: %v %v", err, resp)
	}
	resp.Body.Close()
	waitFor(t, 10*time.Second, "the forwarded report in A's queue", func() bool {
		var list struct{ Reports []queued }
		pa.call(t, "GET", "/v1/reports", admin, "", &list)
		for _, r := range list.Reports {
			if r.ID == fwd.ID && strings.Contains(r.Description, "me@example.org") {
				return true
			}
		}
		return false
	})

	// Sealed at rest in the regulator's database.
	db, err := sql.Open("sqlite", "file:"+reg.args[5]+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var clear int
	if err := db.QueryRow(`SELECT count(*) FROM reg_docs WHERE kind = 'complaint' AND (CAST(body AS TEXT) LIKE '%recommendations%' OR CAST(body AS TEXT) LIKE '%loyal%')`).Scan(&clear); err != nil || clear != 0 {
		t.Errorf("complaint text in clear at the regulator: %d %v", clear, err)
	}
}
