package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/storetest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the portrait binary once for every test that runs real
// processes.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portrait-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "portrait")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		binErr = cmd.Run()
	})
	if binErr != nil {
		t.Fatalf("build: %v", binErr)
	}
	return binPath
}

// proc is a running portrait process.
type proc struct {
	url    string
	cancel func()
	done   chan struct{}
	stderr *syncBuffer
	stdout *syncBuffer // every line it printed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs bin with args and env until the test ends (or stop), and
// returns once it printed "<ready> URL".
func start(t *testing.T, ready string, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	stdout, _ := cmd.StdoutPipe()
	p := &proc{cancel: cancel, done: make(chan struct{}), stderr: &syncBuffer{}, stdout: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%v stderr:\n%s", args[:min(2, len(args))], p.stderr.String())
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(p.stdout, sc.Text())
			if u, ok := strings.CutPrefix(sc.Text(), ready+" "); ok {
				urls <- u
			}
		}
	}()
	select {
	case p.url = <-urls:
		return p
	case <-p.done:
		t.Fatalf("%v exited:\n%s", args, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%v did not start:\n%s", args, p.stderr.String())
	}
	return nil
}

func (p *proc) stop() {
	p.cancel()
	<-p.done
}

func (p *proc) call(t *testing.T, method, path, key, body string, out any) int {
	t.Helper()
	return node{url: p.url}.call(t, method, path, key, body, out)
}

func (p *proc) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func masterKey() string {
	m := make([]byte, keys.MasterSize)
	rand.Read(m)
	return keys.Encode(m)
}

// regulatorNode starts `portrait regulator serve` on a fresh SQLite file.
type regulatorNode struct {
	*proc
	admin, master, witnessKey string
	args                      []string
}

func startRegulator(t *testing.T) *regulatorNode {
	t.Helper()
	r := &regulatorNode{admin: r0admin, master: masterKey(),
		args: []string{"regulator", "serve", "--addr", freeAddr(t), "--db", filepath.Join(t.TempDir(), "regulator.db"), "--name", "regulator.test"}}
	r.restart(t)
	r.witnessKey = strings.TrimSpace(string(r.get(t, "/v1/witness/key")))
	return r
}

const r0admin = "regulator-admin-key"

// restart starts the regulator again on the same address and store.
func (r *regulatorNode) restart(t *testing.T) {
	t.Helper()
	r.proc = start(t, "Portrait regulator serving on", []string{keys.EnvVar + "=" + r.master, "PORTRAIT_ADMIN_KEY=" + r.admin}, r.args...)
}

// enrol enrols a company and returns its enrolment token.
func (r *regulatorNode) enrol(t *testing.T, name string) (id, token string) {
	t.Helper()
	var out struct{ ID, Enrolment_token string }
	if code := r.call(t, "POST", "/v1/companies", r.admin, `{"name":"`+name+`"}`, &out); code != 201 {
		t.Fatalf("enrol %s: %d", name, code)
	}
	return out.ID, out.Enrolment_token
}

// company is a joined company engine's configuration.
type company struct {
	dsn, master, origin, token string
	reg                        *regulatorNode
	extra                      []string // more serve flags
}

func (c company) serve(t *testing.T, admin string) *proc {
	t.Helper()
	args := []string{"serve", "--addr", freeAddr(t), "--db", c.dsn, "--catalog", "../../examples/demo/catalog.yaml",
		"--origin", c.origin, "--regulator", c.reg.url, "--regulator-key", c.reg.witnessKey, "--monitor-every", "0"}
	return start(t, "Portrait serving on", []string{keys.EnvVar + "=" + c.master, "PORTRAIT_ADMIN_KEY=" + admin, "PORTRAIT_REGULATOR_TOKEN=" + c.token}, append(args, c.extra...)...)
}

// waitCosigned waits until the node serves a checkpoint of at least size
// entries cosigned by the regulator, and returns it.
func waitCosigned(t *testing.T, p *proc, wkey string, size int64, within time.Duration) []byte {
	t.Helper()
	key := string(p.get(t, "/v1/log/key"))
	deadline := time.Now().Add(within)
	for {
		msg := p.get(t, "/v1/log/checkpoint")
		cp, err := audit.ParseCheckpoint(msg, key)
		if err == nil && cp.Size >= size && bytes.Count(msg, []byte("\n— ")) >= 2 {
			return msg
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of %d entries cosigned within %s; last:\n%s", size, within, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCaughtUp waits until every node of the company whose store is dsn
// serves a cosigned checkpoint of the whole log (at least min entries),
// and the regulator has witnessed no more than that.
func waitCaughtUp(t *testing.T, reg *regulatorNode, c company, nodes []*proc, min int64, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	store, err := openStore(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(within)
	for {
		size, err := store.LogSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Companies []struct {
				Origin         string
				Witnessed_size int64
			}
		}
		reg.call(t, "GET", "/v1/companies", reg.admin, "", &list)
		want := max(min, size)
		for _, co := range list.Companies {
			if co.Origin == c.origin {
				want = max(want, co.Witnessed_size)
			}
		}
		behind := ""
		for _, p := range nodes {
			msg := p.get(t, "/v1/log/checkpoint")
			cp, err := audit.ParseCheckpoint(msg, string(p.get(t, "/v1/log/key")))
			if err != nil || cp.Size < want || bytes.Count(msg, []byte("\n— ")) < 2 {
				behind = fmt.Sprintf("%s serves:\n%s", p.url, msg)
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes of %s not caught up with %d entries within %s; %s", c.origin, want, within, behind)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRegulatorWitness runs one regulator and two joined companies as
// real processes, company B with two serve nodes on one PostgreSQL
// database. Every node serves checkpoints the regulator cosigned; they
// verify with portrait verify --witness-key and with independent C2SP
// implementations; a server behind what the regulator cosigned fails
// verify --regulator (SG-2).
func TestRegulatorWitness(t *testing.T) {
	reg := startRegulator(t)
	_, tokA := reg.enrol(t, "甲公司 A Co.")
	_, tokB := reg.enrol(t, "乙公司 B Co.")
	a := company{dsn: filepath.Join(t.TempDir(), "a.db"), master: masterKey(), origin: "a.example/portrait", token: tokA, reg: reg}
	const admin = "company-admin-key"
	a1 := a.serve(t, admin)

	grant := func(p *proc, subject string) {
		t.Helper()
		if code := p.call(t, "PUT", "/v1/subjects/"+subject+"/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
			t.Fatalf("grant: %d", code)
		}
	}
	grant(a1, "zoe")
	// The engine submits within 2 s of signing; signing happens within
	// 1 s of the append.
	cp := waitCosigned(t, a1, reg.witnessKey, 1, 4*time.Second)

	// Independent verifiers accept the cosigned checkpoint.
	kr, err := keys.Parse(reg.master)
	if err != nil {
		t.Fatal(err)
	}
	tw, _ := torchwood.NewCosignatureSigner("regulator.test/witness", kr.WitnessKey())
	if tw.Verifier().String() != reg.witnessKey {
		t.Fatalf("witness key %s, torchwood computes %s", reg.witnessKey, tw.Verifier().String())
	}
	logV, err := note.NewVerifier(strings.TrimSpace(string(a1.get(t, "/v1/log/key"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, n, err := log.ParseCheckpoint(cp, "a.example/portrait", logV, tw.Verifier()); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("transparency-dev/formats with torchwood's cosignature verifier: %v\n%s", err, cp)
	}

	// portrait verify --witness-key (and --regulator) passes.
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"verify", "--checkpoint", ""}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("--server", a1.url, "--witness-key", reg.witnessKey, "--regulator", reg.url); code != 0 {
		t.Fatalf("verify --witness-key --regulator: %d\n%s", code, out)
	}
	// A wrong witness key fails.
	other, _ := torchwood.NewCosignatureSigner("regulator.test/witness", keysFor(t).WitnessKey())
	if code, out := run("--server", a1.url, "--witness-key", other.Verifier().String()); code != 1 || !strings.Contains(out, "not cosigned") {
		t.Errorf("verify with another witness key: %d\n%s", code, out)
	}

	// Company B: two nodes on one PostgreSQL database.
	if os.Getenv(storetest.EnvPostgres) != "" {
		b := company{dsn: storetest.PostgresDatabase(t), master: masterKey(), origin: "b.example/portrait", token: tokB, reg: reg}
		b1 := b.serve(t, admin)
		b2 := b.serve(t, admin)
		grant(b1, "yan")
		grant(b2, "xu")
		// Each node has its own checkpoints cosigned: one may still serve
		// an older one after the other's newer one was cosigned, and
		// --regulator rightly fails a node behind what the regulator
		// cosigned. Verify once both serve the whole log, cosigned: then
		// neither has anything newer to have cosigned.
		waitCaughtUp(t, reg, b, []*proc{b1, b2}, 2, 10*time.Second)
		for _, p := range []*proc{b1, b2} {
			if code, out := run("--server", p.url, "--witness-key", reg.witnessKey, "--regulator", reg.url); code != 0 {
				t.Fatalf("verify node of B: %d\n%s", code, out)
			}
		}
	}

	// A server showing less than the regulator cosigned fails
	// --regulator: serve A's old cosigned checkpoint after A grew.
	grant(a1, "ann")
	// Wait for a cosigned tree larger than cp's, whatever cp's size (the
	// log may hold more than one entry when cp was taken).
	old, err := audit.ParseCheckpoint(cp, string(a1.get(t, "/v1/log/key")))
	if err != nil {
		t.Fatal(err)
	}
	waitCosigned(t, a1, reg.witnessKey, old.Size+1, 4*time.Second)
	stale := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/log/checkpoint" {
			w.Write(cp)
			return
		}
		resp, err := http.Get(a1.url + r.URL.String())
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer stale.Close()
	if code, out := run("--server", stale.URL, "--witness-key", reg.witnessKey); code != 0 {
		t.Errorf("stale but cosigned, without --regulator: %d\n%s", code, out)
	}
	if code, out := run("--server", stale.URL, "--witness-key", reg.witnessKey, "--regulator", reg.url); code != 1 || !strings.Contains(out, "rolled back") {
		t.Errorf("stale server with --regulator: %d\n%s", code, out)
	}

	// Restarting with the same flags works, and the log keeps being
	// cosigned.
	a1.stop()
	a2 := a.serve(t, admin)
	grant(a2, "bo")
	waitCosigned(t, a2, reg.witnessKey, 3, 4*time.Second)

	// The regulator lists both companies, with what it witnessed.
	var list struct {
		Companies []struct {
			Name, Origin   string
			Witnessed_size int64
			Last_contact   string
		}
	}
	reg.call(t, "GET", "/v1/companies", reg.admin, "", &list)
	if len(list.Companies) != 2 || list.Companies[0].Origin != "a.example/portrait" || list.Companies[0].Witnessed_size < 3 || list.Companies[0].Last_contact == "" {
		t.Errorf("companies: %+v", list)
	}
}

func keysFor(t *testing.T) *keys.Keyring {
	kr, err := keys.Parse(masterKey())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// putCompanyKey registers a staff key in a company's store beside its
// running nodes.
func putCompanyKey(t *testing.T, dsn, key string, role policy.Role) {
	t.Helper()
	ctx := context.Background()
	store, err := openStore(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sum := sha256.Sum256([]byte(key))
	if err := store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		return tx.PutAPIKey(ctx, portrait.APIKey{ID: string(role) + "-test", Hash: sum[:], Role: role, Created: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRegulatorOrders: a suspension ordered by the regulator binds every
// node of the company within 10 s, no company key can lift it, the
// engine acknowledges it with the index of its own log record, and the
// regulator's lift order ends it (RO-6, invariant 9). A receivership
// needs a second member of staff, hands admin powers to the receiver and
// back (SG-4).
func TestRegulatorOrders(t *testing.T) {
	reg := startRegulator(t)
	id, tok := reg.enrol(t, "乙公司 B Co.")
	c := company{master: masterKey(), origin: "b.example/portrait", token: tok, reg: reg}
	nodes := 1
	if os.Getenv(storetest.EnvPostgres) != "" {
		c.dsn, nodes = storetest.PostgresDatabase(t), 2
	} else {
		c.dsn = filepath.Join(t.TempDir(), "b.db")
	}
	const admin = "company-admin-key"
	var ps []*proc
	for range nodes {
		ps = append(ps, c.serve(t, admin))
	}
	const companyRegulator = "company-side-regulator-key"
	putCompanyKey(t, c.dsn, companyRegulator, policy.Regulator)
	if code := ps[0].call(t, "PUT", "/v1/subjects/zoe/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
		t.Fatalf("grant: %d", code)
	}
	event := fmt.Sprintf(`[{"subject":"zoe","type":"profile","time":%q,"fields":{"city":"北京","income":5000}}]`, time.Now().UTC().Format(time.RFC3339))
	dropped := func(p *proc) string {
		var r struct {
			Results []struct {
				DroppedFields []struct{ Field, Code string } `json:"dropped_fields"`
			}
		}
		p.call(t, "POST", "/v1/events", admin, event, &r)
		if len(r.Results) != 1 || len(r.Results[0].DroppedFields) == 0 {
			return ""
		}
		return r.Results[0].DroppedFields[0].Code
	}
	for _, p := range ps {
		if d := dropped(p); d != "" {
			t.Fatalf("before the order: dropped %q", d)
		}
	}
	// waitAll waits until every node drops income with want, and returns
	// how long each took from start.
	waitAll := func(start time.Time, want string) []time.Duration {
		t.Helper()
		var took []time.Duration
		for i, p := range ps {
			for dropped(p) != want {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("node %d: the order is not enforced within 10 s", i)
				}
				time.Sleep(50 * time.Millisecond)
			}
			took = append(took, time.Since(start))
		}
		return took
	}

	var ord struct{ ID, Status string }
	start := time.Now()
	if code := reg.call(t, "POST", "/v1/orders", reg.admin, `{"company":"`+id+`","kind":"suspend","target":{"kind":"field","id":"income"},"reason":"监管调查 inquiry"}`, &ord); code != 201 || ord.Status != "issued" {
		t.Fatalf("suspend order: %d %+v", code, ord)
	}
	took := waitAll(start, "suspended")
	t.Logf("suspension enforced on %d nodes after %v", len(ps), took)

	// No company key can lift it, nor impose one, and the refusal cites RO-6.
	for _, key := range []string{companyRegulator, admin} {
		var p struct{ Requirement string }
		if code := ps[len(ps)-1].call(t, "DELETE", "/v1/suspensions/field/income", key, "", &p); code != 403 {
			t.Errorf("company key lifts the regulator's suspension: %d", code)
		}
		if key == companyRegulator && p.Requirement != "RO-6" {
			t.Errorf("refusal cites %q, want RO-6", p.Requirement)
		}
		if code := ps[0].call(t, "POST", "/v1/suspensions", key, `{"kind":"field","id":"city","reason":"x"}`, nil); code != 403 {
			t.Errorf("company key suspends on a joined engine: %d", code)
		}
	}
	if d := dropped(ps[0]); d != "suspended" {
		t.Fatalf("after the company's attempt to lift: dropped %q", d)
	}

	// The engine acknowledged with the index of its own log record.
	var list struct {
		Orders []struct {
			ID            string
			Log_index     int64
			Applied_at    string
			Ack_log_index *int64
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reg.call(t, "GET", "/v1/companies/"+id+"/orders", reg.admin, "", &list)
		if len(list.Orders) == 1 && list.Orders[0].Ack_log_index != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(list.Orders) != 1 || list.Orders[0].Applied_at == "" || list.Orders[0].Ack_log_index == nil {
		t.Fatalf("orders: %+v", list)
	}
	entry := ps[0].get(t, fmt.Sprintf("/v1/log/entries/%d", *list.Orders[0].Ack_log_index))
	if !bytes.Contains(entry, []byte(`"kind":"order"`)) || !bytes.Contains(entry, []byte(ord.ID)) {
		t.Errorf("company log entry %d: %s", *list.Orders[0].Ack_log_index, entry)
	}

	// The regulator lifts it.
	start = time.Now()
	if code := reg.call(t, "POST", "/v1/orders", reg.admin, `{"company":"`+id+`","kind":"lift","target":{"kind":"field","id":"income"},"reason":"调查结束 inquiry closed"}`, nil); code != 201 {
		t.Fatalf("lift order: %d", code)
	}
	t.Logf("lift enforced after %v", waitAll(start, ""))

	// Receivership: four eyes.
	var prop struct {
		ID, Status   string
		Receiver_key string
	}
	if code := reg.call(t, "POST", "/v1/orders", reg.admin, `{"company":"`+id+`","kind":"receivership","target":{"kind":"company","id":"`+id+`"},"reason":"自律失效 self-regulation failed"}`, &prop); code != 201 || prop.Status != "pending" || prop.Receiver_key == "" {
		t.Fatalf("receivership: %d %+v", code, prop)
	}
	ord.ID, ord.Status = prop.ID, prop.Status
	receiverKey := prop.Receiver_key
	if consentAs := ps[0].call(t, "PUT", "/v1/subjects/zoe/consents/credit", receiverKey, `{"status":"granted","notice_version":"1"}`, nil); consentAs != 401 {
		t.Errorf("receiver key before approval: %d", consentAs)
	}
	if code := reg.call(t, "POST", "/v1/orders/"+ord.ID+"/approve", reg.admin, "", nil); code != 403 {
		t.Errorf("proposer approves own receivership: %d", code)
	}
	var second struct{ Key string }
	reg.call(t, "POST", "/v1/staff", reg.admin, `{"name":"supervision/zhao.lei","role":"regulator-admin"}`, &second)
	if code := reg.call(t, "POST", "/v1/orders/"+ord.ID+"/approve", second.Key, "", &ord); code != 200 || ord.Status != "issued" {
		t.Errorf("second approval: %d %+v", code, ord)
	}
	// Receivership hands admin to the receiver on every node and freezes
	// the company's admin key; ending it hands admin back.
	consentAs := func(p *proc, key string) int {
		return p.call(t, "PUT", "/v1/subjects/zoe/consents/credit", key, `{"status":"granted","notice_version":"1"}`, nil)
	}
	waitCode := func(p *proc, key string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for consentAs(p, key) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %d within 10 s, got %d", key, want, consentAs(p, key))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, p := range ps {
		waitCode(p, admin, 403)
		waitCode(p, receiverKey, 200)
		// The privacy centre says who operates the service and why.
		if page := string(p.get(t, "/privacy/")); !strings.Contains(page, "接管人") || !strings.Contains(page, "self-regulation failed") {
			t.Errorf("privacy centre under receivership does not name the receiver:\n%s", page)
		}
	}
	if code := reg.call(t, "POST", "/v1/orders", reg.admin, `{"company":"`+id+`","kind":"end_receivership","target":{"kind":"company","id":"`+id+`"},"reason":"整改完成 remedied"}`, nil); code != 201 {
		t.Fatalf("end receivership: %d", code)
	}
	for _, p := range ps {
		waitCode(p, admin, 200)
		waitCode(p, receiverKey, 401)
		if strings.Contains(string(p.get(t, "/privacy/")), "接管人") {
			t.Error("the privacy centre still shows a receiver after the receivership ended")
		}
	}
	// Bad orders are refused with a clear problem.
	for _, body := range []string{
		`{"company":"` + id + `","kind":"shutdown","target":{"kind":"field","id":"income"},"reason":"x"}`,
		`{"company":"` + id + `","kind":"suspend","target":{"kind":"field","id":"income"},"reason":" "}`,
		`{"company":"` + id + `","kind":"suspend","target":{"kind":"planet","id":"income"},"reason":"x"}`,
		`{"company":"co_nope","kind":"suspend","target":{"kind":"field","id":"income"},"reason":"x"}`,
	} {
		if code := reg.call(t, "POST", "/v1/orders", reg.admin, body, nil); code != 400 && code != 404 {
			t.Errorf("bad order %s: %d", body, code)
		}
	}
}

// TestRestoreNeverRevives: restoring a backup taken before an erasure
// never makes the erased subject readable again — a joined engine fetches
// the witnessed entries it lacks from the regulator's mirror, verifies
// them and re-applies the erasure; an engine without a regulator replays
// its erasure journal. Real file backups on SQLite, pg_dump/pg_restore on
// PostgreSQL (SR-3, SG-3, invariant 4, invariant 8).
func TestRestoreNeverRevives(t *testing.T) {
	type backup struct {
		dsn           func(t *testing.T) string
		save, restore func(t *testing.T, dsn, dir string)
	}
	sqliteBackup := backup{
		dsn: func(t *testing.T) string { return filepath.Join(t.TempDir(), "c.db") },
		save: func(t *testing.T, dsn, dir string) {
			copyFile(t, dsn, filepath.Join(dir, "backup.db"))
		},
		restore: func(t *testing.T, dsn, dir string) {
			os.Remove(dsn + "-wal")
			os.Remove(dsn + "-shm")
			copyFile(t, filepath.Join(dir, "backup.db"), dsn)
		},
	}
	pgBackup := backup{
		dsn: func(t *testing.T) string { return storetest.PostgresDatabase(t) },
		save: func(t *testing.T, dsn, dir string) {
			if out, err := exec.Command("pg_dump", "-Fc", "-f", filepath.Join(dir, "backup.dump"), dsn).CombinedOutput(); err != nil {
				t.Fatalf("pg_dump: %v\n%s", err, out)
			}
		},
		restore: func(t *testing.T, dsn, dir string) {
			pgRestore(t, dsn, filepath.Join(dir, "backup.dump"))
		},
	}
	for _, tc := range []struct {
		name    string
		store   backup
		joined  bool
		postgre bool
	}{
		{"sqlite/regulator", sqliteBackup, true, false},
		{"sqlite/journal", sqliteBackup, false, false},
		{"postgres/regulator", pgBackup, true, true},
		{"postgres/journal", pgBackup, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.postgre && os.Getenv(storetest.EnvPostgres) == "" {
				t.Skip(storetest.EnvPostgres + " is not set")
			}
			dir := t.TempDir()
			c := company{dsn: tc.store.dsn(t), master: masterKey(), origin: "c.example/portrait"}
			const admin = "company-admin-key"
			serve := func() *proc {
				if tc.joined {
					return c.serve(t, admin)
				}
				return start(t, "Portrait serving on", []string{keys.EnvVar + "=" + c.master, "PORTRAIT_ADMIN_KEY=" + admin},
					"serve", "--addr", freeAddr(t), "--db", c.dsn, "--catalog", "../../examples/demo/catalog.yaml",
					"--erasure-journal", filepath.Join(dir, "erasures.journal"), "--monitor-every", "0")
			}
			if tc.joined {
				c.reg = startRegulator(t)
				_, c.token = c.reg.enrol(t, "丙公司 C Co.")
			}
			p := serve()
			for _, s := range []string{"zoe", "yan"} {
				if code := p.call(t, "PUT", "/v1/subjects/"+s+"/consents/credit", admin, `{"status":"granted","notice_version":"1"}`, nil); code != 200 {
					t.Fatalf("grant: %d", code)
				}
				event := fmt.Sprintf(`[{"subject":%q,"type":"profile","time":%q,"fields":{"city":"北京","income":5000}}]`, s, time.Now().UTC().Format(time.RFC3339))
				p.call(t, "POST", "/v1/events", admin, event, nil)
			}
			readable := func(p *proc, s string) bool {
				req, _ := http.NewRequest("GET", p.url+"/v1/subjects/"+s+"/export", nil)
				req.Header.Set("Authorization", "Bearer "+admin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode == 200 && strings.Contains(string(b), "北京")
			}
			if !readable(p, "zoe") {
				t.Fatal("zoe's data is not readable before the erasure: the test checks nothing")
			}
			p.stop()
			tc.store.save(t, c.dsn, dir)

			p = serve()
			if code := p.call(t, "POST", "/v1/subjects/zoe/erasure", admin, "", nil); code != 200 && code != 201 {
				t.Fatalf("erase: %d", code)
			}
			if tc.joined {
				// The erasure is witnessed before the backup is restored.
				key := string(p.get(t, "/v1/log/key"))
				deadline := time.Now().Add(10 * time.Second)
				for {
					msg := p.get(t, "/v1/log/checkpoint")
					cp, err := audit.ParseCheckpoint(msg, key)
					if err == nil && bytes.Contains(msg, []byte("— regulator.test/witness")) && hasErasure(t, p, cp.Size) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the erasure was not witnessed within 10 s")
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			p.stop()
			tc.store.restore(t, c.dsn, dir)

			p = serve()
			if readable(p, "zoe") {
				t.Fatal("a restored pre-erasure backup revived the erased subject")
			}
			if !readable(p, "yan") {
				t.Error("the restore lost a subject who was not erased")
			}
			if tc.joined {
				if code, out := func() (int, string) {
					var o, e bytes.Buffer
					code := Main([]string{"verify", "--checkpoint", "", "--server", p.url, "--witness-key", c.reg.witnessKey, "--regulator", c.reg.url}, &o, &e)
					return code, o.String() + e.String()
				}(); code != 0 {
					t.Errorf("verify after restore: %d\n%s", code, out)
				}
			}
		})
	}
}

// hasErasure reports whether the first size entries of p's log hold an
// erasure record.
func hasErasure(t *testing.T, p *proc, size int64) bool {
	for i := size - 1; i >= 0 && i >= size-20; i-- {
		if bytes.Contains(p.get(t, fmt.Sprintf("/v1/log/entries/%d", i)), []byte(`"kind":"erasure"`)) {
			return true
		}
	}
	return false
}

// coldBackup returns a backup and a restore of the SQLite database at
// path while no process has it open: the file and its write-ahead log,
// whose frames a stopped node may not have checkpointed into the file (a
// copy of the file alone lost them, and the restored log disagreed with
// what the regulator witnessed). Restore puts both back and drops the
// shared-memory index, which SQLite rebuilds from them.
func coldBackup(t *testing.T, path, backup string) (save, restore func()) {
	t.Helper()
	copyIf := func(from, to string) {
		os.Remove(to)
		if _, err := os.Stat(from); err == nil {
			copyFile(t, from, to)
		}
	}
	save = func() {
		copyFile(t, path, backup)
		copyIf(path+"-wal", backup+"-wal")
	}
	restore = func() {
		os.Remove(path + "-shm")
		copyFile(t, backup, path)
		copyIf(backup+"-wal", path+"-wal")
	}
	return save, restore
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
