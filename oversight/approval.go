package oversight

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// Record kinds of the four-eyes workflow (SG-7). A change request is the
// catalog record itself: the record a start appends when the catalog
// changed carries the labels and use-cases that differ from the approved
// ones, and who started the node with it.
const (
	KindApproval    = "catalog_approval"
	KindCountersign = "catalog_countersign"
	// KindRefusal records the regulator's signed refusal to countersign.
	KindRefusal = "catalog_countersign_refusal"
)

// fourEyes marks catalog records written since approvals exist. Records
// without it predate the workflow: what they name is taken as accepted,
// so that a store upgraded in place keeps running what it ran.
const fourEyes = 1

// Judgement is what an approver answers for, in their own words: why the
// data chosen is necessary and adequate for the purpose, and why the rule
// or model is appropriate for the use. A checkbox would record nothing.
type Judgement struct {
	Data      string `json:"data"`
	Algorithm string `json:"algorithm"`
}

// Bounds of a judgement's answers, in characters.
const (
	minJudgement = 10
	maxJudgement = 2000
)

func (j Judgement) check() error {
	for _, f := range []struct{ name, v string }{{"data", j.Data}, {"algorithm", j.Algorithm}} {
		n := utf8.RuneCountInString(strings.TrimSpace(f.v))
		if n < minJudgement || n > maxJudgement {
			return &portrait.Error{Code: portrait.EINVALID, Requirement: "SG-7", Message: fmt.Sprintf(
				"judgement %q: say in %d to %d characters why the %s is appropriate (%d given); an approval records the approver's judgement, not a tick",
				f.name, minJudgement, maxJudgement, map[string]string{"data": "data chosen", "algorithm": "rule or model"}[f.name], n)}
		}
		if err := portrait.CheckText("judgement "+f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// Approval is a named person's approval of a change request.
type Approval struct {
	Index int64     `json:"log_index"`
	Time  time.Time `json:"time"`
	By    string    `json:"by"` // role:team/person
	Judgement
}

// Countersigned is the regulator's countersignature of a change request's
// high-tier use-cases, as verified and recorded; or, in Refusal, its
// refusal with the reason it gave.
type Countersigned struct {
	Index int64     `json:"log_index"`
	Time  time.Time `json:"time"`
	By    string    `json:"recorded_by"`
	Note  string    `json:"note,omitempty"`
}

// Change request statuses.
const (
	StatusPending      = "pending"                   // awaiting approval
	StatusCountersign  = "awaiting_countersignature" // approved; high-tier use-cases await the regulator
	StatusApproved     = "approved"
	StatusSuperseded   = "superseded" // a later request covers its items; not approvable
	StatusRefused      = "refused_by_regulator"
	StatusNothingToAsk = "none" // baseline or no label or use-case changed
)

// ChangeRequest is a catalog change that adds or changes labels or
// use-cases, with the diff against the approved definitions.
type ChangeRequest struct {
	Index   int64            `json:"log_index"`
	Time    time.Time        `json:"time"`
	Author  string           `json:"author"` // team/person who started the node with it
	Catalog string           `json:"catalog_sha256"`
	Changes []catalog.Change `json:"changes"`
	// Items are the labels and use-cases to approve, "label:ID" →
	// definition digest (catalog.Definitions).
	Items map[string]string `json:"items"`
	// Countersign lists the high-tier use-cases among Items, which also
	// need the regulator's countersignature when the engine is joined.
	Countersign   []string       `json:"needs_countersignature,omitempty"`
	Status        string         `json:"status"`
	Approval      *Approval      `json:"approval,omitempty"`
	Countersigned *Countersigned `json:"countersigned,omitempty"`
	Refusal       *Countersigned `json:"refused,omitempty"`
}

// RegulatorDecision is what a verified decision document of the
// regulator says: it countersigns (or, Refused, refuses) the items of
// change request Request.
type RegulatorDecision struct {
	Request int64
	Items   map[string]string
	Refused bool
	Note    string
	By      string // the regulator's staff member
}

// CountersignVerifier checks a decision document from the regulator with
// the regulator's key and returns what it says. cmd/portrait sets it to
// regulator.VerifyCountersignature when the engine joins.
type CountersignVerifier func(doc []byte) (RegulatorDecision, error)

// SetRegulator tells the service that the engine is joined: from now on
// high-tier use-cases need the regulator's countersignature, verified
// with verify, to go live. The held items are synced at once.
func (s *Service) SetRegulator(ctx context.Context, verify CountersignVerifier) error {
	s.idx.mu.Lock()
	s.verify = verify
	s.idx.mu.Unlock()
	return s.Sync(ctx)
}

// approvalState is what the log says about approvals up to some size.
type approvalState struct {
	cats    []catalogRecord
	approvs map[int64]Approval
	csigns  map[int64]Countersigned
	refused map[int64]Countersigned
	joined  bool
}

func (s *Service) state() approvalState {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	st := approvalState{cats: slices.Clone(s.idx.catalogs), approvs: map[int64]Approval{}, csigns: map[int64]Countersigned{}, refused: map[int64]Countersigned{}, joined: s.verify != nil}
	maps.Copy(st.approvs, s.idx.approvals)
	maps.Copy(st.csigns, s.idx.csigns)
	maps.Copy(st.refused, s.idx.refused)
	return st
}

// complete reports whether request r is approved (and countersigned
// when that is needed) and the log index at which it became so.
func (st approvalState) complete(r catalogRecord) (int64, bool) {
	a, ok := st.approvs[r.Index]
	if !ok {
		return 0, false
	}
	at := a.Index
	if st.joined && len(r.Countersign) > 0 {
		c, ok := st.csigns[r.Index]
		if !ok {
			return 0, false
		}
		at = max(at, c.Index)
	}
	return at, true
}

// approved returns the label and use-case definitions in force by
// approval: those of the last record before the workflow or of the
// baseline, then every completed request's items in the order they
// completed.
func (st approvalState) approved() map[string]string {
	out := map[string]string{}
	base := -1
	for i, r := range st.cats {
		if !r.FourEyes || r.Baseline {
			base = i
		}
	}
	if base >= 0 {
		for k, v := range st.cats[base].Declarations {
			if strings.HasPrefix(k, "label:") || strings.HasPrefix(k, "use_case:") {
				out[k] = v
			}
		}
	}
	// An approved request awaiting the regulator makes live what needs no
	// countersignature; the rest goes live with the countersignature.
	type done struct {
		at    int64
		items map[string]string
	}
	var list []done
	for _, r := range st.cats[base+1:] {
		a, ok := st.approvs[r.Index]
		if !ok || len(r.Items) == 0 {
			continue
		}
		if at, ok := st.complete(r); ok {
			list = append(list, done{at, r.Items})
			continue
		}
		items := maps.Clone(r.Items)
		for _, k := range r.Countersign {
			delete(items, k)
		}
		list = append(list, done{a.Index, items})
	}
	slices.SortFunc(list, func(a, b done) int { return int(a.at - b.at) })
	for _, d := range list {
		maps.Copy(out, d.items)
	}
	return out
}

// pending returns the labels and use-cases of cat that are not approved,
// "label:ID" → the change request (log index) that asks for them, or -1
// when none does yet.
func (st approvalState) pending(cat *catalog.Catalog) map[string]int64 {
	defs := cat.Definitions()
	out := map[string]int64{}
	for _, ch := range catalog.DiffDefinitions(st.approved(), defs) {
		if ch.Needs != catalog.NeedsApproval {
			continue
		}
		k := ch.Kind + ":" + ch.ID
		out[k] = -1
		for i := len(st.cats) - 1; i >= 0; i-- {
			if d, ok := st.cats[i].Items[k]; ok && d == defs[k] {
				out[k] = st.cats[i].Index
				break
			}
		}
	}
	return out
}

// highTier lists the high-tier use-cases among items.
func highTier(cat *catalog.Catalog, items map[string]string) []string {
	var out []string
	for k := range items {
		if id, ok := strings.CutPrefix(k, "use_case:"); ok {
			if uc := cat.UseCase(id); uc != nil && uc.Tier == catalog.TierHigh {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// hold writes the pending set into the shared suspensions, in tx: every
// node's decision point refuses a held label or use-case from its next
// request on (invariant 5), and lifts what is no longer pending.
func (s *Service) hold(ctx context.Context, tx portrait.Tx, pending map[string]int64, author map[int64]string) error {
	list, err := s.store.Suspensions(ctx)
	if err != nil {
		return fmt.Errorf("read held declarations: %w", err)
	}
	kinds := map[string]string{"label": policy.UnapprovedLabel, "use_case": policy.UnapprovedUseCase}
	want := map[[2]string]string{}
	for k, req := range pending {
		kind, id, _ := strings.Cut(k, ":")
		why := "no change request covers it; restart with the catalog to file one"
		if req >= 0 {
			why = fmt.Sprintf("change request %d by %s awaits approval (GET /v1/catalog/changes)", req, author[req])
		}
		want[[2]string{kinds[kind], id}] = why
	}
	have := map[[2]string]string{}
	for _, x := range list {
		if x.Kind == policy.UnapprovedLabel || x.Kind == policy.UnapprovedUseCase {
			have[[2]string{x.Kind, x.ID}] = x.Reason
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			if err := tx.Lift(ctx, k[0], k[1]); err != nil && portrait.ErrorCode(err) != portrait.ENOTFOUND {
				return fmt.Errorf("release %s %s: %w", k[0], k[1], err)
			}
		}
	}
	for k, why := range want {
		if have[k] == why {
			continue
		}
		if err := tx.Suspend(ctx, policy.Suspension{Kind: k[0], ID: k[1], Reason: why, By: "system:four-eyes", At: s.now()}); err != nil {
			return fmt.Errorf("hold %s %s: %w", k[0], k[1], err)
		}
	}
	return nil
}

func authors(cats []catalogRecord) map[int64]string {
	out := make(map[int64]string, len(cats))
	for _, r := range cats {
		out[r.Index] = r.Author
	}
	return out
}

// Sync re-reads the approvals in the log and holds exactly the labels and
// use-cases of the loaded catalog that are not approved.
func (s *Service) Sync(ctx context.Context) error {
	cat := s.point.Catalog()
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		n, err := tx.LogSize(ctx)
		if err != nil {
			return fmt.Errorf("log size: %w", err)
		}
		if err := s.scanCatalogs(ctx, n); err != nil {
			return err
		}
		st := s.state()
		return s.hold(ctx, tx, st.pending(cat), authors(st.cats))
	})
	if err != nil {
		return failClosed("hold unapproved declarations", err)
	}
	return s.reloadSuspensions(ctx)
}

func (s *Service) reloadSuspensions(ctx context.Context) error {
	list, err := s.store.Suspensions(ctx)
	if err != nil {
		return failClosed("read suspensions", err)
	}
	s.point.SetSuspensions(list)
	return nil
}

// Held lists the labels and use-cases of the loaded catalog that are
// not live for want of approval, "label:ID" → change request or -1.
func (s *Service) Held(ctx context.Context) (map[string]int64, error) {
	n, err := s.store.LogSize(ctx)
	if err != nil {
		return nil, failClosed("log size", err)
	}
	if err := s.scanCatalogs(ctx, n); err != nil {
		return nil, err
	}
	return s.state().pending(s.point.Catalog()), nil
}

// ChangeRequests lists the catalog records that asked for approval,
// newest first, with their status, read from the verified log.
func (s *Service) ChangeRequests(ctx context.Context) ([]ChangeRequest, error) {
	n, err := s.store.LogSize(ctx)
	if err != nil {
		return nil, failClosed("log size", err)
	}
	if err := s.scanCatalogs(ctx, n); err != nil {
		return nil, err
	}
	st := s.state()
	pend := st.pending(s.point.Catalog())
	out := []ChangeRequest{}
	for i := len(st.cats) - 1; i >= 0; i-- {
		r := st.cats[i]
		if !r.FourEyes || len(r.Items) == 0 {
			continue
		}
		out = append(out, st.request(r, pend))
	}
	return out, nil
}

func (st approvalState) request(r catalogRecord, pend map[string]int64) ChangeRequest {
	cr := ChangeRequest{Index: r.Index, Time: r.Time, Author: r.Author, Catalog: r.Digest, Changes: r.Changes, Items: r.Items, Countersign: r.Countersign}
	if cr.Changes == nil {
		cr.Changes = []catalog.Change{}
	}
	if a, ok := st.approvs[r.Index]; ok {
		cr.Approval = &a
	}
	if c, ok := st.csigns[r.Index]; ok {
		cr.Countersigned = &c
	}
	if c, ok := st.refused[r.Index]; ok {
		cr.Refusal = &c
	}
	switch _, done := st.complete(r); {
	case done:
		cr.Status = StatusApproved
	case cr.Refusal != nil:
		cr.Status = StatusRefused
	case cr.Approval != nil:
		cr.Status = StatusCountersign
	default:
		cr.Status = StatusSuperseded
		for k := range r.Items {
			if pend[k] == r.Index {
				cr.Status = StatusPending
			}
		}
	}
	return cr
}

// Approve records caller's approval of change request (its log index)
// with their judgement, and makes its items live on every node — unless
// high-tier use-cases still await the regulator's countersignature. The
// approver must be a named staff member (admin or reviewer) other than
// the request's author (SG-7, RO-7).
func (s *Service) Approve(ctx context.Context, caller policy.Caller, request int64, j Judgement) (ChangeRequest, error) {
	if caller.Role != policy.Admin && caller.Role != policy.Reviewer {
		return ChangeRequest{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "SG-7",
			Message: fmt.Sprintf("role %s may not approve catalog changes; an admin or reviewer must", caller.Role)}
	}
	if err := j.check(); err != nil {
		return ChangeRequest{}, err
	}
	if err := portrait.CheckStaffName(caller.ID); err != nil {
		return ChangeRequest{}, &portrait.Error{Code: portrait.EDENIED, Requirement: "SG-7",
			Message: "an approval is answered for by a named person: use a staff key named team/person"}
	}
	return s.decide(ctx, request, func(st *approvalState, r catalogRecord) (audit.Record, error) {
		if r.Author == caller.ID {
			return audit.Record{}, &portrait.Error{Code: portrait.EDENIED, Requirement: "SG-7",
				Message: fmt.Sprintf("%s wrote change request %d and may not approve it: a named person other than its author must", caller.ID, request)}
		}
		if a, ok := st.approvs[r.Index]; ok {
			return audit.Record{}, portrait.Errorf(portrait.ECONFLICT, "change request %d was already approved by %s", request, a.By)
		}
		return audit.Record{Kind: KindApproval, Time: s.now(), Actor: actor(caller), Action: "approve", Codes: []string{"SG-7"},
			Detail: map[string]any{"request": r.Index, "catalog": r.Digest, "items": r.Items, "data": strings.TrimSpace(j.Data), "algorithm": strings.TrimSpace(j.Algorithm)}}, nil
	})
}

// Countersign records the regulator's countersignature doc of change
// request's high-tier use-cases, after verifying it with the regulator's
// key: it must name this request and exactly its items.
func (s *Service) Countersign(ctx context.Context, caller policy.Caller, request int64, doc []byte) (ChangeRequest, error) {
	if caller.Role != policy.Admin {
		return ChangeRequest{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "SG-7",
			Message: fmt.Sprintf("role %s may not record a countersignature; an admin must", caller.Role)}
	}
	s.idx.mu.Lock()
	verify := s.verify
	s.idx.mu.Unlock()
	if verify == nil {
		return ChangeRequest{}, portrait.Errorf(portrait.ECONFLICT, "this engine is not joined to a regulator: no countersignature is needed or accepted")
	}
	d, err := verify(doc)
	if err == nil && d.Refused {
		err = fmt.Errorf("it is the regulator's refusal, not a countersignature")
	}
	if err != nil {
		return ChangeRequest{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "SG-7", Message: "countersignature refused: " + err.Error()}
	}
	return s.decide(ctx, request, s.countersignRecord(actor(caller), d, doc))
}

// Receive records a decision document the engine fetched from the
// regulator — a countersignature or a refusal — after verifying it with
// the regulator's key. A decision already recorded is not an error.
func (s *Service) Receive(ctx context.Context, doc []byte) (ChangeRequest, error) {
	s.idx.mu.Lock()
	verify := s.verify
	s.idx.mu.Unlock()
	if verify == nil {
		return ChangeRequest{}, portrait.Errorf(portrait.ECONFLICT, "this engine is not joined to a regulator")
	}
	d, err := verify(doc)
	if err != nil {
		return ChangeRequest{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "SG-7", Message: "the regulator's decision does not verify: " + err.Error()}
	}
	return s.decide(ctx, d.Request, s.countersignRecord("regulator:"+d.By, d, doc))
}

// countersignRecord builds the record of decision d (from doc) on a
// change request, once it names exactly the request's items.
func (s *Service) countersignRecord(by string, d RegulatorDecision, doc []byte) func(*approvalState, catalogRecord) (audit.Record, error) {
	return func(st *approvalState, r catalogRecord) (audit.Record, error) {
		got, items, request := d.Request, d.Items, r.Index
		if got != r.Index || !maps.Equal(items, r.Items) {
			return audit.Record{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "SG-7",
				Message: fmt.Sprintf("countersignature refused: it is for change request %d with other items, not request %d as filed", got, r.Index)}
		}
		if len(r.Countersign) == 0 {
			return audit.Record{}, portrait.Errorf(portrait.ECONFLICT, "change request %d has no high-tier use-case: no countersignature is needed", request)
		}
		if c, ok := st.csigns[r.Index]; ok {
			return audit.Record{}, portrait.Errorf(portrait.ECONFLICT, "change request %d was already countersigned (log entry %d)", request, c.Index)
		}
		if c, ok := st.refused[r.Index]; ok {
			return audit.Record{}, portrait.Errorf(portrait.ECONFLICT, "the regulator refused change request %d (log entry %d): %s", request, c.Index, c.Note)
		}
		kind, action := KindCountersign, "countersign"
		if d.Refused {
			kind, action = KindRefusal, "refuse"
		}
		return audit.Record{Kind: kind, Time: s.now(), Actor: by, Action: action, Codes: []string{"SG-7"},
			Detail: map[string]any{"request": r.Index, "catalog": r.Digest, "items": r.Items, "note": d.Note, "document": string(doc)}}, nil
	}
}

// decide appends the record build makes for change request, under the
// log head lock, and holds or releases the declarations in the same
// transaction.
func (s *Service) decide(ctx context.Context, request int64, build func(*approvalState, catalogRecord) (audit.Record, error)) (ChangeRequest, error) {
	cat := s.point.Catalog()
	var out ChangeRequest
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		n, err := tx.LogSize(ctx)
		if err != nil {
			return fmt.Errorf("log size: %w", err)
		}
		if err := s.scanCatalogs(ctx, n); err != nil {
			return err
		}
		st := s.state()
		i := slices.IndexFunc(st.cats, func(r catalogRecord) bool { return r.Index == request })
		if i < 0 || !st.cats[i].FourEyes || len(st.cats[i].Items) == 0 {
			return portrait.Errorf(portrait.ENOTFOUND, "no change request at log entry %d; see GET /v1/catalog/changes", request)
		}
		r := st.cats[i]
		if cr := st.request(r, st.pending(cat)); cr.Status == StatusSuperseded {
			return portrait.Errorf(portrait.ECONFLICT, "change request %d is superseded: the catalog running now differs from it; approve the newer request", request)
		}
		rec, err := build(&st, r)
		if err != nil {
			return err
		}
		idx, err := s.log.Append(ctx, tx, rec)
		if err != nil {
			return err
		}
		switch rec.Kind {
		case KindApproval:
			st.approvs[r.Index] = Approval{Index: idx, Time: rec.Time, By: rec.Actor}
		case KindCountersign:
			st.csigns[r.Index] = Countersigned{Index: idx, Time: rec.Time, By: rec.Actor}
		case KindRefusal:
			st.refused[r.Index] = Countersigned{Index: idx, Time: rec.Time, By: rec.Actor, Note: rec.Detail["note"].(string)}
		}
		if err := s.hold(ctx, tx, st.pending(cat), authors(st.cats)); err != nil {
			return err
		}
		out = st.request(r, st.pending(cat))
		if out.Approval != nil && rec.Kind == KindApproval {
			out.Approval.Judgement = Judgement{Data: rec.Detail["data"].(string), Algorithm: rec.Detail["algorithm"].(string)}
		}
		return nil
	})
	if err != nil {
		return ChangeRequest{}, failClosed("record the approval", err)
	}
	return out, s.reloadSuspensions(ctx)
}

// decodeDetail decodes a verified record's detail into v through JSON.
func decodeDetail(e audit.Entry, v any) error {
	raw, err := json.Marshal(e.Record.Detail)
	if err == nil {
		err = json.Unmarshal(raw, v)
	}
	if err != nil {
		return fmt.Errorf("audit entry %d: %s record detail: %w", e.Index, e.Record.Kind, err)
	}
	return nil
}

// NoticeChange says what changed in purpose since the notice version
// was, for a subject asked to consent again (CN-3): the difference between
// the purpose's scope recorded when it last ran under was and its scope
// now, as catalog diff words it. ok is false when no record of was exists.
func (s *Service) NoticeChange(ctx context.Context, purpose, was string) (ch catalog.Change, ok bool, err error) {
	n, err := s.store.LogSize(ctx)
	if err != nil {
		return catalog.Change{}, false, failClosed("log size", err)
	}
	if err := s.scanCatalogs(ctx, n); err != nil {
		return catalog.Change{}, false, err
	}
	cats := s.history()
	for i := len(cats) - 1; i >= 0; i-- {
		sc, found := cats[i].Scopes[purpose]
		if !found || sc.NoticeVersion != was {
			continue
		}
		for _, c := range catalog.DiffScopes(map[string]catalog.Scope{purpose: sc}, s.point.Catalog()) {
			if c.Kind == "purpose" && c.ID == purpose {
				return c, true, nil
			}
		}
		return catalog.Change{}, false, nil
	}
	return catalog.Change{}, false, nil
}
