package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

// Action is what a caller wants to do with personal data.
type Action string

// Actions the decision point rules on.
const (
	Collect Action = "collect" // store newly collected values (ingest)
	Read    Action = "read"    // staff read of personal values for a purpose
	Derive  Action = "derive"  // compute labels, segments, scores
	Use     Action = "use"     // apply a portrait: recommend, decide, target
	Access  Action = "access"  // the subject's own access or export (SR-1, SR-2)
	Correct Action = "correct" // the subject corrects a value (CM-2)
	Erase   Action = "erase"   // erasure (SR-3)
	Sweep   Action = "sweep"   // retention sweep (CM-3)
)

// Role is who is calling.
type Role string

// Roles. Staff roles authenticate with API keys, subjects with subject
// tokens; System is Portrait's own background work (sweeper, derivation).
const (
	Admin     Role = "admin"
	Operator  Role = "operator"
	Reviewer  Role = "reviewer"
	Auditor   Role = "auditor"
	Regulator Role = "regulator"
	Subject   Role = "subject"
	System    Role = "system"
)

// Roles lists the roles an API key may carry.
var Roles = []Role{Admin, Operator, Reviewer, Auditor, Regulator}

// Roles of a regulator node's staff (package regulator). A regulator node
// stores them as API keys in its own database; no company engine accepts
// them, since they are not in Roles.
const (
	RegulatorAdmin Role = "regulator-admin" // enrols companies, issues orders
	Inspector      Role = "inspector"       // reads companies, filings and the mirror
)

// RegulatorRoles lists the roles a regulator staff key may carry.
var RegulatorRoles = []Role{RegulatorAdmin, Inspector}

// Pseudonym is a data subject's keyed pseudonym (keys.Keyring.Pseudonym),
// the only name for a subject that grants, stores and the log hold. The
// raw external subject id stays a plain string: the distinct type makes
// the compiler refuse one where the other is meant. It is declared here,
// where grants are keyed by it, and named portrait.Pseudonym in the
// vocabulary.
type Pseudonym string

// Caller identifies who asks. For a subject, Subject is their pseudonym.
type Caller struct {
	Role      Role
	ID        string
	Pseudonym Pseudonym
}

// Status is the state of one subject's consent to one purpose.
type Status uint8

// Consent states. None means no record exists.
const (
	None Status = iota
	Granted
	Refused
	Withdrawn
)

var statusNames = [...]string{"none", "granted", "refused", "withdrawn"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// ParseStatus parses "granted", "refused" or "withdrawn".
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames[1:] {
		if s == n {
			return Status(i + 1), nil
		}
	}
	return None, fmt.Errorf("consent status %q: want granted, refused or withdrawn", s)
}

// Consent is the current consent of a subject to a purpose: the newest
// record of the ledger.
type Consent struct {
	Status        Status
	NoticeVersion string
	Guardian      bool // given by a guardian (SM-3)
	At            time.Time
}

// State is everything about one subject the decision point needs. It holds
// no personal values, only the subject's choices and flags.
type State struct {
	Pseudonym       Pseudonym // pseudonym
	Consents        map[string]Consent
	Minor           bool // under the minors age (SM-3)
	Restricted      bool // storage only (SR-7, CM-4)
	ObjectProfiling bool // objection to profiling (SR-7)
	ObjectMarketing bool // objection to direct marketing (SR-7)
	Erased          bool
	// Personalization is the dial, 0 (none) to 100 (full) (LP-4, LP-5).
	Personalization int
	// Suppressed labels: deselected (false) or deleted (true) (LP-3).
	Suppressed map[string]bool
}

// Target kinds a regulator can suspend (RO-6).
const (
	TargetPurpose = "purpose"
	TargetField   = "field"
	TargetLabel   = "label"
	TargetModel   = "model"
	TargetUseCase = "usecase"
)

// Suspension kinds under which a new or changed label or use-case is held
// until a named person other than its author approves it (SG-7). They are
// not targets: no order or API call names them; package oversight writes
// and lifts them as change requests are filed and approved.
const (
	UnapprovedLabel   = "unapproved_label"
	UnapprovedUseCase = "unapproved_usecase"
)

// Suspension stops a purpose, field, label, model or use-case on every node
// until the regulator lifts it (RO-6).
type Suspension struct {
	Kind   string    `json:"kind"`
	ID     string    `json:"id"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// Reason explains a decision: a machine code, the requirement that applied
// and a sentence that names the rule, consent or declaration involved.
type Reason struct {
	Code        string `json:"code"`
	Requirement string `json:"requirement,omitempty"`
	Message     string `json:"message"`
}

// Decision is the answer of the decision point. Grant is valid only when
// Allow is true.
type Decision struct {
	Allow   bool
	Reasons []Reason
	Grant   Grant
}

// Err returns nil when the decision allows, and a *Denied otherwise.
func (d Decision) Err() error {
	if d.Allow {
		return nil
	}
	return &Denied{Reasons: d.Reasons}
}

// Denied is the error for a refused request.
type Denied struct{ Reasons []Reason }

func (e *Denied) Error() string {
	msgs := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		msgs[i] = r.Message
	}
	return "denied: " + strings.Join(msgs, "; ")
}

// Grant is proof that the decision point allowed one action on one
// subject's data for one purpose and set of fields. Only this package can
// make a valid one (invariant 2): its fields are unexported and the zero
// Grant is invalid. Store methods that touch personal data take a Grant and
// call Check.
type Grant struct {
	ok      bool
	subject Pseudonym
	purpose string
	action  Action
	fields  []string
}

// ErrNoGrant is returned by Check for a zero or mismatched grant.
var ErrNoGrant = errors.New("no policy grant for this access")

// Pseudonym returns the pseudonym the grant is for.
func (g Grant) Pseudonym() Pseudonym { return g.subject }

// Purpose returns the purpose the grant is for ("" for rights actions).
func (g Grant) Purpose() string { return g.purpose }

// Action returns the allowed action.
func (g Grant) Action() Action { return g.action }

// Fields returns the fields the grant covers; nil means all of the subject's.
func (g Grant) Fields() []string { return g.fields }

// Valid reports whether the grant came from the decision point.
func (g Grant) Valid() bool { return g.ok }

// Covers reports whether the grant includes field.
func (g Grant) Covers(field string) bool {
	if !g.ok {
		return false
	}
	if g.fields == nil {
		return true
	}
	for _, f := range g.fields {
		if f == field {
			return true
		}
	}
	return false
}

// Check returns ErrNoGrant unless g is valid, for subject, and for one of
// the actions.
func (g Grant) Check(subject Pseudonym, actions ...Action) error {
	if !g.ok || g.subject != subject {
		return fmt.Errorf("%w: subject mismatch", ErrNoGrant)
	}
	for _, a := range actions {
		if g.action == a {
			return nil
		}
	}
	// A copy for the message, so that actions does not escape: the
	// variadic slice stays on the caller's stack, where every stored
	// event's check (guard) would otherwise allocate it.
	return fmt.Errorf("%w: grant is for %s, not %v", ErrNoGrant, g.action, slices.Clone(actions))
}

// Request is one question to the decision point.
type Request struct {
	State   *State
	Purpose string
	Fields  []string
	Labels  []string
	Action  Action
	Caller  Caller
}

// Point is the policy decision point. It is safe for concurrent use; the
// catalog and suspensions are swapped atomically.
type Point struct {
	cat     atomic.Pointer[catalog.Catalog]
	susp    atomic.Pointer[suspensionSet]
	proxies atomic.Pointer[map[string]bool]
}

type suspensionSet struct {
	m map[[2]string]Suspension
}

// New returns a decision point for cat with no suspensions.
func New(cat *catalog.Catalog) *Point {
	p := &Point{}
	p.cat.Store(cat)
	p.susp.Store(&suspensionSet{})
	return p
}

// SetCatalog swaps in a new catalog; decisions made after it returns use it.
func (p *Point) SetCatalog(c *catalog.Catalog) { p.cat.Store(c) }

// Catalog returns the catalog decisions are made against.
func (p *Point) Catalog() *catalog.Catalog { return p.cat.Load() }

// SetSuspensions replaces the active suspensions. Callers that share a
// store across nodes load them from it before deciding.
func (p *Point) SetSuspensions(list []Suspension) {
	s := &suspensionSet{m: make(map[[2]string]Suspension, len(list))}
	for _, x := range list {
		s.m[[2]string{x.Kind, x.ID}] = x
	}
	p.susp.Store(s)
}

// Errors of Target.
var (
	ErrTargetKind = errors.New("unknown suspension kind")
	ErrUndeclared = errors.New("not declared in the catalog")
)

// Target checks that kind/id names something a regulator can suspend: a
// declared purpose, field, label, model (a score label) or use-case.
func (p *Point) Target(kind, id string) error {
	cat := p.cat.Load()
	var ok bool
	switch kind {
	case TargetPurpose:
		ok = cat.Purpose(id) != nil
	case TargetField:
		ok = cat.Field(id) != nil
	case TargetLabel, TargetModel:
		ok = cat.Label(id) != nil
	case TargetUseCase:
		ok = cat.UseCase(id) != nil
	default:
		return fmt.Errorf("%w %q: want purpose, field, label, model or usecase", ErrTargetKind, kind)
	}
	if !ok {
		return fmt.Errorf("%s %q is %w", kind, id, ErrUndeclared)
	}
	return nil
}

// SetProxies replaces the fields and labels that the fairness monitor
// found to act as proxies for a protected attribute and no reviewer has
// cleared (FP-6). Until cleared they are treated as sensitive: they may be
// derived from or used only for a purpose with separate consent.
func (p *Point) SetProxies(names []string) {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	p.proxies.Store(&m)
}

func (p *Point) proxy(name string) bool {
	m := p.proxies.Load()
	return m != nil && (*m)[name]
}

// Suspended returns the suspension of kind/id, if any.
func (p *Point) Suspended(kind, id string) (Suspension, bool) {
	s := p.susp.Load()
	if len(s.m) == 0 {
		return Suspension{}, false
	}
	x, ok := s.m[[2]string{kind, id}]
	return x, ok
}

func deny(code, req, format string, args ...any) Decision {
	return Decision{Reasons: []Reason{{Code: code, Requirement: req, Message: fmt.Sprintf(format, args...)}}}
}

// Decide rules on one request. It allocates nothing on the allow path.
func (p *Point) Decide(r Request) Decision {
	cat := p.cat.Load()
	st := r.State
	if st == nil {
		return deny("no_subject", "", "no subject state was given to the decision point")
	}
	if st.Erased {
		return deny("erased", "SR-3", "subject %s has been erased", st.Pseudonym)
	}
	switch r.Action {
	case Access, Erase, Correct:
		// Rights actions: only the subject, or staff acting on their behalf.
		if r.Caller.Role == Subject && r.Caller.Pseudonym != st.Pseudonym {
			return deny("not_your_subject", "", "a subject token reaches only its own subject")
		}
		if r.Caller.Role != Subject && r.Caller.Role != Operator && r.Caller.Role != Admin && r.Caller.Role != System {
			return deny("role", "CM-5", "role %s may not handle subject requests; use an operator key", r.Caller.Role)
		}
		return Decision{Allow: true, Grant: Grant{ok: true, subject: st.Pseudonym, action: r.Action, fields: r.Fields}}
	case Sweep:
		if r.Caller.Role != System {
			return deny("role", "CM-3", "only Portrait's retention sweeper may sweep")
		}
		return Decision{Allow: true, Grant: Grant{ok: true, subject: st.Pseudonym, action: Sweep}}
	}
	if r.Caller.Role == Subject && r.Caller.Pseudonym != st.Pseudonym {
		return deny("not_your_subject", "", "a subject token reaches only its own subject")
	}
	purpose := cat.Purpose(r.Purpose)
	if purpose == nil {
		return deny("undeclared_purpose", "CN-1", "purpose %q is not declared in the catalog; declare it under purposes: with a legal basis", r.Purpose)
	}
	if s, ok := p.Suspended(TargetPurpose, purpose.ID); ok {
		return deny("suspended", "RO-6", "purpose %q is suspended by the regulator: %s", purpose.ID, s.Reason)
	}
	for _, f := range r.Fields {
		if d, ok := p.checkField(cat, purpose, f); !ok {
			return d
		}
	}
	for _, l := range r.Labels {
		if s, ok := p.Suspended(TargetLabel, l); ok {
			return deny("suspended", "RO-6", "label %q is suspended by the regulator: %s", l, s.Reason)
		}
		if s, ok := p.Suspended(UnapprovedLabel, l); ok {
			return deny("not_approved", "SG-7", "label %q is new or changed and is not live until a named person other than its author approves it: %s", l, s.Reason)
		}
		if st.Suppressed != nil {
			if deleted, ok := st.Suppressed[l]; ok {
				verb := "deselected"
				if deleted {
					verb = "deleted"
				}
				return deny("label_suppressed", "LP-3", "the subject %s label %q", verb, l)
			}
		}
	}
	if st.Restricted {
		return deny("restricted", "SR-7", "the subject restricted processing: their data is storage-only")
	}
	if (r.Action == Derive || r.Action == Use) && !purpose.Separate && p.proxies.Load() != nil {
		for _, names := range [2][]string{r.Fields, r.Labels} {
			for _, n := range names {
				if p.proxy(n) {
					return deny("proxy_flagged", "FP-6", "%q acts as a proxy for a protected attribute; until a reviewer clears it, it is used only for purposes with separate consent, and %q has none", n, purpose.ID)
				}
			}
		}
	}
	if d, ok := objection(st, purpose, r.Action); !ok {
		return d
	}
	if d, ok := basis(st, purpose); !ok {
		return d
	}
	return Decision{Allow: true, Grant: Grant{ok: true, subject: st.Pseudonym, purpose: purpose.ID, action: r.Action, fields: r.Fields}}
}

func (p *Point) checkField(cat *catalog.Catalog, purpose *catalog.Purpose, name string) (Decision, bool) {
	f := cat.Field(name)
	if f == nil {
		return deny("undeclared_field", "CM-1", "field %q is not declared in the catalog; declare it under fields:", name), false
	}
	if s, ok := p.Suspended(TargetField, name); ok {
		return deny("suspended", "RO-6", "field %q is suspended by the regulator: %s", name, s.Reason), false
	}
	for _, id := range f.Purposes {
		if id == purpose.ID {
			return Decision{}, true
		}
	}
	return deny("field_purpose", "CM-1", "field %q is not declared for purpose %q; add the purpose to the field's purposes", name, purpose.ID), false
}

// profiling reports whether a purpose builds or uses a profile.
func profiling(p *catalog.Purpose) bool {
	return strings.Contains(p.DataUse, "profiling") || strings.HasPrefix(p.DataUse, "personalize") ||
		strings.HasPrefix(p.DataUse, "marketing")
}

func objection(st *State, p *catalog.Purpose, a Action) (Decision, bool) {
	if st.ObjectMarketing && strings.HasPrefix(p.DataUse, "marketing") {
		return deny("objection", "SR-7", "the subject objected to direct marketing (purpose %q)", p.ID), false
	}
	if st.ObjectProfiling && (a == Derive || a == Use) && profiling(p) {
		return deny("objection", "SR-7", "the subject objected to profiling (purpose %q)", p.ID), false
	}
	return Decision{}, true
}

func basis(st *State, p *catalog.Purpose) (Decision, bool) {
	if p.Basis != catalog.BasisConsent && p.OptOut() {
		// CN-12: an opt-out of advertising, sale or sharing binds even where
		// the purpose rests on another basis (legitimate interests).
		if c := st.Consents[p.ID]; c.Status == Refused || c.Status == Withdrawn {
			return deny("opted_out", "CN-12", "the subject opted out of purpose %q", p.ID), false
		}
	}
	if p.Basis != catalog.BasisConsent {
		if p.Basis == "" {
			return deny("no_basis", "CN-1", "purpose %q has no legal basis", p.ID), false
		}
		return Decision{}, true
	}
	c := st.Consents[p.ID]
	switch c.Status {
	case Granted:
	case None:
		return deny("no_consent", "CN-1", "no consent on record for purpose %q", p.ID), false
	case Withdrawn:
		return deny("consent_withdrawn", "CN-4", "consent to purpose %q was withdrawn", p.ID), false
	default:
		return deny("consent_refused", "CN-5", "consent to purpose %q was refused", p.ID), false
	}
	if c.NoticeVersion != p.NoticeVersion {
		return deny("notice_changed", "CN-3", "consent to purpose %q was given for notice version %q; the notice is now %q, ask again", p.ID, c.NoticeVersion, p.NoticeVersion), false
	}
	if st.Minor && !c.Guardian {
		return deny("guardian_required", "SM-3", "the subject is under the minors age: purpose %q needs a guardian's consent", p.ID), false
	}
	return Decision{}, true
}

// Collect decides which of an event's fields may be stored: each needs a
// lawful basis for at least one of its declared purposes (CM-1, minimum
// necessary). The grant covers the kept fields; dropped holds a reason per
// refused field. A refused subject (erased, restricted) gets no grant.
func (p *Point) Collect(st *State, fields []string, caller Caller) (Grant, map[string]Reason, error) {
	cat := p.cat.Load()
	if st == nil || st.Erased {
		return Grant{}, nil, &Denied{Reasons: []Reason{{Code: "erased", Requirement: "SR-3", Message: "subject has been erased"}}}
	}
	if st.Restricted {
		return Grant{}, nil, &Denied{Reasons: []Reason{{Code: "restricted", Requirement: "SR-7", Message: "the subject restricted processing: no new data is collected"}}}
	}
	var dropped map[string]Reason
	kept := make([]string, 0, len(fields)) // the grant's own, whatever fields is
	for _, name := range fields {
		f := cat.Field(name)
		var why Reason
		ok := false
		if f == nil {
			why = Reason{Code: "undeclared_field", Requirement: "CM-1", Message: fmt.Sprintf("field %q is not declared in the catalog", name)}
		} else if s, sus := p.Suspended(TargetField, name); sus {
			why = Reason{Code: "suspended", Requirement: "RO-6", Message: fmt.Sprintf("field %q is suspended by the regulator: %s", name, s.Reason)}
		} else {
			for _, pid := range f.Purposes {
				pur := cat.Purpose(pid)
				if pur == nil {
					continue
				}
				if _, sus := p.Suspended(TargetPurpose, pid); sus {
					continue
				}
				if d, allowed := basis(st, pur); allowed {
					ok = true
					break
				} else if why.Code == "" {
					why = d.Reasons[0]
				}
			}
			if !ok && why.Code == "" {
				why = Reason{Code: "no_basis", Requirement: "CM-1", Message: fmt.Sprintf("field %q has no purpose with a lawful basis", name)}
			}
		}
		if ok {
			kept = append(kept, name)
			continue
		}
		if dropped == nil {
			dropped = make(map[string]Reason)
		}
		dropped[name] = why
	}
	if len(kept) == 0 {
		return Grant{}, dropped, nil
	}
	return Grant{ok: true, subject: st.Pseudonym, action: Collect, fields: kept}, dropped, nil
}
