package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/examples/demo"
)

// regulatorDemo starts, in this process, a regulator node and one demo
// company engine joined to it, each on its own store in a temporary
// directory that is removed on exit, and prints their URLs and keys.
// The two talk over HTTP exactly as separate processes would: the
// company is enrolled through the regulator's API and joins with the
// enrolment token, so its checkpoints come back cosigned.
func regulatorDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("regulator demo", stderr)
	regAddr := fs.String("addr", "127.0.0.1:8090", "address of the regulator node")
	coAddr := fs.String("company-addr", "127.0.0.1:8080", "address of the demo company's engine")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "portrait-regulator-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	regAdmin, coAdmin := "rga_"+rand.Text(), "coa_"+rand.Text()
	ctx, cancel := context.WithCancel(ctx)

	// Each node runs as its serve command would, its first lines read
	// from a pipe; errs collects how they end. stop ends them all and
	// waits, so the directory is removed only once they are closed.
	errs := make(chan error, 2)
	running := 0
	var first error
	stop := func() {
		cancel()
		for ; running > 0; running-- {
			if err := <-errs; first == nil && err != nil && !errors.Is(err, context.Canceled) {
				first = err
			}
		}
	}
	defer stop()
	run := func(name string, cmd func(context.Context, []string, io.Writer, io.Writer) error, args ...string) *bufio.Scanner {
		running++
		pr, pw := io.Pipe()
		go func() {
			err := cmd(ctx, args, pw, stderr)
			pw.CloseWithError(io.EOF)
			if err != nil {
				err = fmt.Errorf("%s: %w", name, err)
			}
			errs <- err
		}()
		sc := bufio.NewScanner(pr)
		go func() { <-ctx.Done(); pr.Close() }()
		return sc
	}
	// drain keeps reading a node's output once its first lines are in.
	drain := func(sc *bufio.Scanner) {
		go func() {
			for sc.Scan() {
			}
		}()
	}
	wait := func(sc *bufio.Scanner, prefix string) (string, error) {
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				return strings.TrimSpace(v), nil
			}
		}
		if stop(); first != nil {
			return "", first
		}
		return "", fmt.Errorf("a node stopped before printing %q", prefix)
	}

	sc := run("regulator", regulatorServe, "--addr", *regAddr, "--db", filepath.Join(dir, "regulator.db"),
		"--key-file", filepath.Join(dir, "regulator.key"), "--admin-key", regAdmin, "--name", "regulator.demo")
	regURL, err := wait(sc, "Portrait regulator serving on ")
	if err != nil {
		return err
	}
	vkey, err := wait(sc, "witness key: ")
	if err != nil {
		return err
	}
	drain(sc)
	const name = "示例公司 Demo Co."
	company, token, err := enrol(ctx, regURL, regAdmin, name)
	if err != nil {
		return err
	}
	catPath := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catPath, demo.Catalog, 0o600); err != nil {
		return err
	}
	sc = run("company", serve, "--addr", *coAddr, "--db", filepath.Join(dir, "company.db"), "--key-file", filepath.Join(dir, "company.key"),
		"--catalog", catPath, "--admin-key", coAdmin, "--assessments", filepath.Join(dir, "assessments"), "--origin", "demo.example/portrait",
		"--regulator", regURL, "--regulator-key", vkey, "--regulator-token", token, "--monitor-every", "0")
	coURL, err := wait(sc, "Portrait serving on ")
	if err != nil {
		return err
	}
	drain(sc)
	fmt.Fprintf(stdout, `Portrait regulator demo 监管节点演示
regulator 监管节点: %s
regulator admin key 监管管理员密钥: %s
witness key 见证公钥: %s
company 企业 %q (%s): %s
company admin key 企业管理员密钥: %s
try 试试:
  portrait verify --server %s --witness-key '%s' --regulator %s
  curl -H 'Authorization: Bearer %s' %s/v1/companies
Ctrl-C stops both and removes %s
`, regURL, regAdmin, vkey, name, company, coURL, coAdmin, coURL, vkey, regURL, regAdmin, regURL, dir)

	select {
	case err := <-errs:
		running--
		if err == nil {
			err = errors.New("a node stopped")
		}
		first = err
	case <-ctx.Done():
	}
	stop()
	return first
}

// enrol enrols a company at the regulator as its admin and returns the
// company's id and enrolment token.
func enrol(ctx context.Context, url, admin, name string) (id, token string, err error) {
	body, _ := json.Marshal(map[string]string{"name": name})
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/companies", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("enrol the demo company: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Token string `json:"enrolment_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("enrol the demo company: %s", resp.Status)
	}
	return out.ID, out.Token, nil
}
