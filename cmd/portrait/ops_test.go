package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{lines: make(chan string, 4)}
	errc := make(chan error, 1)
	go func() {
		errc <- serve(ctx, args("--tls-cert", certFile, "--tls-key", keyFile, "--trusted-proxies", "127.0.0.1", "--log-level", "warn"), out, io.Discard)
	}()
	var u string
	select {
	case line := <-out.lines:
		u, _ = strings.CutPrefix(line, "Portrait serving on ")
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
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
