package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/sqlite"
	"github.com/portrait-dev/portrait/storetest"
)

// keyLine is what `portrait keys create` prints: the key and nothing else.
var keyLine = regexp.MustCompile(`^pk_[a-z]+_[0-9a-f]{48}\n$`)

// TestKeysCommand: `portrait keys create|list|revoke` on SQLite and
// PostgreSQL, with clear errors; a key made by the command works in the
// server as the person it names, and stops working once revoked. Every
// change is an audit record (CM-5, RO-6, RO-7).
func TestKeysCommand(t *testing.T) {
	t.Setenv(keys.EnvVar, "")
	os.Unsetenv(keys.EnvVar)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "p.key")
	if _, err := keys.Generate(keyFile); err != nil {
		t.Fatal(err)
	}
	dsns := map[string]string{"sqlite": filepath.Join(dir, "p.db")}
	s, err := sqlite.Open(context.Background(), dsns["sqlite"])
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if os.Getenv("PORTRAIT_TEST_POSTGRES") != "" {
		dsns["postgres"] = storetest.PostgresDatabase(t)
	}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			dsn, ok := dsns[engine]
			if !ok {
				t.Skip("PORTRAIT_TEST_POSTGRES is not set")
			}
			testKeysCommand(t, dsn, keyFile)
		})
	}
}

func testKeysCommand(t *testing.T, dsn, keyFile string) {
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		if len(args) > 1 {
			args = append(args, "--db", dsn, "--key-file", keyFile)
		}
		code := Main(append([]string{"keys"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, key, stderr := run("create", "--role", "reviewer", "--name", "risk/alice", "--expires", "720h")
	if code != 0 || !keyLine.MatchString(key) {
		t.Fatalf("create: exit %d, stdout %q, stderr %s", code, key, stderr)
	}
	key = strings.TrimSpace(key)
	if code, k, _ := run("create", "--role", "operator", "--name", "ops/dan"); code != 0 || !keyLine.MatchString(k) {
		t.Fatalf("create with the default lifetime: exit %d", code)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "--role", "reviewer", "--name", "alice"}, 1, "--name \"alice\": want team/person"},
		{[]string{"create", "--role", "regulator", "--name", "risk/bob"}, 1, "--role \"regulator\": a company may not create regulator keys"},
		{[]string{"create", "--role", "root", "--name", "risk/bob"}, 1, "--role \"root\": want one of"},
		{[]string{"create", "--role", "reviewer", "--name", "risk/alice"}, 1, "--name risk/alice: a key of that name is in force; revoke it first"},
		{[]string{"create", "--role", "reviewer", "--name", "risk/bob", "--expires", "2y"}, 1, "--expires 730d: want between 1m0s and 365d; the default is 90d"},
		{[]string{"create", "--role", "reviewer", "--name", "risk/bob", "--expires", "soon"}, 1, "--expires \"soon\""},
		{[]string{"create", "--name", "risk/bob"}, 2, "--role and --name are required"},
		{[]string{"revoke", "--role", "admin"}, 2, "flag provided but not defined: -role"},
		{[]string{"revoke"}, 2, "--name is required"},
		{[]string{"revoke", "--name", "risk/nobody"}, 1, "no API key named risk/nobody is in force"},
		{[]string{"rotate", "--name", "risk/alice"}, 2, "unknown subcommand"},
		{[]string{"list", "extra"}, 2, "unexpected argument"},
	} {
		code, out, errb := run(tc.args...)
		if code != tc.code || !strings.Contains(errb, tc.want) || out != "" {
			t.Errorf("keys %v: exit %d, stdout %q, stderr %q; want exit %d saying %q", tc.args, code, out, errb, tc.code, tc.want)
		}
	}

	code, list, _ := run("list", "--catalog", "unused.yaml")
	if code != 0 || !regexp.MustCompile(`(?m)^risk/alice +reviewer +\S+ \S+ +\S+ \S+ +never$`).MatchString(list) || !strings.Contains(list, "ops/dan") || strings.Contains(list, "pk_") {
		t.Errorf("list: exit %d\n%s", code, list)
	}
	var js struct {
		Keys []struct{ Name, Role string }
	}
	code, list, _ = run("list", "--json")
	if err := json.Unmarshal([]byte(list), &js); code != 0 || err != nil || len(js.Keys) != 2 || js.Keys[1].Name != "risk/alice" || strings.Contains(list, "pk_") {
		t.Errorf("list --json: exit %d %v\n%s", code, err, list)
	}

	// The key works in a server as risk/alice, then not once revoked.
	srv, store := serveStore(t, dsn, keyFile)
	get := func(key string) int {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/reviews", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(key); code != 200 {
		t.Fatalf("the CLI's key in the server: %d", code)
	}
	if code, out, errb := run("revoke", "--name", "risk/alice"); code != 0 || out != "" {
		t.Fatalf("revoke: exit %d %q %s", code, out, errb)
	}
	if code := get(key); code != 401 {
		t.Errorf("revoked key: %d", code)
	}

	// Audit records, by the CLI, without key material.
	ctx := context.Background()
	size, _ := store.LogSize(ctx)
	entries, err := store.LogEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		var r audit.Record
		json.Unmarshal(e.Data, &r)
		if r.Kind == "apikey" {
			got = append(got, fmt.Sprintf("%s %v by %s", r.Action, r.Detail["name"], r.Actor))
		}
		if bytes.Contains(e.Data, []byte(key)) || bytes.Contains(e.Data, []byte("pk_")) {
			t.Errorf("audit entry %d holds a key: %s", e.Index, e.Data)
		}
	}
	if want := "create risk/alice by system:cli|create ops/dan by system:cli|revoke risk/alice by system:cli"; strings.Join(got, "|") != want {
		t.Errorf("audit: %s, want %s", strings.Join(got, "|"), want)
	}

	// No database there: say so, and create none.
	if !strings.HasPrefix(dsn, "postgres") {
		missing := filepath.Join(t.TempDir(), "typo.db")
		var out, errb bytes.Buffer
		if code := Main([]string{"keys", "list", "--db", missing, "--key-file", keyFile}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no database at") {
			t.Errorf("missing database: exit %d %s", code, errb.String())
		}
		if _, err := os.Stat(missing); err == nil {
			t.Errorf("keys list created %s", missing)
		}
	}
}

// serveStore serves the app over dsn in-process.
func serveStore(t *testing.T, dsn, keyFile string) (*httptest.Server, portrait.Store) {
	t.Helper()
	a := testApp(t, dsn, keyFile)
	srv := httptest.NewServer(a.server)
	t.Cleanup(srv.Close)
	return srv, a.store
}

// testApp wires the app over dsn with the demo catalog.
func testApp(t *testing.T, dsn, keyFile string) *app {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cat, err := catalog.Load(demoCatalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kr, err := loadKeys(keyFile, false, logger)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, cat, store, kr, logger, options{Assessments: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestDemoKeys: the demo's keys are named demo/<role>, the admin's may be
// fixed, and a demo restarted on the same database issues new keys and
// revokes the last start's.
func TestDemoKeys(t *testing.T) {
	t.Setenv(keys.EnvVar, "")
	os.Unsetenv(keys.EnvVar)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "p.key")
	if _, err := keys.Generate(keyFile); err != nil {
		t.Fatal(err)
	}
	a := testApp(t, filepath.Join(dir, "p.db"), keyFile)
	ctx := context.Background()
	first, err := demoKeys(ctx, a, "fixed-demo-admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range policy.Roles {
		c, err := a.staff.Authenticate(ctx, first[role])
		if err != nil || c.Role != role || c.ID != "demo/"+string(role) {
			t.Errorf("demo key for %s: %+v %v", role, c, err)
		}
	}
	if first[policy.Admin] != "fixed-demo-admin" {
		t.Errorf("demo admin key %q, want the fixed one", first[policy.Admin])
	}
	second, err := demoKeys(ctx, a, "fixed-demo-admin")
	if err != nil {
		t.Fatalf("demo restarted on the same database: %v", err)
	}
	if _, err := a.staff.Authenticate(ctx, first[policy.Reviewer]); portrait.ErrorCode(err) != portrait.EUNAUTHORIZED {
		t.Errorf("the last start's reviewer key: %v", err)
	}
	for _, k := range []string{second[policy.Reviewer], second[policy.Admin]} {
		if _, err := a.staff.Authenticate(ctx, k); err != nil {
			t.Errorf("this start's key: %v", err)
		}
	}
}

// lineWriter hands lines written to it to a channel.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		select {
		case w.lines <- strings.TrimSpace(line):
		default:
		}
	}
}

// TestAdminKeyFile: the bootstrap admin key may come from a file, so that
// it never shows in ps; the file must be private. The key registers as
// admin/bootstrap, and once revoked it is never registered again.
func TestAdminKeyFile(t *testing.T) {
	t.Setenv(keys.EnvVar, "")
	os.Unsetenv(keys.EnvVar)
	dir := t.TempDir()
	db, keyFile := filepath.Join(dir, "p.db"), filepath.Join(dir, "p.key")
	if _, err := keys.Generate(keyFile); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	rand.Read(b)
	admin := fmt.Sprintf("admin-%x", b)
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), mode)
		os.Chmod(p, mode)
		return p
	}
	good := write("admin.key", admin+"\n", 0o600)
	serveArgs := func(extra ...string) []string {
		return append([]string{"--addr", "127.0.0.1:0", "--db", db, "--catalog", demoCatalog, "--key-file", keyFile,
			"--monitor-every", "0", "--assessments", filepath.Join(dir, "assessments")}, extra...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{serveArgs("--admin-key-file", write("open.key", admin, 0o644)), "readable by other accounts; run `chmod 600"},
		{serveArgs("--admin-key-file", write("empty.key", "\n", 0o600)), "must hold the key on one line"},
		{serveArgs("--admin-key-file", filepath.Join(dir, "none.key")), "does not exist"},
		{serveArgs("--admin-key-file", good, "--admin-key", admin), "not both"},
	} {
		err := serve(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want %q", tc.args[len(tc.args)-2:], err, tc.want)
		}
	}

	start := func() (string, func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &lineWriter{lines: make(chan string, 4)}
		errc := make(chan error, 1)
		go func() { errc <- serve(ctx, serveArgs("--admin-key-file", good), out, io.Discard) }()
		select {
		case line := <-out.lines:
			u, _ := strings.CutPrefix(line, "Portrait serving on ")
			return u, func() error { cancel(); return <-errc }
		case err := <-errc:
			cancel()
			return "", func() error { return err }
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not start")
		}
		return "", nil
	}
	u, stop := start()
	if u == "" {
		t.Fatalf("serve with a private admin key file: %v", stop())
	}
	req, _ := http.NewRequest("GET", u+"/v1/keys", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Keys []struct {
			Name, Role string
			Expires    *time.Time
		}
	}
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(list.Keys) != 1 || list.Keys[0].Name != "admin/bootstrap" || list.Keys[0].Role != "admin" || list.Keys[0].Expires != nil {
		t.Fatalf("keys after start: %d %+v", resp.StatusCode, list)
	}
	stop()
	// Restarting with the same key is fine; after its revocation it is refused.
	if u, stop = start(); u == "" {
		t.Fatalf("restart: %v", stop())
	}
	stop()
	var out, errb bytes.Buffer
	if code := Main([]string{"keys", "revoke", "--name", "admin/bootstrap", "--db", db, "--key-file", keyFile}, &out, &errb); code != 0 {
		t.Fatalf("revoke bootstrap: %d %s", code, errb.String())
	}
	if u, stop = start(); u != "" {
		stop()
		t.Fatal("serve registered a revoked admin key again")
	} else if err := stop(); err == nil || !strings.Contains(err.Error(), "was revoked") {
		t.Errorf("serve with a revoked admin key: %v", err)
	}
}

// TestServeAndCLIRevokeSQLite: `portrait serve` owns its SQLite file, so
// `portrait keys revoke` run beside it is refused with an error that says
// to use the server's API, and revokes nothing; the revocation through
// the API binds the very next request (CM-5). SQLite is one node only:
// a second process writing the file would not be seen by the first
// (sqlite.TestOpenRefusesSecondProcess; across nodes on PostgreSQL,
// TestRevokedOnEveryNode).
func TestServeAndCLIRevokeSQLite(t *testing.T) {
	bin := build(t)
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	mk := keys.Encode(master)
	const admin = "sqlite-cli-revoke-admin-key"
	db := filepath.Join(t.TempDir(), "p.db")
	n := startNode(t, bin, db, mk, admin)
	const name = "risk/r0"
	var k struct{ Key string }
	if code := n.call(t, "POST", "/v1/keys", admin, `{"role":"reviewer","name":"`+name+`","expires_in":"1h"}`, &k); code != 201 {
		t.Fatalf("create: %d", code)
	}
	cmd := exec.Command(bin, "keys", "revoke", "--name", name, "--db", db)
	cmd.Env = append(os.Environ(), keys.EnvVar+"="+mk)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another process") || !strings.Contains(string(out), "DELETE /v1/keys/{name}") {
		t.Fatalf("portrait keys revoke beside serve on its SQLite file: %v\n%s\nwant a refusal naming the API", err, out)
	}
	if code := n.call(t, "GET", "/v1/reviews", k.Key, "", nil); code != 200 {
		t.Fatalf("the refused revocation revoked the key: %d", code)
	}
	if code := n.call(t, "DELETE", "/v1/keys/"+name, admin, "", nil); code/100 != 2 {
		t.Fatalf("revoke through the API: %d", code)
	}
	if code := n.call(t, "GET", "/v1/reviews", k.Key, "", nil); code != 401 {
		t.Fatalf("the next request after a revocation: %d, want 401", code)
	}
}

// TestTwoNodesStaffKeys: two `portrait serve` processes on one PostgreSQL
// database, one given the admin key on the command line and one by file.
// A key created on one node works on the other; revoked on one, it is
// refused by the other's very next request — through the API and through
// the CLI (CM-5).
func TestTwoNodesStaffKeys(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	bin := build(t)
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	mk := keys.Encode(master)
	const admin = "two-node-staff-admin-key"
	file := filepath.Join(t.TempDir(), "admin.key")
	if err := os.WriteFile(file, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, bin, dsn, mk, admin)
	b := startNodeArgs(t, bin, dsn, mk, "--admin-key-file", file)

	for i := range 5 {
		name := fmt.Sprintf("risk/r%d", i)
		var k struct{ Key string }
		if code := a.call(t, "POST", "/v1/keys", admin, `{"role":"reviewer","name":"`+name+`","expires_in":"1h"}`, &k); code != 201 {
			t.Fatalf("create on A: %d", code)
		}
		if code := b.call(t, "GET", "/v1/reviews", k.Key, "", nil); code != 200 {
			t.Fatalf("round %d: B refuses a key made on A: %d", i, code)
		}
		from, to := a, b
		if i%2 == 1 {
			from, to = b, a
		}
		if code := from.call(t, "DELETE", "/v1/keys/"+name, admin, "", nil); code != 204 {
			t.Fatalf("revoke: %d", code)
		}
		if code := to.call(t, "GET", "/v1/reviews", k.Key, "", nil); code != 401 {
			t.Fatalf("round %d: the next request after a revocation on the other node: %d, want 401", i, code)
		}
	}

	// The CLI writes to the same database: its key works on both nodes,
	// and its revocation binds both at once.
	t.Setenv(keys.EnvVar, mk)
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"keys"}, append(args, "--db", dsn)...), &out, &errb)
		if code != 0 {
			t.Logf("keys %v: %s", args, errb.String())
		}
		return code, strings.TrimSpace(out.String())
	}
	code, key := run("create", "--role", "auditor", "--name", "audit/ann")
	if code != 0 {
		t.Fatalf("keys create: %d", code)
	}
	for _, n := range []node{a, b} {
		if code := n.call(t, "GET", "/v1/keys", key, "", nil); code != 200 {
			t.Fatalf("the CLI's key on %s: %d", n.url, code)
		}
	}
	if code, _ := run("revoke", "--name", "audit/ann"); code != 0 {
		t.Fatal("keys revoke failed")
	}
	for _, n := range []node{a, b} {
		if code := n.call(t, "GET", "/v1/keys", key, "", nil); code != 401 {
			t.Errorf("the CLI-revoked key on %s: %d", n.url, code)
		}
	}
}
