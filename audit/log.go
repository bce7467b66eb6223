package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
)

// HashSize is the size of one stored Merkle hash.
const HashSize = 32

// maxCached bounds the stored-hash cache. The hashes Append needs are the
// at most 63 roots of the tree's complete subtrees, so a small cache is
// enough; when it fills it is simply cleared.
const maxCached = 1 << 16

// Log appends audit records to a Merkle tree kept in a store and signs
// checkpoints of it. A Log holds no log state besides a cache of stored
// hashes, so any number of Logs (one per node) may share one store; but a
// Log serves one store only, since the cache is keyed by storage index.
//
// The store must let a Writer read back, through LogHashes, what its
// transaction appended earlier, and a Reader must see only committed
// entries.
type Log struct {
	// Verifier checks what is read back against the signed tree; the Log
	// signs only trees it has checked.
	*Verifier

	origin string
	signer note.Signer
	vkey   string

	mu    sync.Mutex
	cache map[int64][32]byte
	// committed is the largest log size seen through a Reader. Only hashes
	// produced by records below it are cached: a hash read through a
	// Writer may belong to an earlier Append of the same, still
	// uncommitted, transaction, and a rollback would free its index.
	committed atomic.Int64
	// next is the size after this Log's last append, or 0: Append's
	// guess at the log head (see Append).
	next atomic.Int64
}

// New returns a Log whose checkpoints name origin (e.g.
// "portrait.example/log") and are signed with key. The origin is also the
// name of the note key, as C2SP tlog-checkpoint recommends.
func New(origin string, key ed25519.PrivateKey) (*Log, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit log %q: signing key has %d bytes, want an Ed25519 private key of %d", origin, len(key), ed25519.PrivateKeySize)
	}
	if origin == "" || strings.ContainsAny(origin, "+\n") || strings.ContainsFunc(origin, unicode.IsSpace) {
		return nil, fmt.Errorf("audit log origin %q: must be non-empty without spaces, newlines or '+' (e.g. \"portrait.example/log\")", origin)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("audit log %q: verifier key: %w", origin, err)
	}
	// A note signer key is "PRIVATE+KEY+name+hash+base64(alg||seed)"; the
	// name and key hash are those of the verifier key.
	_, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	skey := "PRIVATE+KEY+" + origin + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("audit log %q: signer: %w", origin, err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &Log{Verifier: v, origin: origin, signer: signer, vkey: vkey, cache: make(map[int64][32]byte)}, nil
}

// Origin returns the checkpoint origin line.
func (l *Log) Origin() string { return l.origin }

// VerifierKey returns the note verifier key of the log
// ("origin+hash+base64key"), served at GET /v1/log/key.
func (l *Log) VerifierKey() string { return l.vkey }

// Encode returns the canonical form of rec as stored and hashed: one line
// of JSON with fields in declaration order, map keys sorted and the time
// in RFC 3339 UTC with nanoseconds. A zero Time becomes the current time.
func Encode(rec Record) ([]byte, error) {
	return appendEncoded(make([]byte, 0, 512), rec)
}

// appendEncoded appends Encode(rec) to b.
func appendEncoded(b []byte, rec Record) ([]byte, error) {
	if rec.Kind == "" {
		return nil, errors.New("audit record has no kind: set Record.Kind (decision, consent, …)")
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	rec.Time = rec.Time.UTC()
	data, err := appendRecord(b, &rec)
	if err != nil {
		return nil, fmt.Errorf("encode audit record %q: %w", rec.Kind, err)
	}
	return data, nil
}

// Append encodes recs (see Encode), computes their Merkle hashes and
// stores them through w as entries first, first+1, …. It is meant to run
// inside the store transaction of the action it records: any error must
// abort that transaction, so that an action that cannot be logged does
// not happen (invariant 3).
//
// Each record n is stored as one portrait.LogEntry whose Hashes are the
// hashes tlog.StoredHashes returned for it, at storage indexes
// tlog.StoredHashIndex(0, n) onwards; EntryForHash maps a storage index
// back to its entry.
func (l *Log) Append(ctx context.Context, w Writer, recs ...Record) (first int64, err error) {
	unavailable := func(err error) error {
		return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "audit log unavailable: the action was not performed", Err: err}
	}
	// One buffer for the batch's records: each record's bytes stay where
	// they were written even if a later append moves the buffer.
	datas := make([][]byte, len(recs))
	buf := make([]byte, 0, 512*len(recs))
	for i, rec := range recs {
		start := len(buf)
		if buf, err = appendEncoded(buf, rec); err != nil {
			return 0, &portrait.Error{Code: portrait.EINTERNAL, Message: "audit record cannot be encoded", Err: err}
		}
		datas[i] = buf[start:len(buf):len(buf)]
	}
	if len(recs) == 0 {
		n0, err := w.LogSize(ctx)
		if err != nil {
			return 0, unavailable(fmt.Errorf("audit append: log size: %w", err))
		}
		return n0, nil
	}

	// Try the size this Log last appended at first: where one writer owns
	// the store (SQLite) it is right unless a transaction rolled back, and
	// it saves reading the log head. A wrong guess is always caught: a
	// guess above the size finds no hash for its last record, one below is
	// refused by the store's contiguity check (ECONFLICT) before anything
	// is written; then the head is read, once, and the batch hashed again.
	if n0 := l.next.Load(); n0 > 0 {
		entries, err := l.entries(ctx, w, n0, recs, datas)
		if err == nil {
			if err = w.AppendLog(ctx, entries); err == nil {
				l.next.Store(n0 + int64(len(entries)))
				return n0, nil
			}
			if portrait.ErrorCode(err) != portrait.ECONFLICT {
				l.next.Store(0)
				return 0, unavailable(fmt.Errorf("audit append %d entries at %d: %w", len(entries), n0, err))
			}
		}
	}
	n0, err := w.LogSize(ctx)
	if err != nil {
		return 0, unavailable(fmt.Errorf("audit append: log size: %w", err))
	}
	entries, err := l.entries(ctx, w, n0, recs, datas)
	if err != nil {
		return 0, unavailable(err)
	}
	if err := w.AppendLog(ctx, entries); err != nil {
		l.next.Store(0)
		return 0, unavailable(fmt.Errorf("audit append %d entries at %d: %w", len(entries), n0, err))
	}
	l.next.Store(n0 + int64(len(entries)))
	return n0, nil
}

// entries reads the stored hashes the records appended at n0 need from
// before the batch and returns the batch's log entries.
func (l *Log) entries(ctx context.Context, w Writer, n0 int64, recs []Record, datas [][]byte) ([]portrait.LogEntry, error) {
	// Every stored hash the new records need from before the batch is
	// the root of one of the complete subtrees of the tree of size n0, so
	// fetch those in one call.
	frontier, err := l.readHashes(ctx, w.LogHashes, subtreeIndexes(n0))
	if err != nil {
		return nil, fmt.Errorf("audit append at %d: read stored hashes: %w", n0, err)
	}
	entries := Entries(n0, frontier, datas)
	for i := range entries {
		entries[i].Kind = recs[i].Kind
	}
	return entries, nil
}

// Entries returns the log entries of records datas appended to a tree of
// size n0 whose complete subtrees have the roots frontier (the stored
// hashes at FrontierIndexes(n0), left to right): each entry's Hashes are
// what tlog.StoredHashes returns for it, in one shared buffer. Kind is
// left empty. Log.Append and the regulator's mirror both hash through it.
func Entries(n0 int64, frontier []tlog.Hash, datas [][]byte) []portrait.LogEntry {
	t := newTree(n0, frontier)
	size := tlog.StoredHashIndex(0, n0+int64(len(datas))) - tlog.StoredHashIndex(0, n0)
	buf := make([]byte, 0, size*HashSize)
	entries := make([]portrait.LogEntry, len(datas))
	for i, data := range datas {
		start := len(buf)
		buf = t.add(data, buf)
		entries[i] = portrait.LogEntry{Index: n0 + int64(i), Data: data, Hashes: buf[start:len(buf):len(buf)]}
	}
	return entries
}

// FrontierIndexes returns the storage indexes of the roots of the
// complete subtrees of the tree of size n, left to right: the only stored
// hashes from before n that appending at n needs.
func FrontierIndexes(n int64) []int64 { return subtreeIndexes(n) }

// EntryForHash returns the log entry (record index) whose append produced
// the stored hash at storageIndex, and the position of that hash within
// the entry's Hashes (bytes offset*32 to offset*32+32).
//
// The stored hash at level L, index k (tlog.SplitStoredHashIndex) is the
// root of the complete subtree over records k<<L … ((k+1)<<L)-1, so it is
// produced by the last of them, record ((k+1)<<L)-1, and it is that
// record's hash number L: record n stores its leaf hash and then one hash
// per level of the subtrees it completes.
func EntryForHash(storageIndex int64) (record int64, offset int) {
	level, k := tlog.SplitStoredHashIndex(storageIndex)
	return (k+1)<<uint(level) - 1, level
}

// subtreeIndexes returns the storage indexes of the roots of the complete
// subtrees that make up the tree of size n, left to right.
func subtreeIndexes(n int64) []int64 {
	var idx []int64
	var lo int64
	for lo < n {
		level := bits.Len64(uint64(n-lo)) - 1
		idx = append(idx, tlog.StoredHashIndex(level, lo>>uint(level)))
		lo += 1 << uint(level)
	}
	return idx
}

// sawCommitted records that a Reader (which sees only committed data)
// reported size records.
func (l *Log) sawCommitted(size int64) {
	for {
		c := l.committed.Load()
		if size <= c || l.committed.CompareAndSwap(c, size) {
			return
		}
	}
}

// readHashes returns the stored hashes at indexes, from the cache or in
// one call to fetch. Stored hashes never change once committed, so the
// cache is safe when several nodes append to the same store.
func (l *Log) readHashes(ctx context.Context, fetch func(context.Context, []int64) ([][32]byte, error), indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missAt []int
	var miss []int64
	l.mu.Lock()
	for i, x := range indexes {
		if h, ok := l.cache[x]; ok {
			out[i] = h
		} else {
			missAt = append(missAt, i)
			miss = append(miss, x)
		}
	}
	l.mu.Unlock()
	if len(miss) == 0 {
		return out, nil
	}
	got, err := fetch(ctx, miss)
	if err != nil {
		return nil, err
	}
	if len(got) != len(miss) {
		return nil, fmt.Errorf("store returned %d hashes for %d indexes", len(got), len(miss))
	}
	committed := l.committed.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, i := range missAt {
		out[i] = got[k]
		if rec, _ := EntryForHash(miss[k]); rec < committed {
			if len(l.cache) >= maxCached {
				clear(l.cache)
			}
			l.cache[miss[k]] = got[k]
		}
	}
	return out, nil
}

// hashReader adapts a store's LogHashes to tlog.HashReader.
func (l *Log) hashReader(ctx context.Context, fetch func(context.Context, []int64) ([][32]byte, error)) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l.readHashes(ctx, fetch, indexes)
	})
}
