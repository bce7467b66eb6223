package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/storetest"
)

// TestRestoreReappliesChoicesAndOrders: a backup taken before a
// restriction, an objection and a receivership order is restored. The
// engine fetches the witnessed entries it lacks from the regulator's
// mirror and, before serving, restricts and objects again from what the
// records carry, registers the receiver's key again and acknowledges the
// order anew at its new log record. Real processes; a file backup on
// SQLite, pg_dump/pg_restore on PostgreSQL (SR-7, invariant 8).
func TestRestoreReappliesChoicesAndOrders(t *testing.T) {
	for _, pg := range []bool{false, true} {
		name := map[bool]string{false: "sqlite", true: "postgres"}[pg]
		t.Run(name, func(t *testing.T) {
			if pg && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			dir := t.TempDir()
			c := company{master: masterKey(), origin: "d.example/portrait", reg: startRegulator(t)}
			var id string
			id, c.token = c.reg.enrol(t, "丁公司 D Co.")
			var save, restore func()
			if pg {
				c.dsn = storetest.PostgresDatabase(t)
				save = func() { runTool(t, "pg_dump", "-Fc", "-f", filepath.Join(dir, "b.dump"), c.dsn) }
				restore = func() {
					pgRestore(t, c.dsn, filepath.Join(dir, "b.dump"))
				}
			} else {
				c.dsn = filepath.Join(dir, "d.db")
				save, restore = coldBackup(t, c.dsn, filepath.Join(dir, "b.db"))
			}
			const admin = "company-admin-key"
			p := c.serve(t, admin)
			for _, s := range []string{"zoe", "yan"} {
				if code := p.call(t, "PUT", "/v1/subjects/"+s+"/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
					t.Fatalf("grant: %d", code)
				}
			}
			p.stop()
			save()

			p = c.serve(t, admin)
			if code := p.call(t, "POST", "/v1/subjects/yan/restriction", admin, "", nil); code/100 != 2 {
				t.Fatalf("restrict: %d", code)
			}
			if code := p.call(t, "POST", "/v1/subjects/zoe/objection", admin, `{"kind":"marketing"}`, nil); code/100 != 2 {
				t.Fatalf("object: %d", code)
			}
			var prop struct{ ID, Receiver_key string }
			if code := c.reg.call(t, "POST", "/v1/orders", c.reg.admin, `{"company":"`+id+`","kind":"receivership","target":{"kind":"company","id":"`+id+`"},"reason":"自律失效 self-regulation failed"}`, &prop); code != 201 {
				t.Fatalf("receivership: %d", code)
			}
			var second struct{ Key string }
			c.reg.call(t, "POST", "/v1/staff", c.reg.admin, `{"name":"supervision/zhao.lei","role":"regulator-admin"}`, &second)
			if code := c.reg.call(t, "POST", "/v1/orders/"+prop.ID+"/approve", second.Key, "", nil); code != 200 {
				t.Fatalf("approve: %d", code)
			}
			type orders struct {
				Orders []struct {
					Ack_log_index  *int64
					Reacknowledged []struct{ Log_index int64 }
				}
			}
			var list orders
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				c.reg.call(t, "GET", "/v1/companies/"+id+"/orders", c.reg.admin, "", &list)
				if len(list.Orders) == 1 && list.Orders[0].Ack_log_index != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the receivership was not acknowledged within 15 s: %+v", list)
				}
			}
			first := *list.Orders[0].Ack_log_index
			waitCosigned(t, p, c.reg.witnessKey, first+1, 15*time.Second)
			p.stop()
			restore()

			p = c.serve(t, admin)
			flags := func(s string) map[string]any {
				var doc struct{ Flags map[string]any }
				if code := p.call(t, "GET", "/v1/subjects/"+s+"/export", prop.Receiver_key, "", &doc); code != 200 {
					t.Fatalf("export %s as the receiver: %d (the receiver's key was not registered again)", s, code)
				}
				return doc.Flags
			}
			if f := flags("yan"); f["restricted"] != true {
				t.Errorf("yan's restriction after the restore: %v", f)
			}
			if f := flags("zoe"); f["object_marketing"] != true || f["restricted"] != false {
				t.Errorf("zoe's objection after the restore: %v", f)
			}
			if code := p.call(t, "PUT", "/v1/subjects/zoe/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 403 {
				t.Errorf("the company's admin key under the restored receivership: %d, want 403", code)
			}
			c.reg.call(t, "GET", "/v1/companies/"+id+"/orders", c.reg.admin, "", &list)
			if re := list.Orders[0].Reacknowledged; len(re) != 1 || re[0].Log_index <= first || *list.Orders[0].Ack_log_index != first {
				t.Fatalf("the regulator's record of the order after the restore: first %d, again %+v", first, re)
			}
			if e := p.get(t, fmt.Sprintf("/v1/log/entries/%d", list.Orders[0].Reacknowledged[0].Log_index)); !contains(e, `"action":"reapply"`, prop.ID) {
				t.Errorf("the re-acknowledged log entry: %s", e)
			}
		})
	}
}

func contains(b []byte, subs ...string) bool {
	for _, s := range subs {
		if !strings.Contains(string(b), s) {
			return false
		}
	}
	return true
}

// TestCatalogChangeRefiles: a company engine restarted with a changed
// catalog files again with the regulator, and the regulator keeps the new
// filing beside the old one with its diff (SG-1). A restart with the same
// catalog files again without a diff. Real processes.
func TestCatalogChangeRefiles(t *testing.T) {
	reg := startRegulator(t)
	id, tok := reg.enrol(t, "己公司 F Co.")
	dir := t.TempDir()
	cat, err := os.ReadFile("../../examples/demo/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(path, cat, 0o600); err != nil {
		t.Fatal(err)
	}
	c := company{dsn: filepath.Join(dir, "f.db"), master: masterKey(), origin: "f.example/portrait", token: tok, reg: reg,
		extra: []string{"--catalog", path}}
	const admin = "company-admin-key"
	type filing struct {
		Catalog_digest, Previous_catalog_digest string
		Changes                                 []struct {
			Path     string
			Was, Now any
		}
	}
	filings := func() []filing {
		var out struct{ Filings []filing }
		if code := reg.call(t, "GET", "/v1/companies/"+id+"/filings", reg.admin, "", &out); code != 200 {
			t.Fatalf("filings: %d", code)
		}
		return out.Filings
	}
	c.serve(t, admin).stop()
	c.serve(t, admin).stop()
	if fs := filings(); len(fs) != 2 || fs[0].Catalog_digest == "" || fs[1].Catalog_digest != fs[0].Catalog_digest || fs[1].Previous_catalog_digest != "" || len(fs[1].Changes) != 0 {
		t.Fatalf("filings after two starts on one catalog: %+v", fs)
	}
	changed := strings.Replace(string(cat), "    owner: growth-team", "    owner: personalization-team", 1)
	if changed == string(cat) {
		t.Fatal("the demo catalog has no label owned by growth-team: the test changes nothing")
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	c.serve(t, admin).stop()
	fs := filings()
	if len(fs) != 3 {
		t.Fatalf("filings after a catalog change: %+v", fs)
	}
	last := fs[2]
	if last.Catalog_digest == fs[1].Catalog_digest || last.Previous_catalog_digest != fs[1].Catalog_digest {
		t.Errorf("the new filing's digests: %+v, previous filing %s", last, fs[1].Catalog_digest)
	}
	found := false
	for _, ch := range last.Changes {
		if strings.HasSuffix(ch.Path, ".owner") && ch.Was == "growth-team" && ch.Now == "personalization-team" {
			found = true
		} else if !strings.HasPrefix(ch.Path, "catalog_digest") && !strings.HasPrefix(ch.Path, "history") {
			t.Errorf("a change the catalog edit did not make: %+v", ch)
		}
	}
	if !found {
		t.Errorf("the diff lacks the owner change: %+v", last.Changes)
	}
	// Staff only.
	if code := reg.call(t, "GET", "/v1/companies/"+id+"/filings", tok, "", nil); code != 401 && code != 403 {
		t.Errorf("filings with a company token: %d", code)
	}
}
