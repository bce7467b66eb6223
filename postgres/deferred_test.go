package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/guard"
)

// Label deletions wait for the transaction's next statement and go in
// one: a run of DeleteLabels sends nothing, and the next statement (here
// a read of the labels inside the transaction) sees every one of them
// done; a deletion followed by a write of the same label keeps the write;
// the commit sends what is still queued.
func TestDeleteLabelsDeferred(t *testing.T) {
	base := os.Getenv("PORTRAIT_TEST_POSTGRES")
	if base == "" {
		t.Skip("PORTRAIT_TEST_POSTGRES is not set")
	}
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	subjects := []portrait.Pseudonym{"aa01", "aa02", "aa03"}
	now := time.Now().UTC().Truncate(time.Microsecond)
	var all []portrait.LabelValue
	for _, ps := range subjects {
		for _, l := range []string{"x", "y"} {
			all = append(all, portrait.LabelValue{Pseudonym: ps, Label: l, Version: 1, Sealed: []byte("s"), Computed: now})
		}
	}
	labels := func(tx guard.Tx, ps portrait.Pseudonym) []string {
		t.Helper()
		vs, err := tx.(*txn).Labels(ctx, ps)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range vs {
			out = append(out, v.Label)
		}
		return out
	}
	err = db.Update(ctx, func(tx guard.Tx) error {
		if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{{Pseudonym: "aa01", WrappedKey: []byte("k1"), Created: now},
			{Pseudonym: "aa02", WrappedKey: []byte("k2"), Created: now}, {Pseudonym: "aa03", WrappedKey: []byte("k3"), Created: now}}); err != nil {
			return err
		}
		return tx.PutLabels(ctx, all)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(gtx guard.Tx) error {
		tx := gtx.(*txn)
		for _, ps := range subjects[:2] {
			if err := tx.DeleteLabels(ctx, ps, []string{"x"}); err != nil {
				return err
			}
		}
		if n := len(tx.tx.delSubjects); n != 2 {
			t.Errorf("%d deletions queued, want 2 (nothing sent yet)", n)
		}
		if got := labels(tx, "aa01"); len(got) != 1 || got[0] != "y" {
			t.Errorf("labels of aa01 read after the deletion in its transaction: %v, want [y]", got)
		}
		if n := len(tx.tx.delSubjects); n != 0 {
			t.Errorf("%d deletions still queued after the next statement", n)
		}
		if err := tx.DeleteLabels(ctx, "aa03", []string{"x", "y"}); err != nil {
			return err
		}
		if err := tx.PutLabels(ctx, all[5:6]); err != nil { // aa03's y, written again
			return err
		}
		return tx.DeleteLabels(ctx, "aa02", []string{"y"}) // sent by the commit
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Update(ctx, func(tx guard.Tx) error {
		for ps, want := range map[portrait.Pseudonym]string{"aa01": "[y]", "aa02": "[]", "aa03": "[y]"} {
			if got := labels(tx, ps); fmtList(got) != want {
				t.Errorf("labels of %s after commit: %v, want %s", ps, got, want)
			}
		}
		return nil
	})
}

func fmtList(xs []string) string {
	s := "["
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s + "]"
}
