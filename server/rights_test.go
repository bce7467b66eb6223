package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/sqlite"
)

// seedSubject gives id consent to personalization, a profile, n view
// events and a sports_fan label, through the API and the store.
func (h *harness) seedSubject(id string, n int) portrait.Pseudonym {
	h.t.Helper()
	if resp := h.consent(id, "personalization", "granted"); resp.StatusCode != 200 {
		h.t.Fatalf("consent: %d", resp.StatusCode)
	}
	now := time.Now().UTC()
	var body bytes.Buffer
	fmt.Fprintf(&body, `{"subject":%q,"type":"profile","time":%q,"fields":{"city":"Marker-City-%s","age":30}}`+"\n", id, now.Add(-time.Hour).Format(time.RFC3339), id)
	for i := range n {
		fmt.Fprintf(&body, `{"subject":%q,"type":"view","time":%q,"fields":{"item":"Marker-Item-%s-%d","category":"sports"}}`+"\n",
			id, now.Add(-time.Duration(i+1)*time.Minute).Format(time.RFC3339), id, i)
	}
	var r eventsResp
	if resp := h.do("POST", "/v1/events", h.staff(policy.Operator), "application/x-ndjson", body.Bytes(), &r); resp.StatusCode != 200 || r.Accepted != n+1 {
		h.t.Fatalf("ingest: %d %+v", resp.StatusCode, r)
	}
	p := h.keys.Pseudonym(id)
	h.putLabel(p, "sports_fan")
	return p
}

// putLabel stores a label value under a Derive grant, as the label engine does.
func (h *harness) putLabel(p portrait.Pseudonym, id string) { h.putLabelMet(p, id, true) }

// putLabelMet stores rule label id for p, met or not.
func (h *harness) putLabelMet(p portrait.Pseudonym, id string, met bool) {
	h.t.Helper()
	ctx := context.Background()
	sts, err := h.store.States(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
	if err != nil {
		h.t.Fatal(err)
	}
	d := h.point.Decide(policy.Request{State: sts[portrait.Pseudonym(p)], Purpose: "personalization", Action: policy.Derive, Caller: policy.Caller{Role: policy.System}})
	if !d.Allow {
		h.t.Fatal(d.Reasons)
	}
	subs, _ := h.store.Subjects(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
	ci, err := h.keys.Open(subs[portrait.Pseudonym(p)])
	if err != nil {
		h.t.Fatal(err)
	}
	now := time.Now().UTC()
	sealed, err := rights.SealLabel(ci, portrait.Pseudonym(p), label.Value{Label: id, Version: 1, Kind: catalog.KindRule, Bool: met, Confidence: 1,
		Inputs: []string{"category"}, Computed: now, Facts: []label.Fact{{Func: "count", Type: "view", Field: "category", Equals: "sports", Window: "30d", Value: 6}}})
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutLabels(ctx, []portrait.LabelValue{{Grant: d.Grant, Pseudonym: portrait.Pseudonym(p), Label: id, Version: 1, Sealed: sealed, Computed: now}})
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// SR-1, SR-2: the subject's export holds decrypted values and verifies
// offline; a forged or expired token reaches nothing; another subject's id
// is unreachable with a subject token.
func TestRightsAccessAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.seedSubject("alice", 3)
		h.seedSubject("bob", 1)
		tok := h.token("alice")
		var doc rights.Export
		if resp := h.do("GET", "/v1/me/export", tok, "", nil, &doc); resp.StatusCode != 200 || doc.SubjectID != "alice" || len(doc.Events) != 4 || len(doc.Labels) != 1 {
			t.Fatalf("export: %d %+v", resp.StatusCode, doc)
		}
		var bundle json.RawMessage
		h.do("GET", "/v1/me/export?signed=1", tok, "", nil, &bundle)
		if got, err := rights.VerifyExport(bundle, h.keys.ReceiptKey().Public().(ed25519.PublicKey)); err != nil || got.SubjectID != "alice" {
			t.Errorf("signed export: %v", err)
		}
		var staffDoc rights.Export
		if resp := h.do("GET", "/v1/subjects/bob/export", h.staff(policy.Operator), "", nil, &staffDoc); resp.StatusCode != 200 || staffDoc.SubjectID != "bob" {
			t.Errorf("operator export of bob: %d", resp.StatusCode)
		}
		var p problem
		for name, bad := range map[string]string{
			"forged":  "pt1.AAAA.BBBB",
			"expired": h.keys.IssueToken(h.keys.Pseudonym("alice"), -time.Minute),
		} {
			if resp := h.do("GET", "/v1/me/export", bad, "", nil, &p); resp.StatusCode != 401 {
				t.Errorf("%s token: %d", name, resp.StatusCode)
			}
			if resp := h.do("POST", "/v1/me/erasure", bad, "", nil, &p); resp.StatusCode != 401 {
				t.Errorf("%s token erasure: %d", name, resp.StatusCode)
			}
		}
		// A subject token cannot name another subject: the staff route refuses it.
		if resp := h.do("GET", "/v1/subjects/bob/export", tok, "", nil, &p); resp.StatusCode != 403 {
			t.Errorf("alice's token on bob's export: %d", resp.StatusCode)
		}
		if resp := h.do("GET", "/v1/subjects/bob/export", h.staff(policy.Auditor), "", nil, &p); resp.StatusCode != 403 {
			t.Errorf("auditor on bob's export: %d", resp.StatusCode)
		}
	})
}

// CM-2, LP-3, LP-4, LP-5, SR-7, CN-4: corrections are type-checked against
// the declaration; label control, the dial, restriction and objection work
// over HTTP and show in the next read.
func TestRightsControlAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		h.seedSubject("alice", 1)
		tok := h.token("alice")
		var p problem
		for _, tc := range []struct{ path, body, want string }{
			{"/v1/me/fields/shoe_size", `{"value":42}`, "not declared"},
			{"/v1/me/fields/item", `{"value":"x"}`, "profile: true"},
			{"/v1/me/fields/age", `{"value":"old"}`, "type number"},
			{"/v1/me/fields/city", `{"value":1}`, "type string"},
			{"/v1/me/fields/city", `{"valeur":"x"}`, "unknown field"},
		} {
			if resp := h.do("PUT", tc.path, tok, "application/json", []byte(tc.body), &p); resp.StatusCode != 400 || !strings.Contains(p.Detail, tc.want) {
				t.Errorf("PUT %s %s: %d %q, want 400 naming %q", tc.path, tc.body, resp.StatusCode, p.Detail, tc.want)
			}
		}
		if resp := h.do("PUT", "/v1/me/fields/city", tok, "application/json", []byte(`{"value":"Hangzhou"}`), nil); resp.StatusCode != 204 {
			t.Fatalf("correct: %d", resp.StatusCode)
		}
		var doc rights.Export
		h.do("GET", "/v1/me/export", tok, "", nil, &doc)
		for _, f := range doc.Profile {
			if f.Field == "city" && (f.Value != "Hangzhou" || f.Source != "correction") {
				t.Errorf("city after correction: %+v", f)
			}
		}
		if resp := h.do("DELETE", "/v1/me/labels/sports_fan?mode=delete", tok, "", nil, nil); resp.StatusCode != 204 {
			t.Fatalf("delete label: %d", resp.StatusCode)
		}
		var ls struct{ Labels []rights.LabelEntry }
		h.do("GET", "/v1/me/labels", tok, "", nil, &ls)
		if len(ls.Labels) != 1 || ls.Labels[0].Status != rights.LabelDeleted || ls.Labels[0].Value != nil {
			t.Errorf("labels after delete: %+v", ls.Labels)
		}
		if resp := h.do("POST", "/v1/me/labels/sports_fan/restore", tok, "", nil, nil); resp.StatusCode != 204 {
			t.Errorf("restore: %d", resp.StatusCode)
		}
		for body, want := range map[string]int{`{"level":101}`: 400, `{"level":-1}`: 400, `{"level":2.5}`: 400, `{}`: 400, `{"level":40}`: 200} {
			if resp := h.do("PUT", "/v1/me/personalization", tok, "application/json", []byte(body), &p); resp.StatusCode != want {
				t.Errorf("dial %s: %d, want %d", body, resp.StatusCode, want)
			}
		}
		sts, _ := h.store.States(context.Background(), []portrait.Pseudonym{h.keys.Pseudonym("alice")})
		if st := sts[h.keys.Pseudonym("alice")]; st.Personalization != 40 {
			t.Errorf("dial stored as %d", st.Personalization)
		}
		if resp := h.do("POST", "/v1/me/objection", tok, "application/json", []byte(`{"kind":"marketing"}`), nil); resp.StatusCode != 204 {
			t.Errorf("objection: %d", resp.StatusCode)
		}
		if resp := h.do("POST", "/v1/me/objection", tok, "application/json", []byte(`{"kind":"everything"}`), &p); resp.StatusCode != 400 {
			t.Errorf("bad objection: %d", resp.StatusCode)
		}
		if resp := h.do("POST", "/v1/me/restriction", tok, "", nil, nil); resp.StatusCode != 204 {
			t.Errorf("restriction: %d", resp.StatusCode)
		}
		sts, _ = h.store.States(context.Background(), []portrait.Pseudonym{h.keys.Pseudonym("alice")})
		if st := sts[h.keys.Pseudonym("alice")]; !st.Restricted || !st.ObjectMarketing {
			t.Errorf("flags: %+v", st)
		}
		// SR-7, CM-4: restricted data is storage-only; the next use is refused.
		p = problem{}
		resp := h.do("GET", "/v1/subjects/alice/portrait?purpose=personalization", h.staff(policy.Operator), "", nil, &p)
		wantProblem(t, resp, p, 403, "SR-7", "storage-only")
		if resp := h.do("DELETE", "/v1/me/restriction", tok, "", nil, nil); resp.StatusCode != 204 {
			t.Errorf("lift restriction: %d", resp.StatusCode)
		}
		if resp := h.do("GET", "/v1/subjects/alice/portrait?purpose=personalization", h.staff(policy.Operator), "", nil, nil); resp.StatusCode != 200 {
			t.Errorf("portrait after lifting the restriction: %d", resp.StatusCode)
		}
		// SR-4, SR-5: every request above is a case with a deadline; staff see
		// them all and the overdue report.
		var cs struct{ Cases []portrait.Case }
		h.do("GET", "/v1/me/cases", tok, "", nil, &cs)
		refused := 0
		for _, c := range cs.Cases {
			if !c.Deadline.After(c.Created) {
				t.Errorf("case without a deadline: %+v", c)
			}
			if c.Status == rights.StatusRefused {
				refused++
			}
		}
		if len(cs.Cases) < 10 || refused < 4 {
			t.Errorf("%d cases, %d refused: %+v", len(cs.Cases), refused, cs.Cases)
		}
		var req portrait.Case
		if resp := h.do("POST", "/v1/me/requests", tok, "application/json", []byte(`{"type":"explanation"}`), &req); resp.StatusCode != 201 || req.Status != "open" {
			t.Errorf("request: %d %+v", resp.StatusCode, req)
		}
		var staffCases, overdue struct{ Cases []portrait.Case }
		h.do("GET", "/v1/cases", h.staff(policy.Auditor), "", nil, &staffCases)
		h.do("GET", "/v1/cases/overdue", h.staff(policy.Operator), "", nil, &overdue)
		if len(staffCases.Cases) != len(cs.Cases)+1 || overdue.Cases == nil || len(overdue.Cases) != 0 {
			t.Errorf("staff cases %d, overdue %+v", len(staffCases.Cases), overdue.Cases)
		}
		if resp := h.do("POST", "/v1/cases/"+req.ID+"/close", h.staff(policy.Operator), "application/json", []byte(`{"status":"refused","text":""}`), &p); resp.StatusCode != 400 {
			t.Errorf("refusal without reason: %d", resp.StatusCode)
		}
	})
}

// SR-3: erasure over HTTP returns a signed receipt naming the audit entry;
// a second submission returns the same receipt; neither plaintext nor the
// wrapped data key stays in the SQLite file and WAL or in any PostgreSQL
// table; the audit log still verifies.
func TestRightsErasureAPI(t *testing.T) {
	onEachStore(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		p := h.seedSubject("alice", 5)
		h.seedSubject("bob", 1)
		subs, err := h.store.Subjects(ctx, []portrait.Pseudonym{portrait.Pseudonym(p)})
		if err != nil {
			t.Fatal(err)
		}
		wrapped := subs[portrait.Pseudonym(p)].WrappedKey
		if !h.holds(wrapped) {
			if db, ok := h.store.(*sqlite.DB); ok {
				db.TruncateWAL(ctx)
			}
			if !h.holds(wrapped) {
				t.Fatal("the wrapped key is not found before erasure: the scan cannot prove anything")
			}
		}
		tok := h.token("alice")
		var first, second rights.Erasure
		if resp := h.do("POST", "/v1/me/erasure", tok, "", nil, &first); resp.StatusCode != 201 {
			t.Fatalf("erasure: %d %+v", resp.StatusCode, first)
		}
		if rm := first.Removed; rm.Events != 6 || len(rm.ProfileFields) != 2 || !slices.Equal(rm.Labels, []string{"sports_fan"}) || rm.ConsentRecords != 1 || !rm.SubjectKey {
			t.Errorf("removed: %+v", rm)
		}
		// The subject's token ended with the erasure (TestSessionsEnd); a
		// second submission, on their behalf, gets the same receipt.
		if resp := h.do("POST", "/v1/subjects/alice/erasure", h.staff(policy.Operator), "", nil, &second); resp.StatusCode != 200 || !second.AlreadyErased || second.Receipt != first.Receipt {
			t.Errorf("double erasure: %d %+v", resp.StatusCode, second)
		}
		data, _ := json.Marshal(first.Receipt)
		if _, err := rights.VerifyReceipt(data, h.keys.ReceiptKey().Public().(ed25519.PublicKey)); err != nil {
			t.Errorf("receipt: %v", err)
		}
		var entry map[string]any
		h.do("GET", fmt.Sprintf("/v1/log/entries/%d", first.Receipt.LogIndex), "", "", nil, &entry)
		if entry["kind"] != "erasure" || entry["subject"] != string(p) {
			t.Errorf("log entry %d: %v", first.Receipt.LogIndex, entry)
		}
		var prob problem
		if resp := h.do("GET", "/v1/me/export", tok, "", nil, &prob); resp.StatusCode != 401 {
			t.Errorf("export with the erased subject's token: %d, want 401", resp.StatusCode)
		}
		if resp := h.do("GET", "/v1/subjects/alice/labels", h.staff(policy.Operator), "", nil, &prob); resp.StatusCode != 404 {
			t.Errorf("staff labels after erasure: %d %+v", resp.StatusCode, prob)
		}
		if h.holds(wrapped) {
			t.Error("the wrapped data key is still in the database")
		}
		for _, s := range []string{"Marker-City-alice", "Marker-Item-alice", "alice"} {
			if h.holds([]byte(s)) {
				t.Errorf("plaintext %q found after erasure", s)
			}
		}
		// Bob is untouched.
		var bob rights.Export
		if resp := h.do("GET", "/v1/me/export", h.token("bob"), "", nil, &bob); resp.StatusCode != 200 || len(bob.Events) != 2 || len(bob.Labels) != 1 {
			t.Errorf("bob after alice's erasure: %d %+v", resp.StatusCode, bob)
		}
		var out bytes.Buffer
		if err := audit.Verify(ctx, http.DefaultClient, h.url, filepath.Join(t.TempDir(), "cp"), &out); err != nil {
			t.Errorf("audit log after erasure: %v\n%s", err, out.String())
		}
	})
}

// holds reports whether needle occurs in the store's bytes: the SQLite
// file, its WAL and shared memory; on PostgreSQL, the text of every row of
// every table, where bytea columns show as hex.
func (h *harness) holds(needle []byte) bool {
	h.t.Helper()
	if h.pgURL == "" {
		files, err := filepath.Glob(h.path + "*")
		if err != nil || len(files) == 0 {
			h.t.Fatalf("no database files at %s: %v", h.path, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				h.t.Fatal(err)
			}
			if bytes.Contains(data, needle) {
				return true
			}
		}
		return false
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.pgURL)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		h.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) == 0 {
		h.t.Fatalf("list tables: %v %v", tables, err)
	}
	hexed := []byte(hex.EncodeToString(needle))
	for _, tbl := range tables {
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+tbl+" t")
		if err != nil {
			h.t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			h.t.Fatal(err)
		}
		for _, row := range texts {
			if bytes.Contains([]byte(row), needle) || bytes.Contains([]byte(row), hexed) {
				return true
			}
		}
	}
	return false
}

// CN-7, CN-10, LP-6: the notice is served as JSON and HTML from the
// catalog, Chinese by default.
func TestNoticeAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var zh, en rights.Notice
	h.do("GET", "/v1/notice", "", "", nil, &zh)
	h.do("GET", "/v1/notice?lang=en", "", "", nil, &en)
	if zh.Lang != "zh-CN" || en.Lang != "en" || zh.Version != en.Version || len(en.Decisions) != 1 || en.Objection == "" {
		t.Errorf("notice: %+v / %+v", zh.Lang, en)
	}
	resp, err := http.Get(h.url + "/privacy/notice?lang=en")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(b.String(), "Automated consumer-credit limit decisions") || !strings.Contains(b.String(), `lang="en"`) {
		t.Errorf("html notice: %d", resp.StatusCode)
	}
}
