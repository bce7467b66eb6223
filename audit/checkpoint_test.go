package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tlogformat "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// FA-6: a checkpoint is a C2SP tlog-checkpoint in a signed note that the
// independent parser of github.com/transparency-dev/formats/log accepts.
func TestCheckpointInterop(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{0, 1, 13} {
		l, m := buildLog(t, "k", testRecords(0, n))
		msg, err := l.Sign(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		root := treeHash(t, m)
		wantBody := fmt.Sprintf("%s\n%d\n%s\n", testOrigin, n, base64.StdEncoding.EncodeToString(root[:]))
		if !bytes.HasPrefix(msg, []byte(wantBody+"\n— "+testOrigin+" ")) {
			t.Fatalf("checkpoint note:\n%s\nwant body:\n%s", msg, wantBody)
		}

		v, err := note.NewVerifier(l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		cp, _, _, err := tlogformat.ParseCheckpoint(msg, testOrigin, v)
		if err != nil {
			t.Fatalf("formats/log.ParseCheckpoint: %v", err)
		}
		if cp.Origin != testOrigin || cp.Size != uint64(n) || !bytes.Equal(cp.Hash, root[:]) {
			t.Fatalf("formats/log parsed %+v, want size %d root %x", cp, n, root)
		}

		got, err := ParseCheckpoint(msg, l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if got != (Checkpoint{Origin: testOrigin, Size: int64(n), Hash: root}) {
			t.Fatalf("ParseCheckpoint = %+v", got)
		}
	}
}

func TestParseCheckpointRefusals(t *testing.T) {
	ctx := context.Background()
	l, m := buildLog(t, "k", testRecords(0, 5))
	good, err := l.Sign(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := buildLog(t, "other", testRecords(0, 5))
	otherMsg, _ := other.Sign(ctx, m)

	// A note with a valid signature over a body that is not a checkpoint.
	signer := l.signer
	signed := func(body string) []byte {
		msg, err := note.Sign(&note.Note{Text: body}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name string
		msg  []byte
		key  string
		want string
		sig  bool
	}{
		{"other key", otherMsg, l.VerifierKey(), "not signed by key", true},
		{"altered body", bytes.Replace(good, []byte("\n5\n"), []byte("\n6\n"), 1), l.VerifierKey(), "invalid signature", true},
		{"malformed key", good, "nonsense", "verifier key", false},
		{"wrong origin", signed("elsewhere/log\n5\n" + root + "\n"), l.VerifierKey(), "is not the key name", false},
		{"bad size", signed(testOrigin + "\n-1\n" + root + "\n"), l.VerifierKey(), "not a decimal count", false},
		{"leading zero size", signed(testOrigin + "\n05\n" + root + "\n"), l.VerifierKey(), "not a decimal count", false},
		{"short hash", signed(testOrigin + "\n5\nAAAA\n"), l.VerifierKey(), "base64 of 32 bytes", false},
		{"too few lines", signed(testOrigin + "\n5\n"), l.VerifierKey(), "lines", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCheckpoint(tt.msg, tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseCheckpoint error %v, want %q", err, tt.want)
			}
			if errors.Is(err, ErrSignature) != tt.sig {
				t.Fatalf("errors.Is(%v, ErrSignature) = %v, want %v", err, !tt.sig, tt.sig)
			}
		})
	}

	// Extension lines after the root are allowed (C2SP tlog-checkpoint).
	if _, err := ParseCheckpoint(signed(testOrigin+"\n5\n"+root+"\nextension\n"), l.VerifierKey()); err != nil {
		t.Fatalf("checkpoint with an extension line: %v", err)
	}
}

// Publish saves a new checkpoint when the log grew and stops with ctx.
func TestPublish(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l, m := buildLog(t, "k", testRecords(0, 3))
	var mu sync.Mutex
	var saves []Checkpoint
	save := func(ctx context.Context, msg []byte) error {
		c, err := ParseCheckpoint(msg, l.VerifierKey())
		if err != nil {
			return err
		}
		mu.Lock()
		saves = append(saves, c)
		mu.Unlock()
		return m.SaveCheckpoint(ctx, msg)
	}
	done := make(chan struct{})
	go func() {
		l.Publish(ctx, m, save, 5*time.Millisecond)
		close(done)
	}()
	waitFor := func(size int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(saves)
			last := int64(-1)
			if n > 0 {
				last = saves[n-1].Size
			}
			mu.Unlock()
			if last == size {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("no checkpoint of size %d published", size)
	}
	waitFor(3)
	if _, err := l.Append(ctx, m, testRecords(3, 8)...); err != nil {
		t.Fatal(err)
	}
	waitFor(8)
	time.Sleep(30 * time.Millisecond) // several ticks without growth
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish did not stop when its context was cancelled")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(saves) != 2 {
		t.Fatalf("published %d checkpoints (%v), want 2: one per growth", len(saves), saves)
	}
}

// A saved checkpoint not signed by the log's key is a tampered store:
// nothing is signed over it and the finding is counted (invariant 8).
func TestPublishRefusesForeignCheckpoint(t *testing.T) {
	ctx := context.Background()
	old, m := buildLog(t, "old", testRecords(0, 4))
	msg, err := old.Sign(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	m.SaveCheckpoint(ctx, msg)
	l := newTestLog(t, "k")
	err = l.publish(ctx, m, m.SaveCheckpoint)
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "not one this log signed") {
		t.Fatalf("publish over a foreign checkpoint: %v, want ErrTampered", err)
	}
	if saved, _ := m.Checkpoint(ctx); !bytes.Equal(saved, msg) {
		t.Fatal("a checkpoint was saved over the foreign one")
	}
	if l.Failures() != 1 {
		t.Fatalf("Failures() = %d, want 1", l.Failures())
	}
}
