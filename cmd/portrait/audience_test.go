package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/delivery"
	"github.com/portrait-dev/portrait/keys"
)

// TestServeAudienceDestination runs serve with a webhook destination that
// takes one audience. The webhook, a real HTTP receiver checking Standard
// Webhooks signatures, hears sports fans join, pseudonymously; it hears
// of the erasure of a subject it received and not of one it never
// received; the export of a subject it received names it (GDPR Art. 19,
// PIPL Art. 23). A bad audiences file is refused before start.
func TestServeAudienceDestination(t *testing.T) {
	const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg=="
	var mu sync.Mutex
	var events []delivery.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := delivery.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), 401)
			return
		}
		var ev delivery.Event
		json.Unmarshal(body, &ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "audiences.json")
	os.WriteFile(file, []byte(`[{"name":"sports","request":{"purpose":"personalization","expression":"labels.sports_fan"}}]`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"name":"sports","request":{"purpose":"personalization"}}]`), 0o600)
	t.Setenv("PORTRAIT_WEBHOOK_SECRET", secret)
	var out, errb strings.Builder
	if code := Main([]string{"serve", "--webhook", hook.URL, "--audiences", bad, "--db", filepath.Join(dir, "x.db")}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "audience 1") {
		t.Errorf("a bad audiences file: exit %d: %s", code, errb.String())
	}

	master := masterKey()
	const admin = "company-admin-key"
	p := start(t, "Portrait serving on", []string{keys.EnvVar + "=" + master, "PORTRAIT_ADMIN_KEY=" + admin, "PORTRAIT_WEBHOOK_SECRET=" + secret},
		"serve", "--addr", freeAddr(t), "--db", filepath.Join(dir, "p.db"), "--catalog", "../../examples/demo/catalog.yaml",
		"--monitor-every", "0", "--webhook", hook.URL, "--audiences", file, "--audience-every", "200ms")
	kr, err := keys.Parse(master)
	if err != nil {
		t.Fatal(err)
	}
	fans := []string{"ann", "ben", "cy", "eli"}
	for _, s := range append(slices.Clone(fans), "dan") {
		if code := p.call(t, "PUT", "/v1/subjects/"+s+"/consents/personalization", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
			t.Fatalf("grant: %d", code)
		}
	}
	var evs []string
	for _, s := range fans {
		for i := range 5 {
			evs = append(evs, fmt.Sprintf(`{"subject":%q,"type":"view","time":%q,"fields":{"item":"s","category":"sports","price":20}}`, s, time.Now().Add(-time.Duration(i+1)*time.Hour).UTC().Format(time.RFC3339)))
		}
	}
	if code := p.call(t, "POST", "/v1/events", admin, "["+strings.Join(evs, ",")+"]", nil); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	wait := func(what string, ok func([]delivery.Event) bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			done := ok(events)
			got := slices.Clone(events)
			mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: webhook got %+v", what, got)
			}
		}
	}
	wait("four sports fans join", func(es []delivery.Event) bool {
		n := 0
		for _, e := range es {
			if e.Type == delivery.Joined && e.Audience == "sports" && e.SubjectID == "" {
				n++
			}
		}
		return n == len(fans)
	})
	for _, s := range []string{"dan", "ann"} {
		if code := p.call(t, "POST", "/v1/subjects/"+s+"/erasure", admin, "", nil); code/100 != 2 {
			t.Fatalf("erase %s: %d", s, code)
		}
	}
	wait("ann's erasure", func(es []delivery.Event) bool {
		return slices.ContainsFunc(es, func(e delivery.Event) bool { return e.Type == delivery.Erasure && e.Pseudonym == kr.Pseudonym("ann") })
	})
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	for _, e := range events {
		if e.Pseudonym == kr.Pseudonym("dan") {
			t.Errorf("the webhook never received dan's data but got %+v", e)
		}
	}
	mu.Unlock()
	var doc struct {
		Delivered_to []struct{ Destination, Audience string }
	}
	if code := p.call(t, "GET", "/v1/subjects/ben/export", admin, "", &doc); code != 200 || len(doc.Delivered_to) != 1 ||
		doc.Delivered_to[0].Destination != "webhook" || doc.Delivered_to[0].Audience != "sports" {
		t.Errorf("ben's export: %d %+v", code, doc)
	}
}
