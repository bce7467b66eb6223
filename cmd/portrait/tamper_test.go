package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/sqlite/sqlitetest"
	"github.com/portrait-dev/portrait/storetest"
)

// serveProc is one `portrait serve` process that a test stops itself.
type serveProc struct {
	node
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func startServe(t *testing.T, bin, dsn, master, admin string) *serveProc {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--addr", addr, "--db", dsn,
		"--catalog", "../../examples/demo/catalog.yaml", "--monitor-every", "0")
	cmd.Env = append(os.Environ(), keys.EnvVar+"="+master, "PORTRAIT_ADMIN_KEY="+admin)
	stdout, _ := cmd.StdoutPipe()
	p := &serveProc{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() })
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
		p.url = u
	case <-time.After(60 * time.Second):
		t.Fatalf("node did not start:\n%s", p.stderr.String())
	}
	return p
}

// stop ends the process as an operator would, with SIGINT.
func (p *serveProc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// engines are the stores the real-process tests run on: a SQLite file and,
// where PORTRAIT_TEST_POSTGRES is set, a PostgreSQL database.
func engines(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "portrait.db") },
		"postgres": func(t *testing.T) string { return storetest.PostgresDatabase(t) },
	}
}

// writeSome makes the node append audit records (consent changes).
func writeSome(t *testing.T, n node, admin string) {
	t.Helper()
	for _, s := range []string{"granted", "withdrawn", "granted"} {
		if code := n.call(t, "PUT", "/v1/subjects/zoe/consents/credit", admin, fmt.Sprintf(`{"status":%q,"notice_version":"1"}`, s), nil); code != 200 {
			t.Fatalf("consent %s: %d", s, code)
		}
	}
}

// publish signs and saves a checkpoint of the whole log with the node's
// key, as the running server does every second, and returns its size.
func publish(t *testing.T, dsn, master string) int64 {
	t.Helper()
	ctx := context.Background()
	kr, err := keys.Parse(master)
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New("portrait.local/log/"+kr.ID(), kr.LogKey())
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	note, err := l.Sign(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error { return tx.SaveCheckpoint(ctx, note) }); err != nil {
		t.Fatal(err)
	}
	size, _ := store.LogSize(ctx)
	return size
}

func newMaster(t *testing.T) string {
	m := make([]byte, keys.MasterSize)
	rand.Read(m)
	return keys.Encode(m)
}

// FA-6, invariant 8: `portrait serve` refuses to start on a log whose
// records were edited, swapped, truncated with the head wound back, or
// relabelled: it exits non-zero naming the entry and how to recover.
func TestServeRefusesTamperedLog(t *testing.T) {
	bin := build(t)
	const admin = "tamper-admin-key"
	for engine, dsn := range engines(t) {
		t.Run(engine, func(t *testing.T) {
			for _, tamper := range storetest.Tampers(0) {
				t.Run(tamper.Name, func(t *testing.T) {
					db, master := dsn(t), newMaster(t)
					p := startServe(t, bin, db, master, admin)
					writeSome(t, p.node, admin)
					p.stop()
					size := publish(t, db, master)

					// An honest restart passes the check.
					p = startServe(t, bin, db, master, admin)
					p.stop()
					if size2 := publish(t, db, master); size2 != size {
						// A restart may append (the API key is known, so
						// it should not); take the new size.
						size = size2
					}

					storetest.Tampers(size)[indexOf(tamper.Name)].Do(t, raw(t, db))

					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, bin, "serve", "--addr", freeAddr(t), "--db", db,
						"--catalog", "../../examples/demo/catalog.yaml", "--monitor-every", "0")
					cmd.Env = append(os.Environ(), keys.EnvVar+"="+master, "PORTRAIT_ADMIN_KEY="+admin)
					var stdout, stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					err := cmd.Run()
					if err == nil || cmd.ProcessState.ExitCode() <= 0 {
						t.Fatalf("serve on a log after %s: %v, exit %d; want a non-zero exit\n%s", tamper.Name, err, cmd.ProcessState.ExitCode(), stderr.String())
					}
					if strings.Contains(stdout.String(), "Portrait serving on") {
						t.Fatalf("serve listened on a tampered log:\n%s", stdout.String())
					}
					msg := stderr.String()
					want := []string{"refusing to serve an audit log that does not match", "Recovering from a detected tamper", "restore"}
					if tamper.Entry >= 0 {
						want = append(want, fmt.Sprintf("audit log entry %d failed its integrity check", tamper.Entry))
					} else {
						want = append(want, "wound back")
					}
					for _, w := range want {
						if !strings.Contains(msg, w) {
							t.Fatalf("serve's message after %s lacks %q:\n%s", tamper.Name, w, msg)
						}
					}
				})
			}
		})
	}
}

// raw opens the database behind a store's DSN, as storetest's tampers want.
func raw(t *testing.T, dsn string) storetest.Raw {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return storetest.PostgresRaw(t, dsn)
	}
	return sqlitetest.Raw(t, dsn)
}

func indexOf(name string) int {
	for i, tt := range storetest.Tampers(0) {
		if tt.Name == name {
			return i
		}
	}
	panic(name)
}

// FA-6: `portrait verify` run by an outsider against a running server
// finds each tamper experiment made in the store behind the server, by
// default (the entries verified before are few, so all are re-checked)
// and with --full, and exits non-zero without saving the checkpoint.
func TestVerifyFindsTamper(t *testing.T) {
	const admin = "verify-admin-key"
	bin := build(t)
	for engine, dsn := range engines(t) {
		t.Run(engine, func(t *testing.T) {
			for _, tamper := range storetest.Tampers(0) {
				t.Run(tamper.Name, func(t *testing.T) {
					db, master := dsn(t), newMaster(t)
					p := startServe(t, bin, db, master, admin)
					writeSome(t, p.node, admin)
					// Let the server publish a checkpoint of everything.
					time.Sleep(1500 * time.Millisecond)
					cp := filepath.Join(t.TempDir(), "checkpoint")
					var out, errb bytes.Buffer
					if code := Main([]string{"verify", "--server", p.url, "--checkpoint", cp}, &out, &errb); code != 0 {
						t.Fatalf("honest verify: exit %d\n%s%s", code, out.String(), errb.String())
					}
					saved, _ := os.ReadFile(cp)
					c, err := audit.ParseCheckpoint(saved, strings.TrimSpace(getText(t, p.url+"/v1/log/key")))
					if err != nil {
						t.Fatal(err)
					}
					storetest.Tampers(c.Size)[indexOf(tamper.Name)].Do(t, raw(t, db))
					for _, args := range [][]string{{}, {"--full"}} {
						out.Reset()
						errb.Reset()
						code := Main(append([]string{"verify", "--server", p.url, "--checkpoint", cp}, args...), &out, &errb)
						if code != 1 {
							t.Fatalf("verify %v after %s: exit %d, want 1\n%s%s", args, tamper.Name, code, out.String(), errb.String())
						}
						if after, _ := os.ReadFile(cp); !bytes.Equal(after, saved) {
							t.Fatalf("verify %v saved a checkpoint after a failed check", args)
						}
						named := tamper.Entry
						if tamper.Name == "swap" && len(args) == 0 && strings.Contains(errb.String(), "entry 0 ") {
							// A sampled inclusion proof takes its hashes
							// from the server: the swapped neighbour shows.
							named = 0
						}
						if tamper.Entry >= 0 && !regexp.MustCompile(fmt.Sprintf(`(entry |entries/)%d\b`, named)).MatchString(errb.String()) {
							t.Fatalf("verify %v after %s does not name entry %d:\n%s", args, tamper.Name, tamper.Entry, errb.String())
						}
					}
				})
			}
		})
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := httpGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
