package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/postgres"
	"github.com/portrait-dev/portrait/storetest"
)

// fencedWrite stores subject ps in one transaction, fenced by n's lease
// of ps's bucket, as a derivation writes its labels.
func fencedWrite(ctx context.Context, db *postgres.DB, n *Node, ps portrait.Pseudonym) error {
	return db.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		lt, ok := tx.(LeaseTx)
		if !ok {
			return errors.New("the store's transaction has no lease epochs")
		}
		if err := n.Fence(ctx, lt, Bucket(ps)); err != nil {
			return err
		}
		return tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: ps, WrappedKey: []byte("k"), SealedID: []byte("s")}})
	})
}

// pseudonymIn is a pseudonym of bucket b.
func pseudonymIn(b, i int) portrait.Pseudonym {
	return portrait.Pseudonym(fmt.Sprintf("%04x%08x", b, i))
}

const fenceChildEnv = "PORTRAIT_FENCE_CHILD"

// TestFenceChild is the node TestPausedNodeCannotWrite pauses: it joins
// with a 2 s lease, refreshes once (and never again), prints the bucket
// it will write for and its epoch, then writes one subject of that bucket
// per line read from stdin, answering "ok" or "refused: …".
func TestFenceChild(t *testing.T) {
	dsn := os.Getenv(fenceChildEnv)
	if dsn == "" {
		t.Skip("run by TestPausedNodeCannotWrite")
	}
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := JoinLease(ctx, dsn, 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	b := n.Held()[0]
	fmt.Printf("held %d %d\n", b, n.Epoch(b))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		release, ok := n.Hold(b)
		if !ok {
			fmt.Println("not held")
			continue
		}
		err := fencedWrite(ctx, db, n, portrait.Pseudonym(strings.TrimSpace(in.Text())))
		release()
		if err != nil {
			fmt.Println("refused:", strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Println("ok")
		}
	}
}

// A node stopped with SIGSTOP for longer than its lease loses its buckets
// to another node, which takes each under a newer epoch; resumed, it still
// believes it holds them (it has not refreshed), but its write for one is
// refused inside the write's own transaction, and nothing of it is stored.
// While its lease runs, no other node can take its buckets.
func TestPausedNodeCannotWrite(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	cmd := exec.Command(os.Args[0], "-test.run", "^TestFenceChild$", "-test.v")
	cmd.Env = append(os.Environ(), fenceChildEnv+"="+dsn)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	line := func() string {
		t.Helper()
		s, err := out.ReadString('\n')
		if err != nil && err != io.EOF {
			t.Fatalf("child: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(s)
	}
	var bucket int
	var epoch int64
	for {
		s := line()
		if s == "" {
			t.Fatalf("child ended:\n%s", stderr.String())
		}
		if _, err := fmt.Sscanf(s, "held %d %d", &bucket, &epoch); err == nil {
			break
		}
	}
	write := func(ps portrait.Pseudonym) string {
		t.Helper()
		fmt.Fprintln(stdin, ps)
		return line()
	}
	if got := write(pseudonymIn(bucket, 1)); got != "ok" {
		t.Fatalf("the holder's write: %q", got)
	}

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	other, err := Join(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Leave()
	for other.Epoch(bucket) == 0 {
		if time.Since(stopped) > 30*time.Second {
			t.Fatal("the paused node's bucket was not taken 30 s after its 2 s lease")
		}
		if err := other.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if other.Epoch(bucket) == 0 && time.Since(stopped) < 1500*time.Millisecond && len(other.Members()) < 2 {
			t.Fatal("the paused node left before its lease ran out")
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(stopped)
	if took < 2*time.Second {
		t.Errorf("bucket taken %v after the pause, inside the paused node's 2 s lease", took)
	}
	t.Logf("the paused node's bucket taken %v after SIGSTOP (2 s lease)", took.Round(10*time.Millisecond))
	if e := other.Epoch(bucket); e <= epoch {
		t.Fatalf("taken under epoch %d, the paused node's was %d", e, epoch)
	}

	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	got := write(pseudonymIn(bucket, 2))
	if !strings.HasPrefix(got, "refused:") || !strings.Contains(got, ErrFenced.Error()) {
		t.Fatalf("the resumed node's write for a bucket it lost: %q", got)
	}
	// The new holder writes.
	release, ok := other.Hold(bucket)
	if !ok {
		t.Fatal("the new holder does not hold the bucket")
	}
	err = fencedWrite(ctx, db, other, pseudonymIn(bucket, 3))
	release()
	if err != nil {
		t.Fatalf("the new holder's write: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i, want := range []bool{1: true, 2: false, 3: true} {
		if i == 0 {
			continue
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM subjects WHERE pseudonym = $1`, pseudonymIn(bucket, i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if (n == 1) != want {
			t.Errorf("subject %d stored: %v, want %v", i, n == 1, want)
		}
	}
}

// A node that does not hold a bucket, or holds it under an older epoch,
// is refused; the holder is not.
func TestFence(t *testing.T) {
	dsn := storetest.PostgresDatabase(t)
	ctx := context.Background()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := Join(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Leave()
	if err := fencedWrite(ctx, db, a, pseudonymIn(5, 1)); !errors.Is(err, ErrFenced) {
		t.Fatalf("before it holds the bucket: %v, want ErrFenced", err)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fencedWrite(ctx, db, a, pseudonymIn(5, 2)); err != nil {
		t.Fatalf("the holder: %v", err)
	}
	// Another session takes the lease behind a's back, as a node would
	// after a's session ended.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE leases SET epoch = epoch + 1 WHERE bucket = 5`); err != nil {
		t.Fatal(err)
	}
	if err := fencedWrite(ctx, db, a, pseudonymIn(5, 3)); !errors.Is(err, ErrFenced) {
		t.Fatalf("after a newer epoch: %v, want ErrFenced", err)
	}
}
