package audit

import (
	"context"
	"errors"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
)

func byteSlices(hs [][32]byte) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// FA-6: inclusion proofs verify with tlog and with the independent RFC
// 6962 verifier of github.com/transparency-dev/merkle.
func TestInclusionProofInterop(t *testing.T) {
	ctx := context.Background()
	const n = 70
	l, m := buildLog(t, "k", testRecords(0, n))
	entries, _ := m.LogEntries(ctx, 0, n)
	for _, size := range []int64{1, 2, 3, 7, 8, 9, 33, 64, n} {
		_, sub := buildLog(t, "k", testRecords(0, int(size)))
		root := treeHash(t, sub)
		for index := int64(0); index < size; index++ {
			p, err := l.InclusionProof(ctx, m, index, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
			}
			data, err := l.Entry(ctx, m, index)
			if err != nil || string(data) != string(entries[index].Data) {
				t.Fatalf("Entry(%d) = %s, %v", index, data, err)
			}
			if err := tlog.CheckRecord(hashes2tlog(p), size, root, index, tlog.RecordHash(data)); err != nil {
				t.Fatalf("tlog.CheckRecord(%d, %d): %v", index, size, err)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(data)
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(size), leaf, byteSlices(p), root[:]); err != nil {
				t.Fatalf("merkle VerifyInclusion(%d, %d): %v", index, size, err)
			}
			// A proof for another entry must not pass.
			other := rfc6962.DefaultHasher.HashLeaf(entries[(index+1)%n].Data)
			if size > 1 && proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(index), uint64(size), other, byteSlices(p), root[:]) == nil {
				t.Fatalf("inclusion proof of %d in %d also proves another entry", index, size)
			}
		}
	}
}

// FA-6: consistency proofs verify with tlog and with transparency-dev/merkle.
func TestConsistencyProofInterop(t *testing.T) {
	ctx := context.Background()
	const n = 45
	l, m := buildLog(t, "k", testRecords(0, n))
	roots := make([]tlog.Hash, n+1)
	roots[0] = tlog.Hash(rfc6962EmptyRoot())
	for size := 1; size <= n; size++ {
		_, sub := buildLog(t, "k", testRecords(0, size))
		roots[size] = treeHash(t, sub)
	}
	for from := int64(0); from <= n; from++ {
		for to := from; to <= n; to++ {
			p, err := l.ConsistencyProof(ctx, m, from, to)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", from, to, err)
			}
			if from > 0 && from < to {
				if err := tlog.CheckTree(hashes2tlog(p), to, roots[to], from, roots[from]); err != nil {
					t.Fatalf("tlog.CheckTree(%d, %d): %v", from, to, err)
				}
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(from), uint64(to), byteSlices(p), roots[from][:], roots[to][:]); err != nil {
				t.Fatalf("merkle VerifyConsistency(%d, %d): %v", from, to, err)
			}
			if from > 0 && from < to {
				forked := roots[from]
				forked[0] ^= 1
				if proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(from), uint64(to), byteSlices(p), forked[:], roots[to][:]) == nil {
					t.Fatalf("consistency proof %d→%d accepts a forked old root", from, to)
				}
			}
		}
	}
}

func rfc6962EmptyRoot() [32]byte {
	var h [32]byte
	copy(h[:], rfc6962.DefaultHasher.EmptyRoot())
	return h
}

// Bad arguments are ErrRange with code EINVALID (HTTP 400); storage
// failures are not.
func TestProofRange(t *testing.T) {
	ctx := context.Background()
	l, m := buildLog(t, "k", testRecords(0, 10))
	tests := []struct {
		name string
		call func() error
	}{
		{"index = size", func() error { _, err := l.InclusionProof(ctx, m, 5, 5); return err }},
		{"negative index", func() error { _, err := l.InclusionProof(ctx, m, -1, 5); return err }},
		{"size beyond log", func() error { _, err := l.InclusionProof(ctx, m, 1, 11); return err }},
		{"from > to", func() error { _, err := l.ConsistencyProof(ctx, m, 6, 5); return err }},
		{"negative from", func() error { _, err := l.ConsistencyProof(ctx, m, -1, 5); return err }},
		{"to beyond log", func() error { _, err := l.ConsistencyProof(ctx, m, 1, 11); return err }},
		{"entry beyond log", func() error { _, err := l.Entry(ctx, m, 10); return err }},
		{"negative entry", func() error { _, err := l.Entry(ctx, m, -1); return err }},
	}
	for _, tt := range tests {
		err := tt.call()
		if !errors.Is(err, ErrRange) || portrait.ErrorCode(err) != portrait.EINVALID {
			t.Errorf("%s: error %v (code %q), want ErrRange with code %q", tt.name, err, portrait.ErrorCode(err), portrait.EINVALID)
		}
	}

	broken := failingWriter{Memory: m, failHashes: true}
	_, err := newTestLog(t, "k").InclusionProof(ctx, readerOf{broken}, 3, 10)
	if err == nil || errors.Is(err, ErrRange) {
		t.Fatalf("storage failure: error %v, want a non-range error", err)
	}
}

// readerOf serves Reader from a failingWriter.
type readerOf struct{ failingWriter }

func (r readerOf) LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error) {
	return r.Memory.LogEntries(ctx, from, to)
}

func (r readerOf) Checkpoint(ctx context.Context) ([]byte, error) { return r.Memory.Checkpoint(ctx) }

// The prover reads all the hashes a proof needs in one store call.
func TestProofSingleRead(t *testing.T) {
	ctx := context.Background()
	_, m := buildLog(t, "k", testRecords(0, 1000))
	c := &countingReader{Memory: m}
	if _, err := newTestLog(t, "k").InclusionProof(ctx, c, 377, 999); err != nil {
		t.Fatal(err)
	}
	if c.calls != 1 {
		t.Fatalf("inclusion proof made %d LogHashes calls, want 1", c.calls)
	}
	c.calls = 0
	if _, err := newTestLog(t, "k").ConsistencyProof(ctx, c, 377, 999); err != nil {
		t.Fatal(err)
	}
	if c.calls != 1 {
		t.Fatalf("consistency proof made %d LogHashes calls, want 1", c.calls)
	}
}

type countingReader struct {
	*Memory
	calls int
}

func (c *countingReader) LogHashes(ctx context.Context, idx []int64) ([][32]byte, error) {
	c.calls++
	return c.Memory.LogHashes(ctx, idx)
}
