package oversight

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/limit"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rights"
)

// KindCatalog is the audit-record kind that marks the catalog the system
// runs with; the filing's change history is built from these records.
const KindCatalog = "catalog"

// NoSubject is the subject of cases that concern no data subject
// (breaches, violation reports). Pseudonyms are hex, so it never clashes.
const NoSubject = "-"

// Deps are the parts of Portrait the service reads. Apply is optional: without
// it the filing lists no assessments on record.
type Deps struct {
	Store Store
	Point *policy.Point
	Keys  *keys.Keyring
	Log   *audit.Log
	Apply *apply.Service
}

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// ReportDeadline is how long the handler has to answer a violation
	// report (default 15 working days, as for subject requests).
	ReportDeadline rights.Deadline
	// ReportRate and ReportBurst bound violation reports per client
	// address: Burst at once, then one per ReportRate (default 5, then one
	// a minute).
	ReportRate  time.Duration
	ReportBurst int
	// ReportMaxText bounds a report's description in bytes (default 8 KiB).
	ReportMaxText int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Operator is the staff name (team/person) of who starts this node:
	// recorded as accepting the baseline catalog of a new store, and as
	// the author of the change request a changed catalog files (SG-7).
	Operator string
}

// Service builds the oversight documents and keeps breaches and reports.
// It is safe for concurrent use.
type Service struct {
	store Store
	point *policy.Point
	keys  *keys.Keyring
	log   *audit.Log
	apply *apply.Service
	opts  Options

	idx     logIndex
	limiter *limit.Limiter
	// verify checks the regulator's countersignatures; set once joined
	// (guarded by idx.mu).
	verify CountersignVerifier
	// reg is the regulator complaints go to, once joined (Join).
	reg atomic.Pointer[Regulator]
}

// New returns a Service and records the loaded catalog in the audit log if
// it differs from the last one recorded (FA-3).
func New(ctx context.Context, d Deps, opts Options) (*Service, error) {
	if d.Store == nil || d.Point == nil || d.Keys == nil || d.Log == nil {
		return nil, errors.New("oversight: store, decision point, keyring and audit log are all required")
	}
	if opts.ReportDeadline == (rights.Deadline{}) {
		opts.ReportDeadline = rights.Jurisdictions[catalog.JurisdictionCN]
	}
	if opts.ReportRate <= 0 {
		opts.ReportRate = time.Minute
	}
	if opts.ReportBurst <= 0 {
		opts.ReportBurst = 5
	}
	if opts.ReportMaxText <= 0 {
		opts.ReportMaxText = 8 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Operator == "" {
		opts.Operator = "operator/unnamed"
	}
	s := &Service{store: d.Store, point: d.Point, keys: d.Keys, log: d.Log, apply: d.Apply, opts: opts}
	s.idx.kinds = map[string]map[string]int64{}
	s.idx.approvals, s.idx.csigns, s.idx.refused = map[int64]Approval{}, map[int64]Countersigned{}, map[int64]Countersigned{}
	s.limiter = limit.New(opts.ReportRate, opts.ReportBurst)
	if err := s.RecordCatalog(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// catalogDigest is the hex SHA-256 of the catalog's JSON, which carries every
// declaration with the keys of the YAML.
func catalogDigest(cat *catalog.Catalog) string { return digest(cat) }

func digest(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// declarations maps every declaration ("use_case:credit_limit") to a short
// digest of its content, so that consecutive catalog records show which
// declarations were added, removed or changed. Ids only: nothing personal.
func declarations(cat *catalog.Catalog) map[string]string {
	out := map[string]string{"handler": digest(cat.Handler)[:16]}
	for _, p := range cat.Purposes {
		out["purpose:"+p.ID] = digest(p)[:16]
	}
	for _, f := range cat.Fields {
		out["field:"+f.Name] = digest(f)[:16]
	}
	for _, e := range cat.EventTypes {
		out["event_type:"+e.ID] = digest(e)[:16]
	}
	// Labels and use-cases as catalog.Definitions digests them, which is
	// what approvals name (SG-7).
	maps.Copy(out, cat.Definitions())
	return out
}

// RecordCatalog appends a "catalog" audit record of the loaded catalog
// unless the last such record already names it. New calls it at start; the
// filing calls it again, so a catalog swapped in at run time is recorded too.
func (s *Service) RecordCatalog(ctx context.Context) error {
	cat := s.point.Catalog()
	d := catalogDigest(cat)
	if last, ok := s.lastCatalog(); ok && last.Digest == d {
		return nil
	}
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		// LogSize locks the log head: no other node can record a catalog
		// between the check and the append, so each change is logged once.
		n, err := tx.LogSize(ctx)
		if err != nil {
			return fmt.Errorf("log size: %w", err)
		}
		if err := s.scanCatalogs(ctx, n); err != nil {
			return err
		}
		last, ok := s.lastCatalog()
		if ok && last.Digest == d {
			return nil
		}
		st := s.state()
		if ok && last.Digest == d {
			// Recorded already; approvals may have come since.
			return s.hold(ctx, tx, st.pending(cat), authors(st.cats))
		}
		if ok && last.Scopes != nil {
			if err := purposeCreep(last.Scopes, cat); err != nil {
				return err
			}
		}
		detail := map[string]any{"version": cat.Version, "declarations": declarations(cat), "scopes": cat.Scopes(),
			"rule_pack": cat.Pack().String(), "rule_pack_sha256": cat.Pack().Digest(), "four_eyes": fourEyes, "author": s.opts.Operator}
		pending := map[string]int64{}
		if !ok {
			// The baseline: the catalog a new store first starts with,
			// accepted by the operator who started it (SG-7).
			detail["baseline"] = true
		} else {
			pending = st.pending(cat)
			defs := cat.Definitions()
			items := map[string]string{}
			var changes []catalog.Change
			for _, ch := range catalog.DiffDefinitions(st.approved(), defs) {
				if ch.Needs == catalog.NeedsApproval {
					items[ch.Kind+":"+ch.ID] = defs[ch.Kind+":"+ch.ID]
					changes = append(changes, ch)
				}
			}
			if len(items) > 0 {
				detail["changes"], detail["items"], detail["countersign"] = changes, items, highTier(cat, items)
			}
		}
		action := "load"
		if !ok {
			action = "accept_baseline"
		}
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: KindCatalog, Time: s.now(), Actor: "operator:" + s.opts.Operator, Action: action, Digest: d, Detail: detail})
		if err != nil {
			return err
		}
		au := authors(st.cats)
		au[idx] = s.opts.Operator
		for k, req := range pending {
			if req < 0 {
				pending[k] = idx // filed by this very record
			}
		}
		return s.hold(ctx, tx, pending, au)
	})
	if errors.Is(err, ErrPurposeCreep) {
		return err
	}
	if err != nil {
		return fmt.Errorf("record catalog %s in the audit log: %w", d[:12], err)
	}
	return s.reloadSuspensions(ctx)
}

// ErrPurposeCreep is returned, wrapped with the purposes and the fix, when
// the catalog changes what a purpose covers — its data use, its fields'
// categories, its recipients, separate consent or basis — without a new
// notice_version: old consents would quietly cover a new purpose (CN-3).
var ErrPurposeCreep = errors.New("purpose changed without a new notice version")

// purposeCreep compares the scopes the system last ran with to cat.
func purposeCreep(last map[string]catalog.Scope, cat *catalog.Catalog) error {
	var lines []string
	for _, ch := range catalog.DiffScopes(last, cat) {
		if ch.Needs == catalog.NeedsNotice {
			lines = append(lines, fmt.Sprintf("purpose %q: %s; fix: raise its notice_version, so that consents given under the old notice stop counting and subjects are asked again [CN-3]", ch.ID, ch.What))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("%w (the catalog last run with differs; see portrait catalog diff):\n%s", ErrPurposeCreep, strings.Join(lines, "\n"))
}

// logIndex summarises the audit log, read incrementally: counts by kind and
// month, and the catalog records.
type logIndex struct {
	mu       sync.Mutex
	scanned  int64                       // entries counted into kinds
	catScan  int64                       // entries searched for catalog records
	kinds    map[string]map[string]int64 // kind → "2006-01" → records
	first    time.Time
	last     time.Time
	catalogs []catalogRecord
	// approvals and countersignatures of change requests, by request.
	approvals map[int64]Approval
	csigns    map[int64]Countersigned
	refused   map[int64]Countersigned
}

type catalogRecord struct {
	Index        int64
	Time         time.Time
	Digest       string
	Version      string
	Declarations map[string]string
	// Scopes are the purposes' scopes (records before they were kept have none).
	Scopes map[string]catalog.Scope
	// The four-eyes workflow (SG-7): records without FourEyes predate it.
	FourEyes    bool
	Baseline    bool
	Author      string
	Changes     []catalog.Change
	Items       map[string]string
	Countersign []string
}

func (s *Service) lastCatalog() (catalogRecord, bool) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if len(s.idx.catalogs) == 0 {
		return catalogRecord{}, false
	}
	return s.idx.catalogs[len(s.idx.catalogs)-1], true
}

// scanPage bounds the entries read at once.
const scanPage = 2048

// scanCatalogs reads the catalog records not yet seen, up to size, through
// the log's kind index: start-up and the filing need them, not the rest
// of the log.
func (s *Service) scanCatalogs(ctx context.Context, size int64) error {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.catScan >= size {
		return nil
	}
	// Checked against the signed tree: the filing and the catalog-change
	// check rest on these records (invariant 8).
	entries, err := s.log.ReadVerifiedKinds(ctx, s.store, []string{KindCatalog, KindApproval, KindCountersign, KindRefusal}, s.idx.catScan, size)
	if err != nil {
		return fmt.Errorf("read catalog records of the audit log: %w", err)
	}
	for _, e := range entries {
		rec := e.Record
		// The record was checked against the signed tree; its detail is
		// decoded into the catalog's own types through JSON once more.
		switch rec.Kind {
		case KindApproval, KindCountersign, KindRefusal:
			var detail struct {
				Request int64  `json:"request"`
				Note    string `json:"note"`
				Judgement
			}
			if err := decodeDetail(e, &detail); err != nil {
				return err
			}
			switch rec.Kind {
			case KindApproval:
				s.idx.approvals[detail.Request] = Approval{Index: e.Index, Time: rec.Time, By: rec.Actor, Judgement: detail.Judgement}
			case KindCountersign:
				s.idx.csigns[detail.Request] = Countersigned{Index: e.Index, Time: rec.Time, By: rec.Actor}
			default:
				s.idx.refused[detail.Request] = Countersigned{Index: e.Index, Time: rec.Time, By: rec.Actor, Note: detail.Note}
			}
			continue
		}
		var detail struct {
			Version      string                   `json:"version"`
			Declarations map[string]string        `json:"declarations"`
			Scopes       map[string]catalog.Scope `json:"scopes"`
			FourEyes     int                      `json:"four_eyes"`
			Baseline     bool                     `json:"baseline"`
			Author       string                   `json:"author"`
			Changes      []catalog.Change         `json:"changes"`
			Items        map[string]string        `json:"items"`
			Countersign  []string                 `json:"countersign"`
		}
		if err := decodeDetail(e, &detail); err != nil {
			return err
		}
		s.idx.catalogs = append(s.idx.catalogs, catalogRecord{Index: e.Index, Time: rec.Time, Digest: rec.Digest,
			Version: detail.Version, Declarations: detail.Declarations, Scopes: detail.Scopes,
			FourEyes: detail.FourEyes >= fourEyes, Baseline: detail.Baseline, Author: detail.Author,
			Changes: detail.Changes, Items: detail.Items, Countersign: detail.Countersign})
	}
	s.idx.catScan = size
	return nil
}

// snapshot signs a checkpoint of the log and summarises the log up to
// exactly its size: holding the index lock keeps any other scan from
// moving past the size the checkpoint names.
func (s *Service) snapshot(ctx context.Context) (note []byte, st LogStats, err error) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if note, err = s.log.Sign(ctx, s.store); err != nil {
		return nil, LogStats{}, err
	}
	cp, err := audit.ParseCheckpoint(note, s.log.VerifierKey())
	if err != nil {
		return nil, LogStats{}, fmt.Errorf("own checkpoint: %w", err)
	}
	if err := s.scanLocked(ctx, cp.Size); err != nil {
		return nil, LogStats{}, err
	}
	st = LogStats{Size: cp.Size, First: s.idx.first, Last: s.idx.last, Kinds: []KindCount{}}
	for _, k := range slices.Sorted(maps.Keys(s.idx.kinds)) {
		for _, p := range slices.Sorted(maps.Keys(s.idx.kinds[k])) {
			st.Kinds = append(st.Kinds, KindCount{Kind: k, Period: p, Count: s.idx.kinds[k][p]})
		}
	}
	return note, st, nil
}

func (s *Service) scanLocked(ctx context.Context, size int64) error {
	for s.idx.scanned < size {
		to := min(s.idx.scanned+scanPage, size)
		entries, err := s.log.ReadVerified(ctx, s.store, s.idx.scanned, to)
		if err != nil {
			return fmt.Errorf("read audit log [%d, %d): %w", s.idx.scanned, to, err)
		}
		for _, e := range entries {
			rec := e.Record
			period := rec.Time.UTC().Format("2006-01")
			if s.idx.kinds[rec.Kind] == nil {
				s.idx.kinds[rec.Kind] = map[string]int64{}
			}
			s.idx.kinds[rec.Kind][period]++
			if s.idx.first.IsZero() {
				s.idx.first = rec.Time
			}
			s.idx.last = rec.Time
		}
		s.idx.scanned = to
	}
	return nil
}

// LogStats summarises the audit log up to Size (RO-2).
type LogStats struct {
	Size  int64       `json:"size"`
	First time.Time   `json:"first,omitzero"`
	Last  time.Time   `json:"last,omitzero"`
	Kinds []KindCount `json:"by_kind"`
}

// KindCount is the number of records of one kind in one calendar month (UTC).
type KindCount struct {
	Kind   string `json:"kind"`
	Period string `json:"period"`
	Count  int64  `json:"count"`
}

// history returns the catalog records seen so far.
func (s *Service) history() []catalogRecord {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	return slices.Clone(s.idx.catalogs)
}

func actor(c policy.Caller) string {
	if c.ID != "" {
		return string(c.Role) + ":" + c.ID
	}
	return string(c.Role)
}

// failClosed keeps application errors and marks anything else as the store
// or log being unavailable: nothing was changed (invariant 3).
func failClosed(op string, err error) error {
	var pe *portrait.Error
	if errors.As(err, &pe) {
		return err
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: op + ": the store or audit log is unavailable, so nothing was changed; retry later", Err: err}
}
