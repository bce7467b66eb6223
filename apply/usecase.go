package apply

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// KindHalt is the suspension kind an overseer's halt is stored under. A
// halt shares the suspension table (so it reaches every node through the
// store generation, like a regulator's suspension) but never the kinds the
// regulator uses, so a halt and a suspension of the same use-case are two
// records that are imposed and lifted independently (AD-7, RO-6).
const KindHalt = "halt"

// Use-case kinds, as declared in the catalog.
const (
	KindRecommendation = "recommendation"
	KindAudience       = "audience"
	KindDecision       = "decision"
)

// Options configure a Service. Zero values take the defaults.
type Options struct {
	// Assessments is the directory of signed impact assessments (FA-1,
	// AD-5); "" keeps them in memory only.
	Assessments string
	// Observe, if set, is told every recommendation answer — use-case,
	// subject, item ids and their first categories — so that diversity
	// can be measured per recommender and per subject (FB-1, FB-2).
	Observe func(usecase string, pseudonym portrait.Pseudonym, items, categories []string)
	// ItemField and CategoryField name the event fields that carry the
	// item id and its category (default "item" and "category").
	ItemField, CategoryField string
	// Weights of event types in popularity and affinity (default view 1,
	// purchase 3); other types do not count.
	Weights map[string]float64
	// Consumed is the event type that marks an item as already had
	// (default "purchase"); such items are not recommended again unless
	// the use-case's Diversity allows repeats.
	Consumed string
	// Diversity per use-case id; DefaultDiversity otherwise (FB-2).
	Diversity map[string]Diversity
	// LearnEvery is how old the learnt popularity and label affinities may
	// get before a request relearns them (default 10 minutes).
	LearnEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service applies portraits to people through declared use-cases:
// it gates every request (RO-9), ranks items (LP-3, LP-4, LP-5, FB-2) and
// makes explained decisions (AD-2, AD-4). It is safe for concurrent use.
type Service struct {
	store  Store
	point  *policy.Point
	ledger *consent.Ledger
	keys   *keys.Keyring
	log    *audit.Log
	opts   Options

	amu         sync.RWMutex
	assessments map[string]Assessment
	// answered is Answers.Check of each kept assessment, checked once
	// when it is kept rather than on every request the gate lets through.
	answered map[string]error
	configs  configs

	marks   marks
	ciphers ciphers

	imu       sync.Mutex
	items     *itemSet
	itemsGen  int  // counts item imports on this node
	reloading bool // a request is reloading items (under loading)
	loading   sync.Mutex
	learnt    *learnt
	learning  sync.Mutex

	silence func() (silent, max time.Duration)
}

// SetSilence makes the high tier depend on contact with the regulator
// (SG-5): f reports how long the engine has gone without reaching it and
// the longest the regulator allows (0: no limit). Call it before serving.
func (s *Service) SetSilence(f func() (silent, max time.Duration)) { s.silence = f }

// Silence reports f's answer and whether high-tier use-cases are stopped
// because it ran out; no limit without a regulator.
func (s *Service) Silence() (silent, max time.Duration, stopped bool) {
	if s.silence == nil {
		return 0, 0, false
	}
	silent, max = s.silence()
	return silent, max, max > 0 && silent > max
}

// New returns a Service and loads the assessments on record, refusing any
// whose signature does not verify.
func New(d Deps, opts Options) (*Service, error) {
	store, point, ledger, ks, log := d.Store, d.Point, d.Ledger, d.Keys, d.Log
	if store == nil || point == nil || ledger == nil || ks == nil || log == nil {
		return nil, errors.New("apply: store, decision point, ledger, keyring and audit log are all required")
	}
	if opts.ItemField == "" {
		opts.ItemField = "item"
	}
	if opts.CategoryField == "" {
		opts.CategoryField = "category"
	}
	if opts.Weights == nil {
		opts.Weights = map[string]float64{"view": 1, "purchase": 3}
	}
	if opts.Consumed == "" {
		opts.Consumed = "purchase"
	}
	if opts.LearnEvery == 0 {
		opts.LearnEvery = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{store: store, point: point, ledger: ledger, keys: ks, log: log, opts: opts,
		assessments: map[string]Assessment{}, answered: map[string]error{}, marks: marks{set: map[markKey]bool{}}}
	if opts.Assessments != "" {
		list, err := LoadAssessments(opts.Assessments, ks.ReceiptKey().Public().(ed25519.PublicKey))
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			s.keepAssessment(a)
		}
	}
	return s, nil
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return "subject:" + string(c.Pseudonym)
	}
	return string(c.Role) + ":" + c.ID
}

func denied(req, format string, args ...any) error {
	return &portrait.Error{Code: portrait.EDENIED, Requirement: req, Message: fmt.Sprintf(format, args...)}
}

// failClosed keeps application errors and reports anything else as the
// store or log being unavailable: nothing happened (invariant 3).
func failClosed(op string, err error) error {
	var pe *portrait.Error
	var d *policy.Denied
	if errors.As(err, &pe) || errors.As(err, &d) {
		return err
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: op + ": the store or audit log is unavailable; nothing was done", Err: err}
}

// Gate decides whether use-case id may serve a request of kind for the
// subject st (nil when no subject is involved). It refuses, naming the
// reason and the requirement, a use-case that is undeclared (RO-9), of
// another kind, not live (RO-9), suspended by the regulator — itself or
// its model (RO-6) —, halted by an overseer (AD-7), or of high tier
// without a valid impact assessment on record (AD-5, FA-1) or, for a
// subject, without the pre-use notice shown to them (CN-11). Callers
// refresh the suspensions first (any ledger.State call does).
func (s *Service) Gate(ctx context.Context, id, kind string, st *policy.State) (*catalog.UseCase, error) {
	return s.gate(ctx, id, kind, st, nil)
}

// gate is Gate; where it reads the audit log's size for the marks index,
// it leaves it in *seen (when seen is not nil), so that the same request
// checks its other marks at that size rather than reading it again
// (markedAt).
func (s *Service) gate(ctx context.Context, id, kind string, st *policy.State, seen *int64) (*catalog.UseCase, error) {
	cat := s.point.Catalog()
	uc := cat.UseCase(id)
	if uc == nil {
		return nil, &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-9",
			Message: fmt.Sprintf("use-case %q is not declared in the catalog; declare it under use_cases: with a kind, purposes and a risk tier", id)}
	}
	if uc.Kind != kind {
		return nil, portrait.Errorf(portrait.EINVALID, "use-case %q is a %s use-case, not a %s one", id, uc.Kind, kind)
	}
	if uc.Tier == catalog.TierProhibited {
		return nil, denied("RO-9", "use-case %q is of the prohibited tier and may never run", id)
	}
	if !uc.Live {
		return nil, denied("RO-9", "use-case %q is not live: set live: true in the catalog once its obligations are met", id)
	}
	if sus, ok := s.point.Suspended(policy.TargetUseCase, id); ok {
		return nil, denied("RO-6", "use-case %q is suspended by the regulator: %s", id, sus.Reason)
	}
	if uc.Model != "" {
		for _, k := range []string{policy.TargetModel, policy.TargetLabel} {
			if sus, ok := s.point.Suspended(k, uc.Model); ok {
				return nil, denied("RO-6", "use-case %q decides with model %q, which is suspended by the regulator: %s", id, uc.Model, sus.Reason)
			}
		}
	}
	if p, ok := s.point.Suspended(policy.UnapprovedUseCase, id); ok {
		return nil, denied("SG-7", "use-case %q is new or changed and is not live until a named person other than its author approves it: %s", id, p.Reason)
	}
	if p, ok := s.point.Suspended(policy.UnapprovedLabel, uc.Model); ok && uc.Model != "" {
		return nil, denied("SG-7", "use-case %q decides with model %q, which is new or changed and not live until approved: %s", id, uc.Model, p.Reason)
	}
	if h, ok := s.point.Suspended(KindHalt, id); ok {
		return nil, denied("AD-7", "use-case %q was halted by a human overseer (%s): %s", id, h.By, h.Reason)
	}
	if combined := slices.Compact(slices.Sorted(slices.Values(uc.Purposes))); len(combined) > 1 {
		// CM-6: combining data collected for different purposes needs a
		// signed assessment on record, whatever the tier.
		if err := s.assessed(cat, uc); err != nil {
			return nil, denied("CM-6", "use-case %q combines data collected for purposes %s, which needs a current signed impact assessment on record (%v)",
				id, strings.Join(combined, ", "), err)
		}
	}
	if uc.Tier != catalog.TierHigh {
		return uc, nil
	}
	if silent, max, stopped := s.Silence(); stopped {
		return nil, denied("SG-5", "use-case %q is of the high tier and this engine has not reached its regulator for %s, longer than the %s the regulator allows: high-tier use-cases stop until contact returns (lower tiers go on)",
			id, silent.Round(time.Second), max)
	}
	if err := s.assessed(cat, uc); err != nil {
		return nil, err
	}
	if st != nil {
		shown, err := s.markedAt(ctx, seen, markNotice, st.Pseudonym, id)
		if errors.Is(err, audit.ErrTampered) {
			// A notice mark that does not match the signed log proves
			// nothing: refused as if never shown, with the log's finding.
			return nil, &portrait.Error{Code: portrait.EDENIED, Requirement: "CN-11", Err: err,
				Message: fmt.Sprintf("use-case %q is high-risk and the pre-use notice cannot be shown to have been given: the audit log failed its integrity check, so nothing was decided", id)}
		}
		if err != nil {
			return nil, err
		}
		if !shown {
			return nil, denied("CN-11", "use-case %q is high-risk: the pre-use notice has not been shown to this subject; show it and record that with POST /v1/me/usecases/%s/notice first", id, id)
		}
	}
	return uc, nil
}

// Halt stops a use-case at once on every node (AD-7). Only an overseer,
// the admin role, may; the halt is audited and quoted by every refusal.
func (s *Service) Halt(ctx context.Context, caller policy.Caller, id, reason string) error {
	if caller.Role != policy.Admin {
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "AD-7", Message: fmt.Sprintf("only an overseer (admin) may halt a use-case; role %q may not", caller.Role)}
	}
	if s.point.Catalog().UseCase(id) == nil {
		return portrait.Errorf(portrait.ENOTFOUND, "use-case %q is not declared; nothing to halt", id)
	}
	if strings.TrimSpace(reason) == "" {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "AD-7", Message: "a halt needs a reason, which every refusal it causes will quote"}
	}
	h := policy.Suspension{Kind: KindHalt, ID: id, Reason: reason, By: actor(caller), At: s.now()}
	rec := audit.Record{Kind: "oversight", Time: h.At, Actor: h.By, Action: "halt", Detail: map[string]any{"usecase": id, "reason": reason}}
	return s.oversee(ctx, "halt use-case", rec, func(ctx context.Context, tx portrait.Tx) error { return tx.Suspend(ctx, h) })
}

// Resume lifts an overseer's halt (AD-7); a regulator's suspension stays.
func (s *Service) Resume(ctx context.Context, caller policy.Caller, id string) error {
	if caller.Role != policy.Admin {
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "AD-7", Message: fmt.Sprintf("only an overseer (admin) may resume a use-case; role %q may not", caller.Role)}
	}
	if err := s.refresh(ctx); err != nil {
		return err
	}
	if _, ok := s.point.Suspended(KindHalt, id); !ok {
		return portrait.Errorf(portrait.ENOTFOUND, "use-case %q is not halted", id)
	}
	rec := audit.Record{Kind: "oversight", Time: s.now(), Actor: actor(caller), Action: "resume", Detail: map[string]any{"usecase": id}}
	return s.oversee(ctx, "resume use-case", rec, func(ctx context.Context, tx portrait.Tx) error { return tx.Lift(ctx, KindHalt, id) })
}

func (s *Service) oversee(ctx context.Context, op string, rec audit.Record, write func(context.Context, portrait.Tx) error) error {
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if err := write(ctx, tx); err != nil {
			return err
		}
		_, err := s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return failClosed(op, err)
	}
	return s.refresh(ctx)
}

// refresh loads the suspensions and halts into the decision point.
func (s *Service) refresh(ctx context.Context) error {
	list, err := s.store.Suspensions(ctx)
	if err != nil {
		return failClosed("read suspensions", err)
	}
	s.point.SetSuspensions(list)
	return nil
}

// Marks: per-subject, per-use-case facts kept as audit records and read
// back from the log. The pre-use notice (CN-11) and a standing refusal of
// automated decisions (AD-2) are evidence that must outlive any cache, so
// the log is their store of record; the index is rebuilt by reading the
// log's tail whenever a lookup misses, which keeps every node current
// without a schema change.
const (
	markNotice  = "notice"     // the pre-use notice was shown (CN-11)
	markRefusal = "automation" // the subject refused automated decisions (AD-2)
)

type markKey struct{ kind, subject, usecase string }

// marks is the index of marks read from the log so far. Its lock guards
// only memory and is never held across a store read: a decision that
// finds the index current reads it at once, and callers that find it
// behind each read the missing range themselves, at the same time, then
// merge what they read in log order (merge).
type marks struct {
	mu      sync.RWMutex
	scanned int64 // every mark below this index is in set
	set     map[markKey]bool
}

// marked reports whether the newest mark of kind for subject and use-case
// is set, reading log entries it has not seen yet.
func (s *Service) marked(ctx context.Context, kind string, subject portrait.Pseudonym, usecase string) (bool, error) {
	return s.markedAt(ctx, nil, kind, subject, usecase)
}

// markedAt is marked, as of the log size *seen when the same request
// already read it (a decision's gate did, for its notice mark): the
// request is decided as of that read, and a mark appended after it binds
// the next request, which reads the size afresh. With seen nil or at 0
// the size is read, and left in *seen.
func (s *Service) markedAt(ctx context.Context, seen *int64, kind string, subject portrait.Pseudonym, usecase string) (bool, error) {
	k := markKey{kind, string(subject), usecase}
	var size int64
	if seen != nil {
		size = *seen
	}
	if size <= 0 {
		// From memory where one process owns the store (SQLite); the
		// marks up to it are verified against the tree all the same.
		var err error
		if size, err = audit.CommittedSize(ctx, s.store); err != nil {
			return false, failClosed("read audit log size", err)
		}
		if seen != nil {
			*seen = size
		}
	}
	s.marks.mu.RLock()
	from, v := s.marks.scanned, s.marks.set[k]
	s.marks.mu.RUnlock()
	if from >= size {
		return v, nil
	}
	// Through the log's kind index: a decision reads only the marks
	// added since the last one, not every record in between.
	// Each mark is checked against the signed tree before it counts:
	// a mark edited in the store (say, to name another subject) is
	// refused with an alert, and the decision with it (invariant 8).
	//
	// Most ranges hold no mark at all (a decision's own record moved
	// the size), so the kind index is asked first and the verifier,
	// which reads the signed head, only when it names a mark. The
	// index is trusted for what it leaves out either way: the
	// verifier checks the entries it is given, it cannot prove one
	// absent.
	found, err := s.store.LogEntriesOfKind(ctx, []string{"mark"}, from, size)
	if err != nil {
		return false, failClosed("read audit log", err)
	}
	var entries []audit.Entry
	if len(found) > 0 {
		if entries, err = s.log.ReadVerifiedKinds(ctx, s.store, []string{"mark"}, from, size); err != nil {
			return false, failClosed("read audit log", err)
		}
	}
	return s.marks.merge(entries, size, k), nil
}

// merge adds the verified marks of one range of the log, which ends at
// upto, and returns k's mark. Ranges read at the same time overlap and
// arrive in any order; an entry below what is already merged was merged
// from another range, so only the newer ones are applied, in log order,
// and the newest mark of each key wins whatever the order of arrival.
func (m *marks) merge(entries []audit.Entry, upto int64, k markKey) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		if e.Index < m.scanned {
			continue
		}
		r := e.Record
		uc, _ := r.Detail["usecase"].(string)
		kk, _ := r.Detail["mark"].(string)
		m.set[markKey{kk, string(r.Pseudonym), uc}] = r.Action == "set"
	}
	m.scanned = max(m.scanned, upto)
	return m.set[k]
}

// passed moves the index past entry idx, which the caller has just
// appended and which is not a mark, when the index had reached it: every
// decision appends its own record, and without this the next decision's
// mark checks would read the kind index for that one entry. An index
// that had not reached idx (another node or caller appended before it)
// is left to read the range as usual.
func (m *marks) passed(idx int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scanned == idx {
		m.scanned = idx + 1
	}
}

// setMark records a mark in the audit log.
func (s *Service) setMark(ctx context.Context, caller policy.Caller, kind string, subject portrait.Pseudonym, usecase string, on bool, extra map[string]any) (int64, error) {
	action := "clear"
	if on {
		action = "set"
	}
	d := map[string]any{"mark": kind, "usecase": usecase}
	for k, v := range extra {
		d[k] = v
	}
	rec := audit.Record{Kind: "mark", Time: s.now(), Actor: actor(caller), Pseudonym: subject, Action: action, Detail: d}
	var idx int64
	err := s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		idx, err = s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return 0, failClosed("record "+kind, err)
	}
	return idx, nil
}

// subjectFor checks that caller may act for pseudonym and that it is stored.
func (s *Service) subjectFor(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) error {
	switch caller.Role {
	case policy.Subject:
		if caller.Pseudonym != pseudonym {
			return portrait.Errorf(portrait.EFORBIDDEN, "a subject token acts only for its own subject")
		}
	case policy.Admin, policy.Operator:
	default:
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "CM-5", Message: fmt.Sprintf("role %q may not act for a subject; use an operator key", caller.Role)}
	}
	got, err := s.store.Subjects(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return failClosed("look up subject", err)
	}
	if _, ok := got[pseudonym]; !ok {
		return portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", pseudonym)
	}
	return nil
}

// Notice is the pre-use notice of a use-case, as shown.
type Notice struct {
	UseCase  string       `json:"usecase"`
	Tier     string       `json:"tier"`
	Text     catalog.Text `json:"notice"`
	LogIndex int64        `json:"log_index"`
}

// ShowNotice records that the use-case's pre-use notice was shown to the
// subject (CN-11) and returns it. The notice text is the use-case's
// declared notice, or else its purposes' notices.
func (s *Service) ShowNotice(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, usecase string) (Notice, error) {
	cat := s.point.Catalog()
	uc := cat.UseCase(usecase)
	if uc == nil {
		return Notice{}, portrait.Errorf(portrait.ENOTFOUND, "use-case %q is not declared", usecase)
	}
	if err := s.subjectFor(ctx, caller, pseudonym); err != nil {
		return Notice{}, err
	}
	n := Notice{UseCase: uc.ID, Tier: uc.Tier, Text: noticeText(cat, uc)}
	var err error
	n.LogIndex, err = s.setMark(ctx, caller, markNotice, pseudonym, uc.ID, true, map[string]any{"notice_digest": digest(n.Text)})
	return n, err
}

func noticeText(cat *catalog.Catalog, uc *catalog.UseCase) catalog.Text {
	if len(uc.Notice) > 0 {
		return uc.Notice
	}
	t := catalog.Text{}
	for _, p := range uc.Purposes {
		if pur := cat.Purpose(p); pur != nil {
			for lang, s := range pur.Notice {
				t[lang] = strings.TrimSpace(t[lang] + " " + s)
			}
		}
	}
	if uc.Tier == catalog.TierHigh {
		t["zh-CN"] += " 本服务使用高风险自动化决策系统；您可以拒绝自动化决策或申请人工复核。"
		t["en"] += " This service uses a high-risk automated decision system; you may refuse automated decisions or ask for human review."
	}
	return t
}

// RefuseAutomation records (refused true) or withdraws the subject's
// standing refusal of purely automated decisions for a use-case; while it
// stands, decisions go to a human (AD-2).
func (s *Service) RefuseAutomation(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, usecase string, refused bool) error {
	uc := s.point.Catalog().UseCase(usecase)
	if uc == nil || uc.Kind != KindDecision {
		return portrait.Errorf(portrait.ENOTFOUND, "%q is not a declared decision use-case", usecase)
	}
	if err := s.subjectFor(ctx, caller, pseudonym); err != nil {
		return err
	}
	_, err := s.setMark(ctx, caller, markRefusal, pseudonym, usecase, refused, nil)
	return err
}

func digest(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Assessment is an impact assessment (FA-1, AD-5, PIPL 55–56) made from
// the configuration of one use-case and signed with the receipt key. It is
// valid for a year and only for the configuration it describes: its Config
// digest covers the use-case, its purposes, fields and model, so any change
// to them needs a new assessment.
type Assessment struct {
	UseCase   string          `json:"usecase"`
	Tier      string          `json:"tier"`
	Kind      string          `json:"kind"`
	Tags      []string        `json:"tags,omitempty"`
	Owner     string          `json:"owner,omitempty"`
	Purposes  []AssessPurpose `json:"purposes"`
	Fields    []AssessField   `json:"fields"`
	Sensitive []string        `json:"sensitive"`
	Labels    []string        `json:"labels,omitempty"`
	Model     *AssessModel    `json:"model,omitempty"`
	// HumanReview and Fairness state the human-review route and the
	// fairness monitoring the use-case runs under (AD-3, FP-3).
	HumanReview string `json:"human_review"`
	Fairness    string `json:"fairness_monitoring"`
	// Answers are the answers to PIPL Art. 56's questions, by the named
	// people who sign them; they are signed with the rest (FA-1).
	Answers   Answers   `json:"answers"`
	Config    string    `json:"config_digest"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	By        string    `json:"by"`
	KeyID     string    `json:"key_id,omitempty"`
	Signature string    `json:"signature,omitempty"`
	LogIndex  int64     `json:"log_index"`
}

// Answers answer the questions PIPL Art. 56 puts to a personal
// information protection impact assessment, in the words of the people
// who answer for them: whether the purpose and method are lawful,
// legitimate and necessary; the impact on individuals' rights and the
// security risks; and whether the safeguards are lawful, effective and
// proportionate to the risk. The configuration facts (fields, model,
// review route) are filled in from the catalog; these are not.
type Answers struct {
	Purpose    string `json:"purpose" yaml:"purpose"`
	Necessity  string `json:"necessity" yaml:"necessity"`
	Rights     string `json:"rights_impact" yaml:"rights_impact"`
	Risks      string `json:"risks" yaml:"risks"`
	Safeguards string `json:"safeguards" yaml:"safeguards"`
	// SignedBy are the staff names (team/person) who answer for the
	// assessment: at least two different people, say who prepared it and
	// the person responsible for personal information protection.
	SignedBy []string `json:"signed_by" yaml:"signed_by"`
}

// ParseAnswers reads answers from YAML or JSON (portrait assess
// --answers FILE), refusing unknown keys, then checks them.
func ParseAnswers(b []byte) (Answers, error) {
	var a Answers
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&a); err != nil {
		return Answers{}, portrait.Errorf(portrait.EINVALID, "impact assessment answers: %v (want keys purpose, necessity, rights_impact, risks, safeguards, signed_by)", err)
	}
	return a, a.Check()
}

// minAnswer is the fewest characters an answer may have: a sentence, not
// a tick.
const minAnswer = 20

// Check reports the first question left unanswered, or a signature list
// without two distinct named people.
func (a Answers) Check() error {
	for _, q := range []struct{ key, v, what string }{
		{"purpose", a.Purpose, "the purpose and method of processing (处理目的、处理方式)"},
		{"necessity", a.Necessity, "why processing is lawful, legitimate and necessary (合法、正当、必要)"},
		{"rights_impact", a.Rights, "the impact on individuals' rights and interests (对个人权益的影响)"},
		{"risks", a.Risks, "the security risks (安全风险)"},
		{"safeguards", a.Safeguards, "the safeguards and whether they are lawful, effective and proportionate (保护措施)"},
	} {
		if n := utf8.RuneCountInString(strings.TrimSpace(q.v)); n < minAnswer {
			return &portrait.Error{Code: portrait.EINVALID, Requirement: "FA-1",
				Message: fmt.Sprintf("answers.%s: answer PIPL Art. 56's question on %s in at least %d characters (%d given)", q.key, q.what, minAnswer, n)}
		}
		if err := portrait.CheckText("answers."+q.key, q.v); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i, n := range a.SignedBy {
		if err := portrait.CheckStaffName(n); err != nil {
			return &portrait.Error{Code: portrait.EINVALID, Requirement: "FA-1", Message: fmt.Sprintf("answers.signed_by[%d]: %s", i, portrait.ErrorMessage(err))}
		}
		seen[n] = true
	}
	if len(seen) < 2 {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "FA-1",
			Message: "answers.signed_by: an impact assessment is signed by at least two different named people (team/person), e.g. who prepared it and the person responsible for personal information protection"}
	}
	return nil
}

// AssessPurpose is one purpose of an assessed use-case.
type AssessPurpose struct {
	ID         string        `json:"id"`
	Basis      catalog.Basis `json:"basis"`
	Assessment string        `json:"assessment,omitempty"`
}

// AssessField is one field an assessed use-case reads.
type AssessField struct {
	Name      string `json:"name"`
	Category  string `json:"category"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

// AssessModel is the model of an assessed decision use-case.
type AssessModel struct {
	Label     string             `json:"label"`
	Version   int                `json:"version"`
	Kind      string             `json:"kind"`
	Weights   map[string]float64 `json:"weights"`
	Intercept float64            `json:"intercept"`
	Threshold float64            `json:"threshold"`
	Owner     string             `json:"owner,omitempty"`
}

// assessmentValidity is how long an assessment lasts: GB/T 35273 7.7 asks
// for one before first use and yearly after (AD-5).
const assessmentValidity = 365 * 24 * time.Hour

// configs remembers the configuration digest of each use-case of the
// catalog in force: the gate compares it with the assessment's on every
// high-tier request, and building it (describe, a JSON digest) was 5 % of
// a decision's CPU. A catalog is never changed once loaded — a new one is
// a new value (policy.Point.SetCatalog) — so the digests are kept for one
// catalog value and dropped when another comes.
type configs struct {
	mu   sync.Mutex
	cat  *catalog.Catalog
	byUC map[string]string
}

func (c *configs) of(cat *catalog.Catalog, uc *catalog.UseCase) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cat != cat {
		c.cat, c.byUC = cat, map[string]string{}
	}
	d, ok := c.byUC[uc.ID]
	if !ok {
		d = describe(cat, uc).Config
		c.byUC[uc.ID] = d
	}
	return d
}

// describe builds the assessment body of a use-case from the catalog.
func describe(cat *catalog.Catalog, uc *catalog.UseCase) Assessment {
	a := Assessment{UseCase: uc.ID, Tier: uc.Tier, Kind: uc.Kind, Tags: uc.Tags, Owner: uc.Owner, Labels: uc.Labels,
		Sensitive: []string{}, Fields: []AssessField{}}
	for _, id := range uc.Purposes {
		if p := cat.Purpose(id); p != nil {
			a.Purposes = append(a.Purposes, AssessPurpose{ID: p.ID, Basis: p.Basis, Assessment: p.Assessment})
		}
	}
	names := slices.Clone(uc.Fields)
	for _, l := range uc.Labels {
		if lb := cat.Label(l); lb != nil {
			names = append(names, lb.Fields()...)
		}
	}
	if m := cat.Label(uc.Model); m != nil && m.Model != nil {
		names = append(names, m.Fields()...)
		a.Model = &AssessModel{Label: m.ID, Version: m.Version, Kind: m.Model.Kind, Weights: m.Model.Weights,
			Intercept: m.Model.Intercept, Threshold: m.Model.Threshold, Owner: m.Owner}
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		f := cat.Field(n)
		if f == nil {
			continue
		}
		a.Fields = append(a.Fields, AssessField{Name: f.Name, Category: f.Category, Sensitive: f.Sensitive})
		if f.Sensitive {
			a.Sensitive = append(a.Sensitive, f.Name)
		}
	}
	if uc.Kind == KindDecision {
		a.HumanReview = "subjects may refuse automated processing or appeal any decision; reviewers (reviewer role, independent of the owner) decide within the review deadline"
	} else {
		a.HumanReview = "not a decision: subjects control labels and the personalisation dial"
	}
	a.Fairness = "selection rates and impact ratios per protected group (portrait fairness), recommendation diversity per subject"
	body := a
	body.Created, body.Expires, body.By = time.Time{}, time.Time{}, ""
	a.Config = digest(body)
	return a
}

func signedBytes(a Assessment) ([]byte, error) {
	a.Signature, a.LogIndex = "", 0
	return json.Marshal(a)
}

// Assess creates, signs and records the impact assessment of a high-tier
// or decision use-case from the loaded configuration: an audit record of
// kind "assessment" holds its digest, and a JSON file in the assessments
// directory holds it whole (FA-1, AD-5). Only an admin may.
func (s *Service) Assess(ctx context.Context, caller policy.Caller, usecase string, ans Answers) (Assessment, error) {
	if caller.Role != policy.Admin && caller.Role != policy.System {
		return Assessment{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "FA-1", Message: fmt.Sprintf("role %q may not put an impact assessment on record; use an admin key", caller.Role)}
	}
	if err := ans.Check(); err != nil {
		return Assessment{}, err
	}
	cat := s.point.Catalog()
	uc := cat.UseCase(usecase)
	if uc == nil {
		return Assessment{}, portrait.Errorf(portrait.ENOTFOUND, "use-case %q is not declared; nothing to assess", usecase)
	}
	a := describe(cat, uc)
	a.Answers = ans
	a.Created = s.now()
	a.Expires = a.Created.Add(assessmentValidity)
	a.By = actor(caller)
	key := s.keys.ReceiptKey()
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	a.KeyID = hex.EncodeToString(sum[:8])
	b, err := signedBytes(a)
	if err != nil {
		return Assessment{}, fmt.Errorf("encode assessment of %s: %w", usecase, err)
	}
	a.Signature = hex.EncodeToString(ed25519.Sign(key, b))
	rec := audit.Record{Kind: "assessment", Time: a.Created, Actor: a.By, Action: "record", Digest: digest(a),
		Detail: map[string]any{"usecase": uc.ID, "tier": uc.Tier, "config_digest": a.Config, "expires": a.Expires.Format(time.RFC3339),
			"signed_by": ans.SignedBy, "answers_sha256": digest(ans)}, Codes: []string{"FA-1"}}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		a.LogIndex, err = s.log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return Assessment{}, failClosed("record assessment", err)
	}
	if dir := s.opts.Assessments; dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return Assessment{}, fmt.Errorf("assessments directory %s: %w", dir, err)
		}
		out, _ := json.MarshalIndent(a, "", "  ")
		path := filepath.Join(dir, uc.ID+".json")
		if err := os.WriteFile(path, append(out, '\n'), 0o640); err != nil {
			return Assessment{}, fmt.Errorf("write assessment %s: %w", path, err)
		}
	}
	s.keepAssessment(a)
	return a, nil
}

func (s *Service) keepAssessment(a Assessment) {
	s.amu.Lock()
	defer s.amu.Unlock()
	if old, ok := s.assessments[a.UseCase]; !ok || a.Created.After(old.Created) {
		s.assessments[a.UseCase] = a
		s.answered[a.UseCase] = a.Answers.Check()
	}
}

// VerifyAssessment checks an assessment's signature.
func VerifyAssessment(a Assessment, pub ed25519.PublicKey) error {
	sig, err := hex.DecodeString(a.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("assessment of %s: the signature is missing or malformed", a.UseCase)
	}
	b, err := signedBytes(a)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, b, sig) {
		return fmt.Errorf("assessment of %s: the signature does not verify with this installation's key", a.UseCase)
	}
	return nil
}

// LoadAssessments reads every *.json file of dir as an assessment and
// verifies its signature; a missing directory holds none.
func LoadAssessments(dir string, pub ed25519.PublicKey) ([]Assessment, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list assessments in %s: %w", dir, err)
	}
	var out []Assessment
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read assessment %s: %w", p, err)
		}
		var a Assessment
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("assessment %s is not valid JSON: %w", p, err)
		}
		if err := VerifyAssessment(a, pub); err != nil {
			return nil, fmt.Errorf("assessment %s: %w; remove it or run portrait assess again", p, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// assessed refuses a high-tier use-case without a current assessment of
// its current configuration.
func (s *Service) assessed(cat *catalog.Catalog, uc *catalog.UseCase) error {
	s.amu.RLock()
	a, ok := s.assessments[uc.ID]
	answered := s.answered[uc.ID]
	s.amu.RUnlock()
	switch {
	case !ok:
		return denied("AD-5", "use-case %q is high-risk and has no impact assessment on record; run portrait assess --usecase %s", uc.ID, uc.ID)
	case !s.now().Before(a.Expires):
		return denied("AD-5", "the impact assessment of use-case %q expired on %s; assessments are renewed yearly, run portrait assess again", uc.ID, a.Expires.Format("2006-01-02"))
	case a.Config != s.configs.of(cat, uc):
		return denied("AD-5", "the configuration of use-case %q changed after its impact assessment of %s; assess it again", uc.ID, a.Created.Format("2006-01-02"))
	}
	if err := answered; err != nil {
		return denied("FA-1", "the impact assessment of use-case %q does not answer PIPL Art. 56 (%s); run portrait assess --usecase %s --answers FILE", uc.ID, portrait.ErrorMessage(err), uc.ID)
	}
	return nil
}

// assessedPurpose requires, for identified audience output of a purpose,
// an audience use-case serving the purpose with a current signed impact
// assessment of its current configuration (CM-6).
func (s *Service) assessedPurpose(cat *catalog.Catalog, purpose string) error {
	var tried []string
	for i := range cat.UseCases {
		uc := &cat.UseCases[i]
		if uc.Kind != catalog.UseAudience || !slices.Contains(uc.Purposes, purpose) {
			continue
		}
		if s.assessed(cat, uc) == nil {
			return nil
		}
		tried = append(tried, uc.ID)
	}
	if len(tried) == 0 {
		return denied("CM-6", "identified audience output for purpose %q needs an audience use-case for it with a signed impact assessment on record; declare one and run portrait assess --usecase ID", purpose)
	}
	return denied("CM-6", "identified audience output for purpose %q needs a current signed impact assessment on record; run portrait assess --usecase %s", purpose, tried[0])
}

// Assessment returns the assessment on record for a use-case.
func (s *Service) Assessment(usecase string) (Assessment, bool) {
	s.amu.RLock()
	defer s.amu.RUnlock()
	a, ok := s.assessments[usecase]
	return a, ok
}
