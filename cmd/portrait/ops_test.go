package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/keys"
)

// testCert writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool trusting it.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portrait test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(priv)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: serve --tls-cert/--tls-key serves HTTPS (and only that);
// a bad pair or half of one stops start-up; bad --trusted-proxies and
// --log-level are refused.
func TestServeTLS(t *testing.T) {
	os.Unsetenv(keys.EnvVar)
	dir := t.TempDir()
	certFile, keyFile, pool := testCert(t, dir)
	args := func(extra ...string) []string {
		return append([]string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "p.db"), "--catalog", demoCatalog,
			"--key-file", filepath.Join(dir, "p.key"), "--monitor-every", "0", "--assessments", filepath.Join(dir, "assessments")}, extra...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{args("--tls-cert", certFile), "together"},
		{args("--tls-cert", keyFile, "--tls-key", certFile), "--tls-cert"},
		{args("--trusted-proxies", "10.0.0.0/8,proxy.example"), "proxy.example"},
		{args("--log-level", "chatty"), "--log-level"},
	} {
		if err := serve(context.Background(), tc.args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want %q", tc.args[len(tc.args)-2:], err, tc.want)
		}
	}

	u := serveInProcess(t, args("--tls-cert", certFile, "--tls-key", keyFile, "--trusted-proxies", "127.0.0.1", "--log-level", "warn"))
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("serving on %q, want https", u)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(u + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("https healthz: %d tls %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get(strings.Replace(u, "https://", "http://", 1) + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Errorf("plain HTTP answered 200 on the TLS port")
	}
}

// serveInProcess runs serve in this process until the test ends and returns
// its URL.
func serveInProcess(t *testing.T, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{lines: make(chan string, 4)}
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, args, out, io.Discard) }()
	var u string
	select {
	case line := <-out.lines:
		u, _ = strings.CutPrefix(line, "Portrait serving on ")
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return u
}

func TestVerifyJSON(t *testing.T) {
	os.Unsetenv(keys.EnvVar)
	dir := t.TempDir()
	u := serveInProcess(t, []string{"--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "p.db"), "--catalog", demoCatalog,
		"--key-file", filepath.Join(dir, "p.key"), "--monitor-every", "0", "--assessments", filepath.Join(dir, "assessments")})
	cp := filepath.Join(dir, "cp")
	var v struct {
		OK     bool
		Report []string
		Error  string
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"verify", "--json", "--server", u, "--checkpoint", cp}, &out, &errb); code != 0 || json.Unmarshal(out.Bytes(), &v) != nil || !v.OK || len(v.Report) == 0 {
		t.Errorf("verify --json: exit %d %s %s", code, out.String(), errb.String())
	}
	// A saved checkpoint the server's key does not verify: ok false, exit 1.
	os.WriteFile(cp, []byte("not a checkpoint\n"), 0o600)
	out.Reset()
	v = struct {
		OK     bool
		Report []string
		Error  string
	}{}
	if code := Main([]string{"verify", "--json", "--server", u, "--checkpoint", cp}, &out, &errb); code != 1 || json.Unmarshal(out.Bytes(), &v) != nil || v.OK || v.Error == "" {
		t.Errorf("verify --json, bad checkpoint: exit %d %s", code, out.String())
	}
}

// TestHelp: --help on every command prints usage to stdout and exits 0.
func TestHelp(t *testing.T) {
	cmds := [][]string{{"serve"}, {"demo"}, {"catalog"}, {"catalog", "check"}, {"verify"}, {"fairness"}, {"keys"}, {"keys", "list"}, {"keys", "create"}, {"items"}, {"items", "import"}, {"catalog", "check", demoCatalog}, {"catalog", "diff"}, {"rules"}, {"rules", "check"}, {"regulator"}, {"regulator", "serve"}}
	for name := range commands {
		cmds = append(cmds, []string{name})
	}
	for _, c := range cmds {
		var out, errb bytes.Buffer
		if code := Main(append(c, "--help"), &out, &errb); code != 0 || out.Len() == 0 {
			t.Errorf("%v --help: exit %d, stdout %d bytes, stderr %q", c, code, out.Len(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "portrait ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("version: exit %d %q", code, out.String())
	}
}

// TestReadOnlyNeedsDatabase: the commands that only read never create a
// database; a missing SQLite file is an error naming it.
func TestReadOnlyNeedsDatabase(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nosuch.db")
	t.Setenv(keys.EnvVar, "")
	os.Unsetenv(keys.EnvVar)
	key := filepath.Join(dir, "p.key")
	if _, err := keys.Generate(key); err != nil {
		t.Fatal(err)
	}
	store := []string{"--db", missing, "--catalog", demoCatalog, "--key-file", key}
	for _, c := range [][]string{
		{"cases", "--db", missing},
		append([]string{"monitor"}, store...),
		append([]string{"derive"}, store...),
		append([]string{"keys", "list"}, store...),
	} {
		var out, errb bytes.Buffer
		if code := Main(c, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no database at "+missing) {
			t.Errorf("%v: exit %d %q", c[:1], code, errb.String())
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%v created %s", c[:1], missing)
		}
	}
}

func TestCatalogCheckJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"catalog", "check", demoCatalog, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d %s", code, errb.String())
	}
	var v struct {
		OK     bool
		Counts map[string]int
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || !v.OK || v.Counts["purposes"] == 0 {
		t.Errorf("catalog check --json: %v %s", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("purposes:\n  - id: x\n"), 0o644)
	out.Reset()
	var p struct {
		OK       bool
		Problems []struct {
			Line    int
			Message string
		}
	}
	if code := Main([]string{"catalog", "check", bad, "--json"}, &out, &errb); code != 1 || json.Unmarshal(out.Bytes(), &p) != nil || p.OK || len(p.Problems) == 0 || p.Problems[0].Message == "" {
		t.Errorf("bad catalog --json: exit %d %s", code, out.String())
	}
}

// TestDemoRemovesItsFiles: the demo's temporary directory, which holds a
// master key, is gone when the demo ends, unless --keep.
func TestDemoRemovesItsFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds the demo")
	}
	for _, keep := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		out := &lineWriter{lines: make(chan string, 64)}
		errc := make(chan error, 1)
		args := []string{"--addr", "127.0.0.1:0"}
		if keep {
			args = append(args, "--keep")
		}
		go func() { errc <- runDemo(ctx, args, out, io.Discard) }()
		var dir string
		deadline := time.After(120 * time.Second)
		for dir == "" {
			select {
			case l := <-out.lines:
				if f, ok := strings.CutPrefix(l, "files:"); ok {
					dir = strings.Fields(f)[0]
				}
			case err := <-errc:
				t.Fatalf("demo: %v", err)
			case <-deadline:
				t.Fatal("demo did not start")
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "portrait.key")); err != nil {
			t.Fatalf("no key in %s: %v", dir, err)
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("demo: %v", err)
		}
		_, err := os.Stat(dir)
		if keep {
			if err != nil {
				t.Errorf("--keep: %s removed", dir)
			}
			os.RemoveAll(dir)
		} else if err == nil {
			t.Errorf("%s left behind", dir)
		}
	}
}
