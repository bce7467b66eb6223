package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
)

const testOrigin = "portrait.example/log"

// testKey returns a fixed Ed25519 key derived from name, so that tests
// can build a second, dishonest log with another key.
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func newTestLog(tb testing.TB, key string) *Log {
	tb.Helper()
	l, err := New(testOrigin, testKey(key))
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// testRecord returns a deterministic record, so that a log rebuilt from
// the same records has the same entries.
func testRecord(i int) Record {
	allow := i%2 == 0
	return Record{
		Kind:      "decision",
		Time:      time.Date(2025, 1, 2, 3, 4, 5, i, time.UTC),
		Actor:     "service:k1",
		Pseudonym: portrait.Pseudonym(fmt.Sprintf("ps_%06d", i)),
		Purpose:   "personalization",
		Action:    "recommend",
		Allow:     &allow,
		Codes:     []string{"CN-4"},
		Digest:    fmt.Sprintf("%064x", i),
		Detail:    map[string]any{"fields": 3, "label": "sports_fan"},
	}
}

func testRecords(from, to int) []Record {
	var recs []Record
	for i := from; i < to; i++ {
		recs = append(recs, testRecord(i))
	}
	return recs
}

// buildLog appends recs to a fresh Memory with a fresh Log.
func buildLog(tb testing.TB, key string, recs []Record) (*Log, *Memory) {
	tb.Helper()
	l, m := newTestLog(tb, key), &Memory{}
	if _, err := l.Append(context.Background(), m, recs...); err != nil {
		tb.Fatal(err)
	}
	return l, m
}

// treeHash computes the root independently of the cache, straight from
// the store.
func treeHash(tb testing.TB, m *Memory) tlog.Hash {
	tb.Helper()
	size, _ := m.LogSize(context.Background())
	h, err := tlog.TreeHash(size, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs, err := m.LogHashes(context.Background(), idx)
		return hashes2tlog(hs), err
	}))
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func hashes2tlog(hs [][32]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

// FA-5: records appended in batches or one by one make the same tree,
// and the tree is the RFC 6962 tree of the stored entries.
func TestAppendBatchesAndSingles(t *testing.T) {
	ctx := context.Background()
	const n = 300
	recs := testRecords(0, n)

	_, batched := buildLog(t, "k", recs[:7])
	l := newTestLog(t, "k")
	for _, cut := range [][2]int{{7, 8}, {8, 100}, {100, 101}, {101, 256}, {256, n}} {
		first, err := l.Append(ctx, batched, recs[cut[0]:cut[1]]...)
		if err != nil {
			t.Fatal(err)
		}
		if first != int64(cut[0]) {
			t.Fatalf("Append at %d returned first %d", cut[0], first)
		}
	}
	single, l1 := &Memory{}, newTestLog(t, "k")
	for i, r := range recs {
		first, err := l1.Append(ctx, single, r)
		if err != nil {
			t.Fatal(err)
		}
		if first != int64(i) {
			t.Fatalf("Append %d returned first %d", i, first)
		}
		if i%37 == 0 { // let the cache fill from committed reads as it would in a server
			if _, err := l1.Sign(ctx, single); err != nil {
				t.Fatal(err)
			}
		}
	}
	if a, b := treeHash(t, batched), treeHash(t, single); a != b {
		t.Fatalf("batched root %v != one-by-one root %v", a, b)
	}

	// The root must equal the RFC 6962 root over the entries' data, so
	// that no stored hash was taken from the wrong place.
	entries, _ := single.LogEntries(ctx, 0, n)
	leaves := make([]tlog.Hash, n)
	for i, e := range entries {
		if e.Index != int64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		leaves[i] = tlog.RecordHash(e.Data)
	}
	if want := rfc6962Root(leaves); treeHash(t, single) != want {
		t.Fatalf("root %v, RFC 6962 root of the entries %v", treeHash(t, single), want)
	}
}

// rfc6962Root is the recursive definition of RFC 6962 §2.1.
func rfc6962Root(leaves []tlog.Hash) tlog.Hash {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return tlog.NodeHash(rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:]))
}

func TestEntryForHash(t *testing.T) {
	// Walk the storage layout record by record and check that every
	// stored hash maps back to its record and position.
	var idx int64
	for n := int64(0); n < 1100; n++ {
		count := tlog.StoredHashCount(n+1) - tlog.StoredHashCount(n)
		for off := 0; off < int(count); off++ {
			rec, gotOff := EntryForHash(idx)
			if rec != n || gotOff != off {
				t.Fatalf("EntryForHash(%d) = %d, %d; want %d, %d", idx, rec, gotOff, n, off)
			}
			idx++
		}
	}
}

func TestEncode(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	tests := []struct {
		name string
		rec  Record
		want string
		err  string
	}{
		{
			name: "utc nanos, sorted detail, omitted empties",
			rec:  Record{Kind: "consent", Time: time.Date(2025, 3, 1, 8, 0, 0, 123456789, shanghai), Detail: map[string]any{"b": 1, "a": "x"}},
			want: `{"kind":"consent","time":"2025-03-01T00:00:00.123456789Z","detail":{"a":"x","b":1}}`,
		},
		{name: "no kind", rec: Record{Action: "x"}, err: "no kind"},
		{name: "unencodable detail", rec: Record{Kind: "x", Time: time.Unix(0, 0), Detail: map[string]any{"f": func() {}}}, err: "encode audit record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Encode(tt.rec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Encode error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Encode = %s, %v; want %s", got, err, tt.want)
			}
		})
	}

	before := time.Now().UTC()
	data, err := Encode(Record{Kind: "ingest"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), before.Format("2006-01-02T")) || !strings.Contains(string(data), `Z"`) {
		t.Fatalf("zero time not filled with the current UTC time: %s", data)
	}
}

// failingWriter is a store whose log write or read fails.
type failingWriter struct {
	*Memory
	failAppend, failHashes bool
}

func (f failingWriter) AppendLog(ctx context.Context, e []portrait.LogEntry) error {
	if f.failAppend {
		return errors.New("disk full")
	}
	return f.Memory.AppendLog(ctx, e)
}

func (f failingWriter) LogHashes(ctx context.Context, idx []int64) ([][32]byte, error) {
	if f.failHashes {
		return nil, errors.New("connection reset")
	}
	return f.Memory.LogHashes(ctx, idx)
}

// Invariant 3: when the log cannot record, Append fails with
// EUNAVAILABLE so the caller's transaction rolls back.
func TestAppendFailsClosed(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		w    failingWriter
		want string
	}{
		{"append fails", failingWriter{failAppend: true}, "disk full"},
		{"hash read fails", failingWriter{failHashes: true}, "connection reset"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, m := buildLog(t, "k", testRecords(0, 5))
			tt.w.Memory = m
			_, err := l.Append(ctx, tt.w, testRecord(5))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Append error %v, want %q", err, tt.want)
			}
			if portrait.ErrorCode(err) != portrait.EUNAVAILABLE {
				t.Fatalf("error code %q, want %q", portrait.ErrorCode(err), portrait.EUNAVAILABLE)
			}
			if n, _ := m.LogSize(ctx); n != 5 {
				t.Fatalf("log size %d after a failed append, want 5", n)
			}
		})
	}
}

// txWriter is a transaction over Memory: appends are buffered, visible
// to its own reads, and kept only on commit.
type txWriter struct {
	m       *Memory
	pending []portrait.LogEntry
}

func (tx *txWriter) LogSize(ctx context.Context) (int64, error) {
	n, err := tx.m.LogSize(ctx)
	return n + int64(len(tx.pending)), err
}

func (tx *txWriter) LogHashes(ctx context.Context, idx []int64) ([][32]byte, error) {
	view := &Memory{}
	view.entries, _ = tx.m.LogEntries(ctx, 0, int64(len(tx.m.entries)))
	view.entries = append(view.entries, tx.pending...)
	return view.LogHashes(ctx, idx)
}

func (tx *txWriter) AppendLog(ctx context.Context, e []portrait.LogEntry) error {
	n, _ := tx.LogSize(ctx)
	for i := range e {
		if e[i].Index != n+int64(i) {
			return portrait.Errorf(portrait.ECONFLICT, "entry %d, want %d", e[i].Index, n+int64(i))
		}
	}
	tx.pending = append(tx.pending, e...)
	return nil
}

func (tx *txWriter) SaveCheckpoint(ctx context.Context, note []byte) error { return nil }

func (tx *txWriter) commit(ctx context.Context) error { return tx.m.AppendLog(ctx, tx.pending) }

// A rolled-back transaction that appended twice must not leave its
// hashes in the cache, or the entries that later take its indexes would
// get wrong hashes.
func TestRollbackDoesNotPoisonCache(t *testing.T) {
	ctx := context.Background()
	l, m := buildLog(t, "k", testRecords(0, 6))
	if _, err := l.Sign(ctx, m); err != nil {
		t.Fatal(err)
	}
	rolledBack := &txWriter{m: m}
	for i := 100; i < 104; i++ {
		if _, err := l.Append(ctx, rolledBack, testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	// rolledBack is dropped; another transaction appends other records.
	tx := &txWriter{m: m}
	for i := 6; i < 12; i++ {
		if _, err := l.Append(ctx, tx, testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.commit(ctx); err != nil {
		t.Fatal(err)
	}
	_, honest := buildLog(t, "k", testRecords(0, 12))
	if a, b := treeHash(t, m), treeHash(t, honest); a != b {
		t.Fatalf("root after rollback %v, want %v", a, b)
	}
}

// countingWriter counts the log-head reads of a Writer.
type countingWriter struct {
	Writer
	sizes int
}

func (c *countingWriter) LogSize(ctx context.Context) (int64, error) {
	c.sizes++
	return c.Writer.LogSize(ctx)
}

// Append reads the log head only when its guess (the size after its own
// last append) is wrong: after another Log appended (guess too low, the
// store refuses it) or after a rollback (guess too high, no hash for its
// last record). Either way the tree stays the honest one.
func TestAppendGuessesHead(t *testing.T) {
	ctx := context.Background()
	m := &Memory{}
	a, b := newTestLog(t, "k"), newTestLog(t, "k")
	w := &countingWriter{Writer: m}
	steps := []struct {
		name  string
		log   *Log
		recs  []Record
		sizes int // head reads this step
	}{
		{"first append reads the head", a, testRecords(0, 3), 1},
		{"second append guesses", a, testRecords(3, 4), 0},
		{"batch guesses", a, testRecords(4, 9), 0},
		{"another node reads the head", b, testRecords(9, 12), 1},
		{"guess too low: refused, head read", a, testRecords(12, 13), 1},
		{"then guesses again", a, testRecords(13, 20), 0},
	}
	for _, s := range steps {
		w.sizes = 0
		first, err := s.log.Append(ctx, w, s.recs...)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if want := int64(len(m.entries) - len(s.recs)); first != want {
			t.Errorf("%s: appended at %d, want %d", s.name, first, want)
		}
		if w.sizes != s.sizes {
			t.Errorf("%s: %d log-head reads, want %d", s.name, w.sizes, s.sizes)
		}
	}
	// Guess too high: a transaction appends and rolls back.
	rolledBack := &txWriter{m: m}
	if _, err := a.Append(ctx, rolledBack, testRecords(100, 104)...); err != nil {
		t.Fatal(err)
	}
	w.sizes = 0
	if first, err := a.Append(ctx, w, testRecords(20, 24)...); err != nil || first != 20 {
		t.Fatalf("append after rollback at %d, %v; want 20", first, err)
	}
	if w.sizes != 1 {
		t.Errorf("after rollback: %d log-head reads, want 1", w.sizes)
	}
	_, honest := buildLog(t, "k", testRecords(0, 24))
	if x, y := treeHash(t, m), treeHash(t, honest); x != y {
		t.Fatalf("root %v, want %v", x, y)
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		origin string
		key    ed25519.PrivateKey
		err    string
	}{
		{"portrait.example/log", testKey("k"), ""},
		{"", testKey("k"), "must be non-empty"},
		{"has space", testKey("k"), "without spaces"},
		{"a+b", testKey("k"), "'+'"},
		{"portrait.example/log", ed25519.PrivateKey{1, 2}, "Ed25519 private key"},
	} {
		l, err := New(tt.origin, tt.key)
		if tt.err == "" {
			if err != nil {
				t.Errorf("New(%q) error %v", tt.origin, err)
			} else if !strings.HasPrefix(l.VerifierKey(), tt.origin+"+") {
				t.Errorf("VerifierKey %q is not named %q", l.VerifierKey(), tt.origin)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("New(%q) error %v, want %q", tt.origin, err, tt.err)
		}
	}
}
