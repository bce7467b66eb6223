package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// serve --cors-origins takes exact origins only; a wildcard or a path is
// refused before anything starts.
func TestServeCORSOriginsFlag(t *testing.T) {
	for _, bad := range []string{"https://*.example.com", "https://shop.example.com/path", "*"} {
		var out, errb bytes.Buffer
		if code := Main([]string{"serve", "--cors-origins", bad, "--db", t.TempDir() + "/p.db"}, &out, &errb); code != 1 ||
			!strings.Contains(errb.String(), "not an exact origin") {
			t.Errorf("--cors-origins %q: exit %d, %s", bad, code, errb.String())
		}
	}
}

// serve --nats --nats-stream runs the JetStream intake beside the HTTP
// server; a stream that is not declared stops serve with a message that
// says how to declare it, rather than serving without the intake.
func TestServeNATSIntakeNeedsStream(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	defer ns.Shutdown()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- Main([]string{"serve", "--addr", "127.0.0.1:0", "--db", dir + "/p.db", "--key-file", dir + "/k",
			"--catalog", "../../examples/demo/catalog.yaml", "--nats", ns.ClientURL(), "--nats-stream", "NOSUCH"}, &out, &errb)
	}()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(errb.String(), "nats stream add NOSUCH") {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve kept running without its intake")
	}
	var errc bytes.Buffer
	if code := Main([]string{"serve", "--nats-stream", "X", "--db", dir + "/q.db"}, &out, &errc); code != 2 {
		t.Errorf("--nats-stream without --nats: exit %d %s", code, errc.String())
	}
}

// serve --webhook takes its secret from the environment only; without a
// whsec_ secret it does not start.
func TestServeWebhookNeedsSecret(t *testing.T) {
	t.Setenv("PORTRAIT_WEBHOOK_SECRET", "")
	var out, errb bytes.Buffer
	if code := Main([]string{"serve", "--webhook", "https://crm.example.com/hook", "--db", t.TempDir() + "/p.db"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "PORTRAIT_WEBHOOK_SECRET") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
}
