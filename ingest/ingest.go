package ingest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/marshal"
	"github.com/portrait-dev/portrait/policy"

	"github.com/prometheus/client_golang/prometheus"
)

// Result statuses.
const (
	Accepted  = "accepted"
	Rejected  = "rejected"
	Duplicate = "duplicate"
	// NotStored marks an event of a chunk that could not be stored (the
	// store or the audit log failed) after earlier chunks were: send it
	// again.
	NotStored = "not_stored"
)

// Result is the outcome of one event.
type Result struct {
	Index  int    `json:"index"`
	Status string `json:"status"`
	// Chunk is the number (from 1) of the chunk the event was decided and
	// committed in, with its own audit record (Summary.Chunks); 0 for an
	// event refused before that (malformed, undeclared).
	Chunk int `json:"chunk,omitempty"`
	*Problem
	// Dropped names fields that were not stored because no purpose of
	// theirs had a lawful basis (minimum necessary, CM-1).
	Dropped []DroppedField `json:"dropped_fields,omitempty"`
}

// DroppedField is a field left out of a stored event, with the reason.
type DroppedField struct {
	Field string `json:"field"`
	policy.Reason
}

// Summary counts a batch.
type Summary struct {
	Accepted   int `json:"accepted"`
	Rejected   int `json:"rejected"`
	Duplicates int `json:"duplicates"`
	Dropped    int `json:"dropped_fields"`
	// NotStored counts events of chunks that failed after earlier chunks
	// committed; they have status not_stored and may be sent again.
	NotStored int `json:"not_stored,omitempty"`
	// LogIndex is the audit record of the last committed chunk.
	LogIndex int64 `json:"log_index"`
	// Chunks lists every chunk in order: which events it held, whether
	// it committed and its audit record.
	Chunks []Chunk `json:"chunks,omitempty"`
}

// Chunk is one transaction of a batch. Chunks hold whole runs of one
// subject's events, subjects in pseudonym order, so each chunk touches
// few subjects' pages; a subject's events stay in the request's order.
type Chunk struct {
	Number   int   `json:"chunk"`
	Subjects int   `json:"subjects"`
	Events   int   `json:"events"`
	Stored   bool  `json:"stored"`
	LogIndex int64 `json:"log_index,omitempty"`
}

// DefaultChunkSize is how many events one transaction holds by default.
// Large batches commit chunk by chunk so that a consent withdrawal waits
// for one chunk, not the whole request (CN-4). 5,000 measured best on
// SQLite (docs/BENCHMARKS.md): smaller chunks wait less but each commit
// costs page writes that one large transaction shares.
const DefaultChunkSize = 5000

// Options tune an Ingester.
type Options struct {
	// MaxFuture is how far ahead of now an event time may be (clock skew).
	MaxFuture time.Duration
	// MinorAge is the age under which a subject is a minor (SM-3).
	MinorAge float64
	// ChunkSize is how many events one transaction holds (default
	// DefaultChunkSize).
	ChunkSize int
	Now       func() time.Time
	Logger    *slog.Logger
	// OnStored, if set, is called after each chunk commits with the
	// pseudonyms whose data changed, for incremental derivation.
	OnStored func(ctx context.Context, pseudonyms []portrait.Pseudonym)
	// Pending, if set, is called inside each chunk's transaction once its
	// events are stored, with the chunk's pseudonyms: derive.Queue.Mark
	// records there that their labels wait for derivation, so that what
	// OnStored queues survives the process stopping.
	Pending func(ctx context.Context, tx portrait.Tx, pseudonyms []portrait.Pseudonym) error
	// Flags, if set, owns the features held sensitive until a reviewer
	// clears them (package monitor): a lexicon hit in a field declared
	// non-sensitive flags the field through it (SM-1, FP-6). Without it a
	// hit is only counted.
	Flags Flags
}

// Flags is the one owner of the features held sensitive until a reviewer
// clears them; *monitor.Monitor implements it. Ingest appends its flag
// records ("proxy_flag", the kind the owner reads) in the chunk's
// transaction and asks the owner to load them, so that the monitor's
// proxies and ingest's lexicon hits are one set.
type Flags interface {
	// Flagged reports whether feature is held sensitive, or was flagged
	// for protected and cleared by a reviewer: either way it is not
	// flagged again for the same reason.
	Flagged(feature, protected string) bool
	Load(ctx context.Context) error
}

// Ingester is the governed intake of events.
type Ingester struct {
	store  Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	opt    Options

	detections *prometheus.CounterVec
	lexFlags   prometheus.Counter
	subjects   keys.Kept[portrait.SubjectKey] // subject rows read at the last generation (subjects.go)
}

// New returns an Ingester.
func New(d Deps, opt Options) *Ingester {
	store, point, ledger, kr, log := d.Store, d.Point, d.Ledger, d.Keys, d.Log
	if opt.MaxFuture == 0 {
		opt.MaxFuture = 24 * time.Hour
	}
	if opt.MinorAge == 0 {
		opt.MinorAge = 14
	}
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = DefaultChunkSize
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Ingester{store: store, point: point, ledger: ledger, keys: kr, log: log, opt: opt, detections: newDetections(), lexFlags: newLexFlags(),
		subjects: keys.Kept[portrait.SubjectKey]{Max: subjectCacheMax}}
}

// pending is an event that passed validation, on its way to the store.
type pending struct {
	index     int
	pseudonym portrait.Pseudonym
	// event is the request's item, not a copy: it is read, never
	// changed, after check, and a copy was most of a pending event's
	// size.
	event *portrait.Event
	// lexicon maps fields whose values hold a term of the rule pack's
	// lexicon to the lexicon entry: held sensitive once stored (Flags).
	lexicon map[string]string
}

// Ingest validates, minimises, authorises, seals and stores a batch. Every
// item gets a Result. The batch is committed in chunks of
// Options.ChunkSize events, each decided against the consent state of its
// moment and stored in one transaction with its own audit record, so a
// withdrawal made during a long ingest binds the chunks after it (CN-4).
// The error is for the batch as a whole: the first chunk could not be
// stored, so nothing was (invariant 3). A later chunk that fails leaves the
// earlier ones stored; its events and the rest are NotStored.
func (in *Ingester) Ingest(ctx context.Context, caller policy.Caller, items []Item) ([]Result, Summary, error) {
	cat := in.point.Catalog()
	now := in.opt.Now().UTC()
	results := make([]Result, len(items))
	var sum Summary
	todo := in.check(cat, now, items, results)
	defer pendingPool.put(todo) // nothing returned refers to it
	if len(todo) > in.opt.ChunkSize {
		// Events are stored per subject: a chunk of few subjects writes
		// few pages, where a chunk of every subject would rewrite them
		// all, chunk after chunk.
		slices.SortStableFunc(todo, func(a, b pending) int { return cmp.Compare(a.pseudonym, b.pseudonym) })
	}
	n := 0
	for part := range slices.Chunk(todo, in.opt.ChunkSize) {
		n++
		ch := Chunk{Number: n, Events: len(part)}
		if sum.NotStored > 0 {
			// An earlier chunk failed: keep the order of the request and
			// store nothing after it.
			sum.NotStored += notStored(results, part, n, "an earlier chunk of this request was not stored")
			sum.Chunks = append(sum.Chunks, ch)
			continue
		}
		cs, pseudonyms, err := in.chunk(ctx, caller, cat, now, n, part, results)
		ch.Subjects = len(pseudonyms)
		if err != nil {
			if n == 1 {
				return nil, Summary{}, err
			}
			in.opt.Logger.Error("ingest: chunk not stored", "chunk", n, "err", err)
			sum.NotStored += notStored(results, part, n,
				fmt.Sprintf("chunk %d could not be stored (the store or audit log failed); chunks 1–%d are stored; send the events marked not_stored again", n, n-1))
			sum.Chunks = append(sum.Chunks, ch)
			continue
		}
		ch.Stored, ch.LogIndex = true, cs.LogIndex
		sum.Chunks = append(sum.Chunks, ch)
		sum.Accepted += cs.Accepted
		sum.Duplicates += cs.Duplicates
		sum.Dropped += cs.Dropped
		sum.LogIndex = cs.LogIndex
		if in.opt.OnStored != nil && cs.Accepted > 0 {
			in.opt.OnStored(ctx, pseudonyms)
		}
	}
	for _, r := range results {
		if r.Status == Rejected {
			sum.Rejected++
		}
	}
	if len(sum.Chunks) <= 1 {
		sum.Chunks = nil // one transaction: Summary.LogIndex says it all
	}
	return results, sum, nil
}

// check validates items and computes their pseudonyms, setting the result
// of every item it refuses, and returns the others in request order.
// Validation, content detection and the pseudonym are per event and
// independent: they run on every core, each event's outcome in its own
// slot, and are gathered in request order.
func (in *Ingester) check(cat *catalog.Catalog, now time.Time, items []Item, results []Result) []pending {
	checked := pendingPool.get(len(items))
	ok := make([]bool, len(items))
	var (
		mu    sync.Mutex
		memos []*scanMemo
	)
	eachWorker(len(items), func() func(lo, hi int) {
		// A request carries few subjects many times over: each goroutine
		// computes a subject's pseudonym (an HMAC) once.
		pseudonyms := make(map[string]portrait.Pseudonym)
		memo := getMemo()
		mu.Lock()
		memos = append(memos, memo)
		mu.Unlock()
		return func(lo, hi int) {
			for i := lo; i < hi; i++ {
				it := &items[i]
				results[i].Index = i
				if it.Err != nil {
					results[i].Status, results[i].Problem = Rejected, it.Err
					continue
				}
				var lex map[string]string
				if p := in.validate(cat, &it.Event, now, &lex, memo); p != nil {
					results[i].Status, results[i].Problem = Rejected, p
					continue
				}
				id := it.Event.SubjectID
				ps, seen := pseudonyms[id]
				if !seen {
					ps = in.keys.Pseudonym(id)
					pseudonyms[id] = ps
				}
				checked[i] = pending{index: i, pseudonym: ps, event: &it.Event, lexicon: lex}
				ok[i] = true
			}
		}
	})
	for _, m := range memos {
		putMemo(m)
	}
	// Gather in place: a pending event is large, and a second slice of
	// them was as much allocation as the rest of check.
	n := 0
	for i := range checked {
		if ok[i] {
			if n != i {
				checked[n] = checked[i]
			}
			n++
		}
	}
	clear(checked[n:])
	return checked[:n]
}

// pendingPool keeps check's slices of pending events between requests
// (the events they point at are the caller's).
var pendingPool slicePool[pending]

func notStored(results []Result, part []pending, n int, why string) int {
	for _, p := range part {
		r := &results[p.index]
		r.Status, r.Chunk, r.Dropped = NotStored, n, nil
		r.Problem = &Problem{Code: "not_stored", Reason: why}
	}
	return len(part)
}

// chunk decides and stores one chunk of events in one transaction with its
// audit record. The transaction first reads the governance generation
// under the lock that keeps governance changes out; if it moved since the
// chunk was decided, the chunk's subjects' states are read again inside the
// transaction and, if any differs, the chunk is decided again against them,
// so that no event is stored under a consent withdrawn meanwhile (invariant
// 5). Consent traffic of other subjects costs one read, and never a retry
// that could starve.
func (in *Ingester) chunk(ctx context.Context, caller policy.Caller, cat *catalog.Catalog, now time.Time, n int, part []pending, results []Result) (Summary, []portrait.Pseudonym, error) {
	seen := make(map[portrait.Pseudonym]bool)
	var pseudonyms []portrait.Pseudonym
	for _, p := range part {
		if !seen[p.pseudonym] {
			seen[p.pseudonym] = true
			pseudonyms = append(pseudonyms, p.pseudonym)
		}
	}
	gen, err := in.store.Generation(ctx)
	if err != nil {
		return Summary{}, nil, fmt.Errorf("ingest: read governance generation: %w", err)
	}
	states, err := in.ledger.States(ctx, pseudonyms)
	if err != nil {
		return Summary{}, nil, fmt.Errorf("ingest: load consent states: %w", err)
	}
	decide := func(r subjectReader, states map[portrait.Pseudonym]*policy.State) (*batch, error) {
		return in.prepare(ctx, r, caller, cat, now, n, part, pseudonyms, states, results)
	}
	b, err := decide(cachedSubjects{in, gen}, states)
	if err != nil {
		return Summary{}, nil, err
	}
	sum, err := in.commit(ctx, caller, now, n, pseudonyms, gen, b, decide, results)
	// The transaction has ended: its events are written or rolled back.
	// (A batch decided again inside it is left to the collector.)
	b.release()
	if err != nil {
		return Summary{}, nil, fmt.Errorf("ingest: store chunk %d of %d events: %w", n, len(part), err)
	}
	return sum, pseudonyms, nil
}

// batch is a decided chunk, ready to be written.
type batch struct {
	part        []pending
	newSubjects []portrait.SubjectKey
	minors      []portrait.Pseudonym
	states      map[portrait.Pseudonym]*policy.State // as decided, minors marked
	decidedOn   map[portrait.Pseudonym]*policy.State // as read
	events      []portrait.StoredEvent
	eventIdx    []int
	profile     []profileWrite
	digest      hash.Hash
	pooled      []portrait.StoredEvent // events' whole slice, from eventPool
	slabs       []*[]byte              // the sealed values' memory, from slabPool
}

// eventPool keeps the chunks' stored-event slices between chunks: the
// store has written them when the chunk's transaction ends, nothing
// refers to them after, and at about 200 bytes an event they were a
// request's largest allocation.
var eventPool slicePool[portrait.StoredEvent]

// release gives b's event slice and sealing slabs back, the slice
// cleared so that the pool keeps no grant alive. b must not be used
// after: its events' sealed values are in the slabs.
func (b *batch) release() {
	for _, p := range b.slabs {
		*p = (*p)[:0]
		slabPool.Put(p)
	}
	b.slabs = nil
	if b.pooled == nil {
		return
	}
	eventPool.put(b.pooled)
	b.pooled, b.events = nil, nil
}

// profileWrite is one event's profile values under the event's grant, which
// covers exactly its fields: two events of a subject in one chunk can have
// different grants, so each is written under its own, in request order
// (the later value of a field wins).
type profileWrite struct {
	grant  policy.Grant
	values []portrait.ProfileValue
}

// lastWrites keeps, of a chunk's profile writes in request order, only
// the last value of each subject's field, each under the grant of the
// event that brought it, in request order: the profile the transaction
// leaves is the same, since a later upsert of a field replaced an earlier
// one, and a subject with many profile events in a chunk costs the writer
// one upsert per field instead of one per event and field. Every value
// kept was decided under its own event's grant, as before.
func lastWrites(ws []profileWrite) []profileWrite {
	if len(ws) < 2 {
		return ws
	}
	type key struct {
		p     portrait.Pseudonym
		field string
	}
	seen := make(map[key]bool)
	out := make([]profileWrite, 0, len(ws))
	for i := len(ws) - 1; i >= 0; i-- {
		w := ws[i]
		var keep []portrait.ProfileValue
		for j := len(w.values) - 1; j >= 0; j-- {
			k := key{w.grant.Pseudonym(), w.values[j].Field}
			if !seen[k] {
				seen[k] = true
				keep = append(keep, w.values[j])
			}
		}
		if len(keep) > 0 {
			slices.Reverse(keep)
			out = append(out, profileWrite{w.grant, keep})
		}
	}
	slices.Reverse(out)
	return out
}

// subjectReader reads stored subjects: the Store before the write
// transaction, the transaction itself inside it (portrait.Tx.Subjects).
type subjectReader interface {
	Subjects(ctx context.Context, pseudonyms []portrait.Pseudonym) (map[portrait.Pseudonym]portrait.SubjectKey, error)
}

// prepare decides a chunk against the subjects' current states: it
// minimises, authorises and seals each event and sets the result of every
// event it refuses.
func (in *Ingester) prepare(ctx context.Context, r subjectReader, caller policy.Caller, cat *catalog.Catalog, now time.Time, n int, part []pending, pseudonyms []portrait.Pseudonym,
	decidedOn map[portrait.Pseudonym]*policy.State, results []Result) (*batch, error) {
	for _, p := range part {
		results[p.index] = Result{Index: p.index, Chunk: n}
	}
	stored, err := r.Subjects(ctx, pseudonyms)
	if err != nil {
		return nil, fmt.Errorf("ingest: load subjects: %w", err)
	}
	states := maps.Clone(decidedOn)
	b := &batch{part: part, states: states, decidedOn: decidedOn, digest: sha256.New(),
		eventIdx: make([]int, 0, len(part))}
	ciphers := make(map[portrait.Pseudonym]sealer, len(pseudonyms))
	for _, p := range part {
		if _, ok := ciphers[p.pseudonym]; ok {
			continue
		}
		var c *keys.Cipher
		if s, ok := stored[p.pseudonym]; ok {
			c, err = in.keys.Open(s)
		} else {
			var s portrait.SubjectKey
			s, c, err = in.keys.NewSubject(p.event.SubjectID)
			b.newSubjects = append(b.newSubjects, s)
		}
		if err != nil {
			return nil, fmt.Errorf("ingest: subject key: %w", err)
		}
		ciphers[p.pseudonym] = sealer{c, keys.EventAD(p.pseudonym)}
	}

	// Minors first, in request order: an event declaring an age under the
	// minors age changes the state its subject's later events are decided
	// against.
	per := make([]*policy.State, len(part))
	for i, p := range part {
		st := states[p.pseudonym]
		if age := cat.AgeField(); age != nil && !st.Minor {
			if v, ok := p.event.Fields[age.Name].(float64); ok && v < in.opt.MinorAge {
				// SM-3: a declared age under the minors age makes the subject
				// a minor from this event on; consent-based purposes now
				// need a guardian.
				cp := *st
				cp.Minor = true
				st = &cp
				states[p.pseudonym] = st
				b.minors = append(b.minors, p.pseudonym)
			}
		}
		per[i] = st
	}
	events := eventPool.get(len(part))
	b.pooled = events
	out, slabs := in.decideAll(cat, now, caller, part, per, ciphers, events)
	b.slabs = slabs
	defer decidedPool.put(out)
	// Last, in request order: results, the batch and the digest. The
	// stored events are gathered in place.
	line := make([]byte, 0, 128)
	kept := 0
	for i, p := range part {
		d := &out[i]
		if d.err != nil {
			return nil, d.err
		}
		r := &results[p.index]
		r.Dropped = d.dropped
		if d.problem != nil {
			r.Status, r.Problem = Rejected, d.problem
			if d.digest {
				line = append(append(digestPrefix(line[:0], p), d.problem.Code...), '\n')
				b.digest.Write(line)
			}
			continue
		}
		if kept != i {
			events[kept] = events[i]
		}
		kept++
		b.eventIdx = append(b.eventIdx, p.index)
		if len(d.profile) > 0 {
			b.profile = append(b.profile, profileWrite{events[i].Grant, d.profile})
		}
		line = append(digestPrefix(line[:0], p), "accepted\t"...)
		line = hex.AppendEncode(line, d.sum[:])
		b.digest.Write(append(line, '\n'))
	}
	clear(events[kept:])
	b.events = events[:kept]
	return b, nil
}

// decideAll decides each event of part under its state per[i], on every
// core: the decision, minimisation, encoding and sealing depend only on
// the event and its state. The outcomes are in part's order, and the
// event to store of an accepted part[i] is events[i].
// The sealed values are in slabs, which the batch gives back once its
// transaction has ended.
func (in *Ingester) decideAll(cat *catalog.Catalog, now time.Time, caller policy.Caller, part []pending, per []*policy.State, ciphers map[portrait.Pseudonym]sealer, events []portrait.StoredEvent) ([]decided, []*[]byte) {
	out := decidedPool.get(len(part))
	var (
		mu  sync.Mutex
		scs []*scratch
	)
	eachWorker(len(part), func() func(lo, hi int) {
		sc := scratchPool.Get().(*scratch)
		mu.Lock()
		scs = append(scs, sc)
		mu.Unlock()
		return func(lo, hi int) {
			for i := lo; i < hi; i++ {
				out[i] = in.decide(cat, now, caller, &part[i], per[i], ciphers[part[i].pseudonym], &events[i], sc)
			}
		}
	})
	var slabs []*[]byte
	for _, sc := range scs {
		slabs = append(slabs, sc.slabs...)
		clear(sc.slabs)
		sc.slabs = sc.slabs[:0]
		scratchPool.Put(sc)
	}
	return out, slabs
}

// scratchPool keeps decideAll's per-goroutine scratch between chunks.
var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// slabSize is the size of the buffers sealed values are written into:
// a chunk's few hundred kilobytes of sealed events in a few dozen slabs,
// kept between chunks, instead of an allocation per event and value.
const slabSize = 16 << 10

var slabPool = sync.Pool{New: func() any { b := make([]byte, 0, slabSize); return &b }}

// seal seals plain under c and ad into the goroutine's current slab,
// taking a new one when it is full. The value is capped at its length,
// so no append can write into its neighbour. A value larger than an
// eighth of a slab gets its own memory.
func (sc *scratch) seal(c *keys.Cipher, plain, ad []byte) []byte {
	need := len(plain) + c.Overhead()
	if need > slabSize/8 {
		return c.Seal(plain, ad)
	}
	if n := len(sc.slabs); n == 0 || cap(*sc.slabs[n-1])-len(*sc.slabs[n-1]) < need {
		sc.slabs = append(sc.slabs, slabPool.Get().(*[]byte))
	}
	slab := sc.slabs[len(sc.slabs)-1]
	out := c.SealAppend(*slab, plain, ad)
	if out == nil {
		return nil // destroyed key: nothing readable is stored
	}
	v := out[len(*slab):len(out):len(out)]
	*slab = out
	return v
}

// decidedPool keeps decideAll's outcome slices between chunks: after the
// digest and the results are taken from them nothing refers to them, and
// they were a chunk's largest allocation after its events.
var decidedPool slicePool[decided]

// sealer is a subject's cipher and the additional data its events are
// sealed with, made once per subject and chunk.
type sealer struct {
	c  *keys.Cipher
	ad []byte
}

// scratch is one goroutine's working space in decideAll, reused event after
// event: nothing in it outlives the event it was used for.
type scratch struct {
	names []string
	kept  []field
	plain []byte
	slabs []*[]byte // the slabs this goroutine sealed into, the last one current (seal)
}

// digestPrefix appends an event's digest line up to its outcome:
// pseudonym, index, each followed by a tab.
func digestPrefix(dst []byte, p pending) []byte {
	dst = append(append(dst, p.pseudonym...), '\t')
	return append(strconv.AppendInt(dst, int64(p.index), 10), '\t')
}

// decided is one event's outcome in prepare.
type decided struct {
	err     error
	problem *Problem // refused
	digest  bool     // the refusal goes into the chunk's digest
	dropped []DroppedField
	profile []portrait.ProfileValue
	sum     [8]byte // of the stored plaintext, for the digest
}

// field is a kept field and its value.
type field struct {
	name  string
	value any
	f     *catalog.Field
}

// decide minimises, authorises and seals one event under st; it must not
// touch anything shared but read-only state, since prepare runs it on
// every core. An accepted event is written to *ev; sc is the caller's
// scratch space.
func (in *Ingester) decide(cat *catalog.Catalog, now time.Time, caller policy.Caller, p *pending, st *policy.State, s sealer, ev *portrait.StoredEvent, sc *scratch) decided {
	var d decided
	names := sc.names[:0]
	defer func() { sc.names = names[:0] }()
	for name := range p.event.Fields {
		names = append(names, name)
	}
	slices.Sort(names)
	grant, dropped, err := in.point.Collect(st, names, caller)
	if err != nil {
		// Declared here, not above: errors.As takes its address, which
		// would allocate it for every event.
		var den *policy.Denied
		if errors.As(err, &den) {
			d.problem, d.digest = &Problem{Code: den.Reasons[0].Code, Reason: den.Reasons[0].Message, Requirement: den.Reasons[0].Requirement}, true
			return d
		}
		d.err = fmt.Errorf("ingest: decide collection: %w", err)
		return d
	}
	for _, name := range names {
		if why, ok := dropped[name]; ok {
			d.dropped = append(d.dropped, DroppedField{Field: name, Reason: why})
		}
	}
	if !grant.Valid() {
		d.problem, d.digest = &Problem{Code: "no_lawful_basis", Requirement: "CM-1",
			Reason: "no field of this event has a purpose with a lawful basis for this subject; nothing was stored"}, true
		if len(d.dropped) > 0 {
			d.problem.Reason += " (" + d.dropped[0].Message + ")"
		}
		return d
	}
	kept := sc.kept[:0]
	defer func() { clear(kept); sc.kept = kept[:0] }()
	expires := time.Time{}
	for _, name := range grant.Fields() {
		f := cat.Field(name)
		exp := p.event.Time.Add(time.Duration(f.Retention))
		if !exp.After(now) {
			// Already past its retention: collecting it would break CM-3.
			d.dropped = append(d.dropped, DroppedField{Field: name, Reason: policy.Reason{Code: "retention_passed", Requirement: "CM-3",
				Message: fmt.Sprintf("field %q is older than its retention of %s", name, f.Retention)}})
			continue
		}
		kept = append(kept, field{name, p.event.Fields[name], f})
		if expires.IsZero() || exp.Before(expires) {
			expires = exp
		}
	}
	if len(kept) == 0 {
		d.problem = &Problem{Code: "retention_passed", Requirement: "CM-3", Reason: "every field of this event is older than its retention; nothing was stored"}
		return d
	}
	plain, err := encodeFields(sc.plain[:0], kept)
	if err != nil {
		d.err = fmt.Errorf("ingest: encode fields: %w", err)
		return d
	}
	sc.plain = plain // sealed (copied) below; the next event reuses it
	c := s.c
	*ev = portrait.StoredEvent{
		Grant: grant, Pseudonym: p.pseudonym, Type: p.event.Type, Time: p.event.Time,
		Sealed: sc.seal(c, plain, s.ad), Expires: expires,
	}
	if p.event.IdempotencyKey != "" {
		ev.Idem = in.keys.IdemHash(p.pseudonym, p.event.IdempotencyKey)
	}
	for _, kv := range kept {
		f := kv.f
		if !f.Profile {
			continue
		}
		enc, err := marshal.AppendValue(nil, kv.value)
		if err != nil {
			d.err = fmt.Errorf("ingest: encode field %s: %w", kv.name, err)
			return d
		}
		d.profile = append(d.profile, portrait.ProfileValue{
			Field: kv.name, Sealed: sc.seal(c, enc, keys.ProfileAD(p.pseudonym, kv.name)), Source: "event",
			Updated: p.event.Time, Expires: p.event.Time.Add(time.Duration(f.Retention)),
		})
	}
	h := sha256.Sum256(plain)
	copy(d.sum[:], h[:8])
	return d
}

// commit writes a decided chunk and its audit record in one transaction.
// If governance changed since gen was read, decide runs again in the
// transaction, whose lock keeps further changes out until it commits.
func (in *Ingester) commit(ctx context.Context, caller policy.Caller, now time.Time, n int, pseudonyms []portrait.Pseudonym, gen int64, b *batch,
	decide func(subjectReader, map[portrait.Pseudonym]*policy.State) (*batch, error), results []Result) (Summary, error) {
	subjects := len(pseudonyms)
	var sum Summary
	var inserted []bool
	var flagged int
	err := in.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		sum = Summary{}
		g, err := tx.Generation(ctx)
		if err != nil {
			return err
		}
		states := b.decidedOn
		if g != gen {
			fresh, err := tx.States(ctx, pseudonyms)
			if err != nil {
				return err
			}
			if states = fresh; !sameStates(fresh, b.decidedOn) {
				if b, err = decide(tx, fresh); err != nil {
					return err
				}
			}
		}
		if len(b.newSubjects) > 0 {
			// A subject new when the chunk was decided may have been
			// stored since by another request, with its own data key;
			// EnsureSubjects keeps the first key stored, so events sealed
			// with the one made here could never be opened. Store the new
			// subjects, read them back (on PostgreSQL the insert waits for
			// a concurrent one of the same subject and the read sees it
			// committed) and, if a key is not ours, decide again against
			// the stored subjects, all of which now exist.
			if err := tx.EnsureSubjects(ctx, b.newSubjects); err != nil {
				return err
			}
			ps := make([]portrait.Pseudonym, len(b.newSubjects))
			for i, s := range b.newSubjects {
				ps[i] = s.Pseudonym
			}
			stored, err := tx.Subjects(ctx, ps)
			if err != nil {
				return err
			}
			for _, s := range b.newSubjects {
				if !bytes.Equal(stored[s.Pseudonym].WrappedKey, s.WrappedKey) {
					if b, err = decide(tx, states); err != nil {
						return err
					}
					if len(b.newSubjects) > 0 {
						return fmt.Errorf("subject %s is not stored after it was ensured", b.newSubjects[0].Pseudonym)
					}
					break
				}
			}
		}
		for _, ps := range b.minors {
			if err := tx.SetFlags(ctx, ps, flagsOf(b.states[ps])); err != nil {
				return err
			}
		}
		if len(b.events) > 0 {
			if inserted, err = tx.InsertEvents(ctx, b.events); err != nil {
				return err
			}
		}
		for _, w := range lastWrites(b.profile) {
			if err := tx.PutProfile(ctx, w.grant, w.values); err != nil {
				return err
			}
		}
		if in.opt.Pending != nil && (slices.Contains(inserted, true) || len(b.profile) > 0) {
			if err := in.opt.Pending(ctx, tx, pseudonyms); err != nil {
				return err
			}
		}
		for _, ps := range b.minors {
			if _, err := in.log.Append(ctx, tx, audit.Record{Kind: "flags", Time: now, Actor: actor(caller), Pseudonym: ps,
				Action: "minor", Codes: []string{"SM-3"}}); err != nil {
				return err
			}
		}
		rejected := 0
		for _, p := range b.part {
			if results[p.index].Status == Rejected {
				rejected++
			}
		}
		if flagged, err = in.flag(ctx, tx, caller, now, b, results); err != nil {
			return err
		}
		for _, ok := range inserted {
			if ok {
				sum.Accepted++
			} else {
				sum.Duplicates++
			}
		}
		for _, p := range b.part {
			sum.Dropped += len(results[p.index].Dropped)
		}
		detail := map[string]any{"accepted": sum.Accepted, "rejected": rejected,
			"duplicates": sum.Duplicates, "dropped_fields": sum.Dropped, "subjects": subjects}
		if len(b.part) < len(results) {
			detail["chunk"] = n
		}
		rec := audit.Record{Kind: "ingest", Time: now, Actor: actor(caller), Action: "collect",
			Digest: hex.EncodeToString(b.digest.Sum(nil)), Detail: detail}
		sum.LogIndex, err = in.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return Summary{}, err
	}
	if flagged > 0 {
		in.lexFlags.Add(float64(flagged))
		// The flags' owner re-reads them from the log and hands them to
		// the decision point; a failure leaves them on record for its
		// next load or run, so the events stand.
		if err := in.opt.Flags.Load(ctx); err != nil {
			in.opt.Logger.Error("ingest: publish lexicon flags", "err", err)
		}
	}
	for i, ok := range inserted {
		r := &results[b.eventIdx[i]]
		if ok {
			r.Status = Accepted
		} else {
			r.Status = Duplicate
		}
	}
	return sum, nil
}

// sameStates reports whether every subject's governance state in a is the
// one in b, so that decisions made under b hold under a.
func sameStates(a, b map[portrait.Pseudonym]*policy.State) bool {
	if len(a) != len(b) {
		return false
	}
	for p, x := range a {
		y := b[p]
		if y == nil || x.Minor != y.Minor || x.Restricted != y.Restricted || x.ObjectProfiling != y.ObjectProfiling ||
			x.ObjectMarketing != y.ObjectMarketing || x.Erased != y.Erased || x.Personalization != y.Personalization ||
			!maps.Equal(x.Suppressed, y.Suppressed) || len(x.Consents) != len(y.Consents) {
			return false
		}
		for k, c := range x.Consents {
			d, ok := y.Consents[k]
			if !ok || c.Status != d.Status || c.NoticeVersion != d.NoticeVersion || c.Guardian != d.Guardian || !c.At.Equal(d.At) {
				return false
			}
		}
	}
	return true
}

func flagsOf(st *policy.State) portrait.Flags {
	return portrait.Flags{Minor: st.Minor, Restricted: st.Restricted, ObjectProfiling: st.ObjectProfiling,
		ObjectMarketing: st.ObjectMarketing, Personalization: st.Personalization}
}

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return "subject"
	}
	return string(c.Role) + ":" + c.ID
}

// validate checks an event against the catalog (invariant 1) and
// normalises its field values to the declared types. Lexicon hits in
// fields declared non-sensitive are added to *lex (field → lexicon
// entry), made on the first hit. memo keeps recent content scans.
func (in *Ingester) validate(cat *catalog.Catalog, e *portrait.Event, now time.Time, lex *map[string]string, memo *scanMemo) *Problem {
	et := cat.EventType(e.Type)
	if et == nil {
		return &Problem{Code: "undeclared_event_type", Requirement: "CM-1",
			Reason: fmt.Sprintf("event type %q is not declared; declare it under event_types: in the catalog", e.Type)}
	}
	if e.Time.After(now.Add(in.opt.MaxFuture)) {
		return &Problem{Code: "future_time", Reason: fmt.Sprintf("time %s is more than %s in the future; send the time the event happened, in UTC or with its offset",
			e.Time.Format(time.RFC3339), in.opt.MaxFuture)}
	}
	if e.Time.Year() < 1970 {
		return &Problem{Code: "invalid_time", Reason: fmt.Sprintf("time %s is before 1970", e.Time.Format(time.RFC3339))}
	}
	for name, v := range e.Fields {
		f := cat.Field(name)
		if !slices.Contains(et.Fields, name) {
			if f == nil {
				return &Problem{Code: "undeclared_field", Requirement: "CM-1",
					Reason: fmt.Sprintf("field %q is not declared; declare it under fields: and list it in event type %q", name, e.Type)}
			}
			return &Problem{Code: "field_not_in_event_type", Requirement: "CM-1",
				Reason: fmt.Sprintf("event type %q does not carry field %q; add it to the event type's fields in the catalog", e.Type, name)}
		}
		if f.Protected {
			// FP-2: protected attributes are kept apart, never in events.
			return &Problem{Code: "protected_field", Requirement: "FP-2",
				Reason: fmt.Sprintf("field %q is an audit-only protected attribute; record it with PUT /v1/subjects/{id}/protected, not in events", name)}
		}
		nv, err := convert(f, v)
		if err != nil {
			return &Problem{Code: "wrong_type", Reason: err.Error()}
		}
		if p := inBounds(f, nv); p != nil {
			return p
		}
		if p := in.detect(cat.Pack(), f, nv, lex, memo); p != nil {
			return p
		}
		if _, num := v.(json.Number); num || f.Type == catalog.TypeTime {
			e.Fields[name] = nv // convert returned every other value as it was
		}
	}
	return nil
}

func convert(f *catalog.Field, v any) (any, error) {
	if v == nil {
		return nil, fmt.Errorf("field %q is null; leave it out instead", f.Name)
	}
	switch f.Type {
	case catalog.TypeNumber:
		switch x := v.(type) {
		case json.Number:
			n, err := strconv.ParseFloat(string(x), 64)
			if err != nil {
				return nil, fmt.Errorf("field %q: %s is not a finite number", f.Name, x)
			}
			return n, nil
		case float64:
			return v, nil // already boxed: no new allocation
		}
		return nil, fmt.Errorf("field %q must be a number, got %s", f.Name, kind(v))
	case catalog.TypeBool:
		if _, ok := v.(bool); ok {
			return v, nil
		}
		return nil, fmt.Errorf("field %q must be true or false, got %s", f.Name, kind(v))
	case catalog.TypeTime:
		if s, ok := v.(string); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("field %q must be an RFC 3339 time, got %q", f.Name, s)
			}
			return t.UTC().Format(time.RFC3339Nano), nil
		}
		return nil, fmt.Errorf("field %q must be an RFC 3339 time string, got %s", f.Name, kind(v))
	default:
		if s, ok := v.(string); ok {
			if len(s) > 4096 {
				return nil, fmt.Errorf("field %q is longer than 4096 bytes", f.Name)
			}
			return v, nil
		}
		return nil, fmt.Errorf("field %q must be a string, got %s", f.Name, kind(v))
	}
}

// inBounds refuses a number that is not finite or lies outside the field's
// declared min and max (by default |x| ≤ 10¹⁵), so that no aggregate of
// stored values can overflow into a label that cannot be encoded.
func inBounds(f *catalog.Field, v any) *Problem {
	x, ok := v.(float64)
	if !ok {
		return nil
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return &Problem{Code: "not_finite", Requirement: "CM-2", Reason: fmt.Sprintf("field %q must be a finite number", f.Name)}
	}
	lo, hi := f.Bounds()
	if x < lo || x > hi {
		fix := "declare min: and max: on the field in the catalog to allow a wider range"
		if f.Min != nil || f.Max != nil {
			fix = "the catalog declares this range for the field"
		}
		return &Problem{Code: "out_of_range", Requirement: "CM-2", Reason: fmt.Sprintf("field %q is %g, outside [%g, %g]; %s", f.Name, x, lo, hi, fix)}
	}
	return nil
}

func kind(v any) string {
	switch v.(type) {
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}
