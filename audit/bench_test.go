package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
)

// BenchmarkAppendBatch appends records in batches of 1000, as ingest does
// (target ≥ 100,000 entries/s).
func BenchmarkAppendBatch(b *testing.B) {
	ctx := context.Background()
	l, m := newTestLog(b, "k"), &Memory{}
	const batch = 1000
	recs := testRecords(0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += batch {
		if _, err := l.Append(ctx, m, recs[:min(batch, b.N-done)]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// flatHashes is a Reader holding only the stored hashes of a large log,
// indexed by storage index: the fastest possible store, so the benchmark
// measures the prover.
type flatHashes struct {
	size   int64
	hashes []tlog.Hash
}

func (f *flatHashes) LogSize(ctx context.Context) (int64, error) { return f.size, nil }

func (f *flatHashes) LogHashes(ctx context.Context, idx []int64) ([][32]byte, error) {
	out := make([][32]byte, len(idx))
	for i, x := range idx {
		out[i] = f.hashes[x]
	}
	return out, nil
}

func (f *flatHashes) LogEntries(ctx context.Context, from, to int64) ([]portrait.LogEntry, error) {
	return nil, errors.New("flatHashes keeps no entries")
}

func (f *flatHashes) Checkpoint(ctx context.Context) ([]byte, error) { return nil, nil }

var (
	bigLogOnce sync.Once
	bigLog     *flatHashes
)

// bigLogSize is 10⁷ entries: about 640 MB of hashes, built in ~10 s once
// per benchmark run.
const bigLogSize = 10_000_000

func largeLog(b *testing.B) *flatHashes {
	b.Helper()
	bigLogOnce.Do(func() {
		f := &flatHashes{hashes: make([]tlog.Hash, 0, tlog.StoredHashCount(bigLogSize))}
		r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = f.hashes[x]
			}
			return out, nil
		})
		var rec [8]byte
		for n := int64(0); n < bigLogSize; n++ {
			binary.BigEndian.PutUint64(rec[:], uint64(n))
			hs, err := tlog.StoredHashes(n, rec[:], r)
			if err != nil {
				panic(err)
			}
			f.hashes = append(f.hashes, hs...)
		}
		f.size = bigLogSize
		bigLog = f
	})
	return bigLog
}

// BenchmarkInclusionProof proves random entries of a 10⁷-entry log
// (target ≤ 1 ms per proof).
func BenchmarkInclusionProof(b *testing.B) {
	ctx := context.Background()
	f := largeLog(b)
	l := newTestLog(b, "k")
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.InclusionProof(ctx, f, rnd.Int64N(f.size), f.size); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign signs a checkpoint of a 10⁷-entry log.
func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	f := largeLog(b)
	l := newTestLog(b, "k")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Sign(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend compares Log.Append into a Memory, in batches of 1000,
// with the bare tlog floor: tlog.StoredHashes over the same records
// already encoded, into a slice (issue 14 target 5: governed ≥ 0.5 of
// floor). Both report entries/s.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	const batch = 1000
	recs := testRecords(0, batch)
	b.Run("governed", func(b *testing.B) {
		// Room for every entry, as the floor's slice of hashes grows
		// too but Memory's entries are larger: the benchmark should
		// time the append, not the growth of its in-memory store.
		l, m := newTestLog(b, "k"), &Memory{entries: make([]portrait.LogEntry, 0, b.N)}
		b.ReportAllocs()
		start := time.Now()
		for done := 0; done < b.N; done += batch {
			if _, err := l.Append(ctx, m, recs[:min(batch, b.N-done)]...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	})
	datas := make([][]byte, batch)
	for i := range recs {
		datas[i], _ = json.Marshal(recs[i])
	}
	// floor hashes records n, n+1, … of datas with tlog.StoredHashes.
	floor := func(stored []tlog.Hash, n, count int) []tlog.Hash {
		hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for i, x := range idx {
				out[i] = stored[x]
			}
			return out, nil
		})
		for i := n; i < n+count; i++ {
			hs, err := tlog.StoredHashes(int64(i), datas[i%batch], hr)
			if err != nil {
				b.Fatal(err)
			}
			stored = append(stored, hs...)
		}
		return stored
	}
	b.Run("floor", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		floor(nil, 0, b.N)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
	})
	// ratio alternates batches of the two, so that both see the same
	// machine load, and reports governed throughput / floor throughput.
	b.Run("ratio", func(b *testing.B) {
		l, m := newTestLog(b, "k"), &Memory{entries: make([]portrait.LogEntry, 0, b.N)}
		var stored []tlog.Hash
		var gov, flo time.Duration
		for done := 0; done < b.N; done += batch {
			k := min(batch, b.N-done)
			t0 := time.Now()
			if _, err := l.Append(ctx, m, recs[:k]...); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			stored = floor(stored, done, k)
			flo += time.Since(t1)
			gov += t1.Sub(t0)
		}
		b.ReportMetric(flo.Seconds()/gov.Seconds(), "governed/floor")
	})
}

// BenchmarkEncode compares encoding a record with json.Marshal (before)
// and without reflection (now); both write the same bytes.
func BenchmarkEncode(b *testing.B) {
	rec := testRecord(7)
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := appendRecord(make([]byte, 0, 512), &rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
