package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
)

// ErrTampered reports a stored log that does not match the hashes and the
// signed checkpoints that cover it: a record was edited, moved, removed or
// relabelled, or the log head was wound back. Errors wrapping it are
// *TamperError inside a *portrait.Error with code EUNAVAILABLE: what
// depended on the record is not done (invariants 3 and 8).
var ErrTampered = errors.New("the audit log does not match its hashes and signed checkpoint")

// Recovery says what an operator does about ErrTampered; the README
// section "Recovering from a detected tamper" says it at length.
const Recovery = "keep a copy of the database as evidence, restore it from the newest backup whose log passes this check, " +
	"start again (the start-up check runs on every start) and run `portrait verify --full` against it; " +
	"see README \"Recovering from a detected tamper\""

// TamperError names what did not match.
type TamperError struct {
	Index  int64 // the first entry found wrong; -1 when the log as a whole is (its size, its checkpoint)
	Reason string
}

func (e *TamperError) Error() string {
	if e.Index < 0 {
		return "audit log failed its integrity check: " + e.Reason
	}
	return fmt.Sprintf("audit log entry %d failed its integrity check: %s", e.Index, e.Reason)
}

func (e *TamperError) Unwrap() error { return ErrTampered }

func tampered(index int64, format string, args ...any) error {
	te := &TamperError{Index: index, Reason: fmt.Sprintf(format, args...)}
	msg := "the audit log failed its integrity check, so nothing was done; the operator must restore it"
	if index >= 0 {
		msg = fmt.Sprintf("the audit log failed its integrity check at entry %d, so nothing was done; the operator must restore it", index)
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Requirement: "FA-6", Message: msg, Err: te}
}

// Entry is one audit record read from a store and checked against the
// verified tree.
type Entry struct {
	Index  int64
	Record Record
}

// A Verifier reads a log from a store and checks each record against the
// signed tree before handing it out (invariant 8). It keeps a verified
// head: a size up to which every record's hashes were recomputed from its
// data, and the roots of that tree's complete subtrees. The head starts
// at the newest stored checkpoint signed by the log's key (whose stored
// subtree roots must give its signed root), or at a full check (Check),
// and is extended by reading and hashing the records appended since.
// Records below the head are checked by recomputing the root from their
// data and the stored proof hashes. A Verifier serves one store.
type Verifier struct {
	vkey string

	mu    sync.Mutex
	ready bool
	size  int64
	front []tlog.Hash // roots of the complete subtrees of the tree of size, left to right

	failures atomic.Int64
	hookMu   sync.Mutex
	hook     func(*TamperError)
}

// NewVerifier returns a Verifier of the log whose checkpoints verify with
// verifierKey (a note verifier key, as served at /v1/log/key). The
// regulator's node uses it to check the entries it mirrors; a Log has one
// for its own key.
func NewVerifier(verifierKey string) (*Verifier, error) {
	if _, err := note.NewVerifier(strings.TrimSpace(verifierKey)); err != nil {
		return nil, fmt.Errorf("verifier key %q: %w", verifierKey, err)
	}
	return &Verifier{vkey: strings.TrimSpace(verifierKey)}, nil
}

// OnTamper sets a function called once for every check that finds the log
// tampered with, after the check: the server logs it, counts it in its
// metrics and appends an alert.
func (v *Verifier) OnTamper(f func(*TamperError)) {
	v.hookMu.Lock()
	v.hook = f
	v.hookMu.Unlock()
}

// Failures returns how many checks have found the log tampered with.
func (v *Verifier) Failures() int64 { return v.failures.Load() }

// alert counts and reports err if it is a tamper finding; it returns err.
func (v *Verifier) alert(err error) error {
	var te *TamperError
	if errors.As(err, &te) {
		v.failures.Add(1)
		v.hookMu.Lock()
		f := v.hook
		v.hookMu.Unlock()
		if f != nil {
			f(te)
		}
	}
	return err
}

// pageSize is how many entries a check reads per query.
const pageSize = 4096

// CheckResult summarises a full check.
type CheckResult struct {
	Entries    int64         // records checked
	Checkpoint int64         // size of the newest signed checkpoint checked against them (0: none stored)
	Elapsed    time.Duration // time taken
}

// Check reads every stored record, streaming, and checks it against its
// stored hashes (recomputed from its data, never trusted), its kind
// column against its hashed record, the root at the size of the newest
// stored signed checkpoint against that checkpoint, and that the log head
// is neither behind that checkpoint nor behind a stored record. On
// success the verified head is the whole log. It is the server's start-up
// check: on ErrTampered the server must not serve.
func (v *Verifier) Check(ctx context.Context, r Reader) (CheckResult, error) {
	start := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	res, err := v.check(ctx, r)
	res.Elapsed = time.Since(start)
	return res, v.alert(err)
}

func (v *Verifier) check(ctx context.Context, r Reader) (CheckResult, error) {
	// The checkpoint first, then the size: other nodes may append and
	// publish in between, and an honest log is never smaller than a
	// checkpoint read before its size.
	cp, ok, err := v.saved(ctx, r)
	if err != nil {
		return CheckResult{}, err
	}
	n, err := r.LogSize(ctx)
	if err != nil {
		return CheckResult{}, fmt.Errorf("check audit log: %w", err)
	}
	res := CheckResult{Entries: n}
	if ok {
		res.Checkpoint = cp.Size
		if cp.Size > n {
			return res, tampered(-1, "the newest signed checkpoint covers %d entries but the log head says %d: entries were removed and the head wound back", cp.Size, n)
		}
	}
	t := newTree(0, nil)
	checkRoot := func() error {
		if ok && t.n == cp.Size && t.root() != cp.Hash {
			return tampered(-1, "the %d entries the newest signed checkpoint covers do not give its root hash: entries before %d were changed and their hashes rewritten", cp.Size, cp.Size)
		}
		return nil
	}
	if err := checkRoot(); err != nil {
		return res, err
	}

	type page struct {
		from int64
		es   []portrait.LogEntry
		err  error
	}
	// Two readers fetch alternate pages ahead while this goroutine
	// hashes: reading a page from SQLite costs about twice hashing it,
	// so on two cores the check is bound by the total work, not by one
	// reader.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const readers = 2
	var lanes [readers]chan page
	for k := range lanes {
		lanes[k] = make(chan page, 2)
		go func(k int) {
			defer close(lanes[k])
			for from := int64(k) * pageSize; from < n; from += readers * pageSize {
				es, err := r.LogEntries(ctx, from, min(from+pageSize, n))
				select {
				case lanes[k] <- page{from, es, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}(k)
	}
	pages := make(chan page)
	go func() {
		defer close(pages)
		for i := 0; ; i++ {
			p, ok := <-lanes[i%readers]
			if !ok {
				return
			}
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	var buf []byte
	for p := range pages {
		if p.err != nil {
			if portrait.ErrorCode(p.err) == portrait.ENOTFOUND {
				return res, tampered(p.from, "entries from %d are missing though the head says %d: %v", p.from, n, p.err)
			}
			return res, fmt.Errorf("check audit log: %w", p.err)
		}
		for i := range p.es {
			if buf, err = checkStored(t, &p.es[i], p.from+int64(i), buf); err != nil {
				return res, err
			}
			if err := checkRoot(); err != nil {
				return res, err
			}
		}
	}
	if t.n != n {
		return res, tampered(t.n, "the store holds %d entries, the head says %d", t.n, n)
	}
	if es, err := r.LogEntries(ctx, n, n+1); err == nil && len(es) > 0 {
		return res, tampered(n, "entry %d is stored beyond the log head of %d entries: the head was wound back", n, n)
	}
	v.ready, v.size, v.front = true, n, t.stack
	return res, nil
}

// checkStored checks stored entry e, which must be record want, against
// t, to which it adds it; buf is scratch space, returned for reuse.
func checkStored(t *tree, e *portrait.LogEntry, want int64, buf []byte) ([]byte, error) {
	if e.Index != want {
		return buf, tampered(want, "the store returned entry %d in its place", e.Index)
	}
	kind, err := KindOf(e.Data)
	if err != nil {
		return buf, tampered(want, "its data is not an audit record (%v)", err)
	}
	if e.Kind != kind {
		return buf, tampered(want, "its kind column says %q but its hashed record is a %q: the column was changed", e.Kind, kind)
	}
	buf = t.add(e.Data, buf[:0])
	switch {
	case len(e.Hashes) < HashSize || !bytes.Equal(buf[:HashSize], e.Hashes[:HashSize]):
		return buf, tampered(want, "its record does not match its stored leaf hash: the record was changed")
	case !bytes.Equal(buf, e.Hashes):
		return buf, tampered(want, "its stored tree hashes do not match the records up to it: records were changed, swapped or removed")
	}
	return buf, nil
}

// saved returns the newest stored checkpoint, verified with the log's key.
func (v *Verifier) saved(ctx context.Context, r Reader) (Checkpoint, bool, error) {
	msg, err := r.Checkpoint(ctx)
	if portrait.ErrorCode(err) == portrait.ENOTFOUND || (err == nil && len(msg) == 0) {
		return Checkpoint{}, false, nil
	} else if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read the newest checkpoint: %w", err)
	}
	cp, err := ParseCheckpoint(msg, v.vkey)
	if err != nil {
		return Checkpoint{}, false, tampered(-1, "the newest stored checkpoint is not one this log signed: %v", err)
	}
	return cp, true, nil
}

// Head returns the size and root hash of the log, every record of which
// has been checked, extended to the log's current size.
func (v *Verifier) Head(ctx context.Context, r Reader) (int64, tlog.Hash, error) {
	size, root, err := v.ensure(ctx, r, -1)
	return size, root, v.alert(err)
}

// ensure extends the verified head to at least to (to < 0: the log's
// current size) and returns it.
func (v *Verifier) ensure(ctx context.Context, r Reader, to int64) (int64, tlog.Hash, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready {
		if err := v.start(ctx, r); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	if to < 0 {
		n, err := r.LogSize(ctx)
		if err != nil {
			return 0, tlog.Hash{}, fmt.Errorf("audit log size: %w", err)
		}
		if n < v.size {
			return 0, tlog.Hash{}, tampered(-1, "the log head says %d entries but %d were already verified: entries were removed and the head wound back", n, v.size)
		}
		to = n
	}
	if to > v.size {
		if err := v.extend(ctx, r, to); err != nil {
			return 0, tlog.Hash{}, err
		}
	}
	return v.size, foldRoot(v.front), nil
}

// start sets the head at the newest stored checkpoint, once its stored
// subtree roots are shown to give its signed root.
func (v *Verifier) start(ctx context.Context, r Reader) error {
	cp, ok, err := v.saved(ctx, r) // before the size, as in check
	if err != nil {
		return err
	}
	n, err := r.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("audit log size: %w", err)
	}
	if ok && cp.Size > 0 {
		if cp.Size > n {
			return tampered(-1, "the newest signed checkpoint covers %d entries but the log head says %d: entries were removed and the head wound back", cp.Size, n)
		}
		hs, err := r.LogHashes(ctx, subtreeIndexes(cp.Size))
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return tampered(-1, "entries the newest signed checkpoint covers are missing: %v", err)
		} else if err != nil {
			return fmt.Errorf("audit log: read stored hashes: %w", err)
		}
		front := make([]tlog.Hash, len(hs))
		for i := range hs {
			front[i] = hs[i]
		}
		if foldRoot(front) != cp.Hash {
			return tampered(-1, "the stored hashes of the first %d entries do not give the root of the newest signed checkpoint: entries or hashes were changed", cp.Size)
		}
		v.size, v.front = cp.Size, front
	}
	v.ready = true
	return nil
}

// extend reads and checks the records from the head to to.
func (v *Verifier) extend(ctx context.Context, r Reader, to int64) error {
	t := newTree(v.size, v.front)
	var buf []byte
	for from := v.size; from < to; from += pageSize {
		end := min(from+pageSize, to)
		es, err := r.LogEntries(ctx, from, end)
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			return tampered(from, "entries %d to %d are missing: %v", from, end-1, err)
		} else if err != nil {
			return fmt.Errorf("audit log entries [%d, %d): %w", from, end, err)
		}
		for i := range es {
			if buf, err = checkStored(t, &es[i], from+int64(i), buf); err != nil {
				return err
			}
		}
		if int64(len(es)) != end-from {
			return tampered(from+int64(len(es)), "the store returned %d of entries %d to %d", len(es), from, end-1)
		}
	}
	v.size, v.front = t.n, t.stack
	return nil
}

// ReadVerified returns the records from (inclusive) to to (exclusive),
// each checked against the verified tree: a record that does not match is
// refused with ErrTampered and an alert, never returned.
func (v *Verifier) ReadVerified(ctx context.Context, r Reader, from, to int64) ([]Entry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	if from == to {
		return nil, nil
	}
	size, root, err := v.ensure(ctx, r, to)
	if err != nil {
		return nil, v.alert(err)
	}
	es, err := r.LogEntries(ctx, from, to)
	if portrait.ErrorCode(err) == portrait.ENOTFOUND {
		return nil, v.alert(tampered(from, "entries %d to %d are missing: %v", from, to-1, err))
	} else if err != nil {
		return nil, fmt.Errorf("read audit log [%d, %d): %w", from, to, err)
	}
	if int64(len(es)) != to-from {
		return nil, v.alert(tampered(from, "the store returned %d of entries %d to %d", len(es), from, to-1))
	}
	out, err := v.verify(ctx, r, size, root, es, nil)
	return out, v.alert(err)
}

// ReadVerifiedKinds returns the records of the given kinds from to to,
// found through the store's kind index and each checked against the
// verified tree, its kind against its hashed record.
func (v *Verifier) ReadVerifiedKinds(ctx context.Context, r KindReader, kinds []string, from, to int64) ([]Entry, error) {
	if from < 0 || to < from {
		return nil, portrait.Errorf(portrait.EINVALID, "log entries [%d, %d): want 0 <= from <= to", from, to)
	}
	if from == to {
		return nil, nil
	}
	size, root, err := v.ensure(ctx, r, to)
	if err != nil {
		return nil, v.alert(err)
	}
	es, err := r.LogEntriesOfKind(ctx, kinds, from, to)
	if err != nil {
		return nil, fmt.Errorf("read audit log by kind [%d, %d): %w", from, to, err)
	}
	for _, e := range es {
		if e.Index < from || e.Index >= to {
			return nil, v.alert(tampered(e.Index, "the store returned it for entries %d to %d", from, to-1))
		}
	}
	out, err := v.verify(ctx, r, size, root, es, kinds)
	return out, v.alert(err)
}

// CheckEntries checks stored entries (in index order) against the
// verified tree and returns their records: the check ReadVerified makes,
// for entries obtained some other way (a mirror of another node's log).
func (v *Verifier) CheckEntries(ctx context.Context, r Reader, es []portrait.LogEntry) ([]Entry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	size, root, err := v.ensure(ctx, r, es[len(es)-1].Index+1)
	if err != nil {
		return nil, v.alert(err)
	}
	out, err := v.verify(ctx, r, size, root, es, nil)
	return out, v.alert(err)
}

// verify checks es against the tree of size size and root root, with the
// store's hashes as proof hashes, and decodes them. With kinds, every
// record must be of one of them.
func (v *Verifier) verify(ctx context.Context, r Reader, size int64, root tlog.Hash, es []portrait.LogEntry, kinds []string) ([]Entry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	t := newTree(0, nil)
	idx := make([]int64, len(es))
	leaves := make([]tlog.Hash, len(es))
	out := make([]Entry, len(es))
	for i, e := range es {
		if i > 0 && e.Index <= es[i-1].Index {
			return nil, tampered(e.Index, "the store returned it out of order")
		}
		if e.Index >= size {
			return nil, tampered(e.Index, "it is beyond the verified log of %d entries", size)
		}
		rec, err := Decode(e.Data)
		if err != nil {
			return nil, tampered(e.Index, "its data is not an audit record (%v)", err)
		}
		if rec.Kind != e.Kind {
			return nil, tampered(e.Index, "its kind column says %q but its hashed record is a %q: the column was changed", e.Kind, rec.Kind)
		}
		if kinds != nil && !slices.Contains(kinds, rec.Kind) {
			return nil, tampered(e.Index, "the kind index returned it for %v but its hashed record is a %q", kinds, rec.Kind)
		}
		idx[i], leaves[i], out[i] = e.Index, t.leaf(e.Data), Entry{Index: e.Index, Record: rec}
	}
	hr := storeHashes(ctx, r)
	got, err := knownRoot(size, idx, leaves, hr)
	if err != nil {
		return nil, proofError(err)
	}
	if got == root {
		return out, nil
	}
	// Name a record: first one whose data does not give its own stored
	// leaf hash (edited in place), else the first that a proof from the
	// stored hashes does not place in the signed tree (moved, or hashes
	// near it rewritten: the proof hashes are themselves suspect, so the
	// true culprit may be a neighbour, as the message says).
	for i, e := range es {
		if len(e.Hashes) < HashSize || !bytes.Equal(e.Hashes[:HashSize], leaves[i][:]) {
			return nil, tampered(idx[i], "its record does not match its stored leaf hash: the record was changed")
		}
	}
	for i := range idx {
		one, err := knownRoot(size, idx[i:i+1], leaves[i:i+1], hr)
		if err != nil {
			return nil, proofError(err)
		}
		if one != root {
			return nil, tampered(idx[i], "it cannot be shown to be in the signed log: it or a record near it was moved, removed or rewritten with its hashes")
		}
	}
	return nil, tampered(-1, "the stored hashes do not match the verified tree of %d entries", size)
}

func storeHashes(ctx context.Context, r Reader) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := r.LogHashes(ctx, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i := range hs {
			out[i] = hs[i]
		}
		return out, nil
	})
}

func proofError(err error) error {
	if portrait.ErrorCode(err) == portrait.ENOTFOUND {
		return tampered(-1, "stored hashes needed to check entries are missing: %v", err)
	}
	return fmt.Errorf("audit log: read proof hashes: %w", err)
}
