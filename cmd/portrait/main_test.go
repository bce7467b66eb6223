package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

func TestCatalogCheck(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"catalog", "check", "../../examples/demo/catalog.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("demo catalog: exit %d\n%s", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("handler: {name: {zh-CN: a, en: a}, contact: x}\npurposes:\n  - id: p\n    notice: {zh-CN: a, en: a}\n    notice_version: \"1\"\n    data_use: essential.service\nfields: []\nevent_types: []\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := Main([]string{"catalog", "check", bad}, &out, &errb); code != 1 {
		t.Errorf("bad catalog: exit %d", code)
	}
	// CN-1: a purpose with no basis, reported with file:line:column.
	if !strings.Contains(errb.String(), bad+":3:") || !strings.Contains(errb.String(), "CN-1") {
		t.Errorf("message: %s", errb.String())
	}
	if code := Main([]string{"catalog"}, &out, &errb); code != 2 {
		t.Errorf("usage: exit %d", code)
	}
	if code := Main([]string{"nosuch"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

// build compiles the portrait binary once per test run.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "portrait")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// node is one `portrait serve` process.
type node struct{ url string }

func startNode(t *testing.T, bin, dsn, master, admin string) node {
	t.Helper()
	// The admin key goes in the environment: process arguments are
	// readable by every account (ps).
	return startNodeEnv(t, bin, dsn, master, []string{"PORTRAIT_ADMIN_KEY=" + admin})
}

// startNodeArgs starts `portrait serve` with further flags.
func startNodeArgs(t *testing.T, bin, dsn, master string, extra ...string) node {
	t.Helper()
	return startNodeEnv(t, bin, dsn, master, nil, extra...)
}

// startNodeEnv starts `portrait serve` with further environment variables
// and flags.
func startNodeEnv(t *testing.T, bin, dsn, master string, env []string, extra ...string) node {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--addr", addr, "--db", dsn,
		"--catalog", "../../examples/demo/catalog.yaml"}, extra...)...)
	cmd.Env = append(append(os.Environ(), keys.EnvVar+"="+master), env...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if _, secret, _ := strings.Cut(kv, "="); argvHolds(cmd.Process.Pid, secret) {
			t.Errorf("serve's process arguments hold a secret given in its environment")
		}
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", addr, stderr.String())
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "Portrait serving on "); ok {
				ready <- u
			}
		}
	}()
	select {
	case u := <-ready:
		return node{url: u}
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not start:\n%s", stderr.String())
	}
	return node{}
}

func (n node) call(t *testing.T, method, path, key string, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, n.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %s", method, path, data)
		}
	}
	return resp.StatusCode
}

// TestTwoNodes: two `portrait serve` processes on one PostgreSQL database.
// A withdrawal or a suspension made through one is enforced by the other
// on its very next request (invariant 5, CN-4, RO-6).
func TestTwoNodes(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	bin := build(t)
	master := make([]byte, keys.MasterSize)
	rand.Read(master)
	key := keys.Encode(master)
	const admin = "two-node-admin-key"
	a := startNode(t, bin, dsn, key, admin)
	b := startNode(t, bin, dsn, key, admin)

	const regKey = "two-node-regulator"
	store, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(regKey))
	err = store.Update(context.Background(), func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(context.Background(), portrait.APIKey{ID: "regulator-1", Hash: sum[:], Role: policy.Regulator, Created: time.Now()})
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	event := fmt.Sprintf(`[{"subject":"zoe","type":"profile","time":%q,"fields":{"city":"北京","income":5000}}]`, now)
	type result struct {
		Results []struct {
			Status        string
			DroppedFields []struct{ Field, Code string } `json:"dropped_fields"`
		}
	}
	dropped := func(r result) string {
		if len(r.Results) != 1 || len(r.Results[0].DroppedFields) == 0 {
			return ""
		}
		return r.Results[0].DroppedFields[0].Code
	}

	if code := a.call(t, "PUT", "/v1/subjects/zoe/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
		t.Fatalf("grant on A: %d", code)
	}
	var r result
	b.call(t, "POST", "/v1/events", admin, event, &r)
	if d := dropped(r); d != "" {
		t.Fatalf("B ignores the grant made on A: %s", d)
	}
	for i := range 5 {
		if code := a.call(t, "PUT", "/v1/subjects/zoe/consents/credit", admin, `{"status":"withdrawn"}`, nil); code != 200 {
			t.Fatalf("withdraw on A: %d", code)
		}
		r = result{}
		b.call(t, "POST", "/v1/events", admin, event, &r)
		if d := dropped(r); d != "consent_withdrawn" {
			t.Fatalf("round %d: B's next request after a withdrawal on A: dropped=%q, want consent_withdrawn", i, d)
		}
		if code := b.call(t, "PUT", "/v1/subjects/zoe/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
			t.Fatalf("grant on B: %d", code)
		}
		r = result{}
		a.call(t, "POST", "/v1/events", admin, event, &r)
		if d := dropped(r); d != "" {
			t.Fatalf("round %d: A's next request after a grant on B: dropped=%q", i, d)
		}
	}

	// RO-6: a suspension made on B binds A's very next request, and so
	// does lifting it.
	if code := b.call(t, "POST", "/v1/suspensions", regKey, `{"kind":"field","id":"income","reason":"inquiry"}`, nil); code != 201 {
		t.Fatalf("suspend on B: %d", code)
	}
	r = result{}
	a.call(t, "POST", "/v1/events", admin, event, &r)
	if d := dropped(r); d != "suspended" {
		t.Fatalf("A's next request after a suspension on B: dropped=%q", d)
	}
	if code := b.call(t, "DELETE", "/v1/suspensions/field/income", regKey, "", nil); code != 204 {
		t.Fatalf("lift on B: %d", code)
	}
	r = result{}
	a.call(t, "POST", "/v1/events", admin, event, &r)
	if d := dropped(r); d != "" {
		t.Fatalf("A's next request after lifting on B: dropped=%q", d)
	}
}

// CN-7: a missing display name is a warning, exit 0; --strict refuses the
// catalog for it, with file:line:col, exit 1. The demo catalog has them all.
func TestCatalogCheckStrict(t *testing.T) {
	for _, args := range [][]string{{"catalog", "check", "../../examples/demo/catalog.yaml", "--strict"}, {"catalog", "check", "../../examples/demo/catalog.yaml"}} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 0 || errb.Len() > 0 || strings.Contains(out.String(), "warning") {
			t.Errorf("%v: exit %d, %s%s", args[3:], code, out.String(), errb.String())
		}
	}
	demo, err := os.ReadFile("../../examples/demo/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Take the title off the field city.
	lines := strings.Split(string(demo), "\n")
	line := slices.Index(lines, "  - name: city") + 1
	if line == 0 || !strings.Contains(lines[line], "title:") {
		t.Fatalf("demo catalog: no title under city")
	}
	lines = slices.Delete(lines, line, line+1)
	bad := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644)
	var out, errb bytes.Buffer
	if code := Main([]string{"catalog", "check", bad}, &out, &errb); code != 0 ||
		!strings.Contains(errb.String(), fmt.Sprintf("warning: %s:%d:5: field \"city\": no display name in zh-CN", bad, line)) ||
		!strings.Contains(out.String(), "2 warning(s)") {
		t.Errorf("without --strict: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := Main([]string{"catalog", "check", bad, "--strict"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), fmt.Sprintf("%s:%d:5: field \"city\": no display name in en", bad, line)) ||
		strings.Contains(errb.String(), "warning:") || !strings.Contains(errb.String(), "2 problem(s)") {
		t.Errorf("--strict: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Main([]string{"catalog", "check", bad, "--json"}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"warnings"`) {
		t.Errorf("--json: exit %d %s", code, out.String())
	}
}

// argvHolds reports whether the process's arguments, which every account
// can read (ps, /proc/PID/cmdline), contain secret. Where /proc is not
// there it reports false.
func argvHolds(pid int, secret string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && secret != "" && bytes.Contains(b, []byte(secret))
}
