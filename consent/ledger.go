package consent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
)

// Defaults for Options.
const (
	DefaultMinorAge = 14
	// DefaultRefusalCooldown follows GB/T 35273-2020 §5.3(c): after a
	// subject refuses, do not ask again within 48 hours (CN-6).
	DefaultRefusalCooldown = 48 * time.Hour
)

// Options configure a Ledger. Zero values take the defaults.
type Options struct {
	// MinorAge is the age below which a subject is a minor (SM-3). The
	// ledger does not infer age itself; ingest sets Flags.Minor with it.
	MinorAge int
	// RefusalCooldown is how long ShouldAsk stays false after a refusal
	// or withdrawal (CN-6).
	RefusalCooldown time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Ledger records consent and the other governance choices of subjects. It
// is safe for concurrent use; any number of Ledgers (one per node) may
// share one store.
type Ledger struct {
	store Store
	point *policy.Point
	log   *audit.Log
	keys  *keys.Keyring
	opts  Options

	syncMu sync.Mutex // serialises cache refreshes
	mu     sync.RWMutex
	gen    int64
	filled bool
	states map[portrait.Pseudonym]*policy.State
}

// maxStates bounds the state cache; when full it is simply emptied, since
// refilling costs one batched read.
const maxStates = 100_000

// New returns a Ledger over store. The point's catalog is read at each
// call, so a reloaded catalog takes effect at once.
func New(d Deps, opts Options) (*Ledger, error) {
	store, point, log, ks := d.Store, d.Point, d.Log, d.Keys
	if store == nil || point == nil || log == nil || ks == nil {
		return nil, errors.New("consent ledger: store, decision point, audit log and keyring are all required")
	}
	if opts.MinorAge == 0 {
		opts.MinorAge = DefaultMinorAge
	}
	if opts.MinorAge < 0 || opts.MinorAge > 21 {
		return nil, fmt.Errorf("consent ledger: minor age %d is outside 1..21", opts.MinorAge)
	}
	if opts.RefusalCooldown == 0 {
		opts.RefusalCooldown = DefaultRefusalCooldown
	}
	if opts.RefusalCooldown < 0 {
		return nil, fmt.Errorf("consent ledger: negative refusal cooldown %v", opts.RefusalCooldown)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ledger{store: store, point: point, log: log, keys: ks, opts: opts, states: make(map[portrait.Pseudonym]*policy.State)}, nil
}

// MinorAge returns the configured minors age (SM-3).
func (l *Ledger) MinorAge() int { return l.opts.MinorAge }

// now is the ledger clock, truncated to microseconds so that every store
// engine keeps the same instant the receipt states.
func (l *Ledger) now() time.Time { return l.opts.Now().UTC().Truncate(time.Microsecond) }

// Subject names the data subject of a ledger call: by external id (staff
// calls; the ledger creates the subject and its data key if it is not yet
// stored) or by pseudonym (subject tokens; the subject must be stored).
type Subject struct {
	id        string
	pseudonym portrait.Pseudonym
}

// ByID names a subject by its external id.
func ByID(id string) Subject { return Subject{id: id} }

// ByPseudonym names a subject by its keyed pseudonym.
func ByPseudonym(p portrait.Pseudonym) Subject { return Subject{pseudonym: p} }

// Change is one consent decision of one subject about one purpose. There is
// no form with several purposes: bundled consent cannot be recorded (CN-2).
type Change struct {
	Purpose       string
	Status        policy.Status // Granted, Refused or Withdrawn
	NoticeVersion string        // required for a grant; defaults to the current one otherwise
	Channel       string        // where it was given: "web", "app", "api", "gpc", … (default "api")
	UserAgent     string        // evidence: the first 512 bytes are kept, sealed with the subject's key
	IP            string        // evidence, stored truncated to /24 (IPv4) or /48 (IPv6)
	// GuardianToken proves a guardian's consent: issued by the company's
	// verified guardian flow (Ledger.GuardianToken) for this subject and
	// purpose, never a flag the child's own request can set (SM-3).
	GuardianToken string
	// ConsentString is a CMP's consent string of StringType (StringTCF
	// or StringGPP). When set, it decides Status through the purpose's
	// catalog mapping and is kept on the record and receipt as evidence.
	ConsentString string
	StringType    string
}

// MaxUserAgent bounds the user agent kept as consent evidence: longer ones
// are cut at a character boundary at or below it, not refused, so a long
// header cannot make a withdrawal fail (CN-4).
const MaxUserAgent = 512

// Record records one consent change and returns its signed receipt. The
// record and its audit entry are written in one transaction (invariant 3);
// withdrawing is the same single call as granting (CN-4).
func (l *Ledger) Record(ctx context.Context, caller policy.Caller, subj Subject, c Change) (Receipt, error) {
	rs, err := l.apply(ctx, caller, subj, func(cat *catalog.Catalog, st *policy.State) ([]Change, error) {
		if c.ConsentString == "" && c.StringType == "" {
			return []Change{c}, nil
		}
		p := cat.Purpose(c.Purpose)
		if p == nil {
			return []Change{c}, nil // validate names the missing declaration
		}
		status, err := statusFromString(p, c, st.Consents[p.ID].Status)
		if err != nil {
			return nil, err
		}
		c.Status = status
		return []Change{c}, nil
	})
	if err != nil {
		return Receipt{}, err
	}
	return rs[0], nil
}

// guardianTTL is how long a guardian token from the verified flow lasts.
const guardianTTL = 24 * time.Hour

// GuardianToken is the company's verified guardian flow closing: staff (or
// the system) that has verified a guardian for the subject gets a token,
// bound to the subject and purpose and valid for a day, that the consent
// request then carries. The issue is recorded in the audit log with who
// vouched, before the token is returned (invariant 3). A subject cannot
// issue one (SM-3).
func (l *Ledger) GuardianToken(ctx context.Context, caller policy.Caller, subj Subject, purpose string) (string, time.Time, error) {
	switch caller.Role {
	case policy.Operator, policy.Admin, policy.System:
	default:
		return "", time.Time{}, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "SM-3",
			Message: fmt.Sprintf("role %q may not vouch for a guardian; guardian tokens come from the company's verified guardian flow", caller.Role)}
	}
	if pur := l.point.Catalog().Purpose(purpose); pur == nil || pur.Basis != catalog.BasisConsent {
		return "", time.Time{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "CN-1",
			Message: fmt.Sprintf("purpose %q is not a declared consent purpose", purpose)}
	}
	p := subj.pseudonym
	if subj.id != "" {
		p = l.keys.Pseudonym(subj.id)
	}
	if p == "" {
		return "", time.Time{}, portrait.Errorf(portrait.EINVALID, "no subject given: name it by id or pseudonym")
	}
	tok, exp := l.keys.IssueGuardianToken(p, purpose, guardianTTL)
	err := l.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		_, err := l.log.Append(ctx, tx, audit.Record{Kind: "guardian", Time: l.opts.Now().UTC(), Actor: actor(caller), Action: "verify",
			Pseudonym: p, Detail: map[string]any{"purpose": purpose, "expires": exp.UTC().Format(time.RFC3339)}})
		return err
	})
	if err != nil {
		return "", time.Time{}, failClosed("record guardian verification", err)
	}
	return tok, exp, nil
}

// GPC records a Global Privacy Control signal (Sec-GPC: 1) as an opt-out
// of every purpose that sells, shares or advertises (catalog
// Purpose.OptOut): a current grant becomes a withdrawal, no record at all
// becomes a refusal, and purposes already refused or withdrawn are left
// alone, so repeating the signal records nothing new (CN-12).
func (l *Ledger) GPC(ctx context.Context, caller policy.Caller, subj Subject, ua, ip string) ([]Receipt, error) {
	return l.apply(ctx, caller, subj, func(cat *catalog.Catalog, st *policy.State) ([]Change, error) {
		var out []Change
		for i := range cat.Purposes {
			p := &cat.Purposes[i]
			if !p.OptOut() {
				continue
			}
			status := policy.Refused
			switch st.Consents[p.ID].Status {
			case policy.Refused, policy.Withdrawn:
				continue
			case policy.Granted:
				status = policy.Withdrawn
			}
			out = append(out, Change{Purpose: p.ID, Status: status, Channel: "gpc", UserAgent: ua, IP: ip})
		}
		return out, nil
	})
}

func actor(c policy.Caller) string {
	if c.ID == "" && c.Role == policy.Subject {
		return "subject:" + string(c.Pseudonym)
	}
	return string(c.Role) + ":" + c.ID
}

// authorize checks that caller may change the choices of pseudonym: the
// subject themself, or staff who handle subject requests.
func authorize(caller policy.Caller, pseudonym portrait.Pseudonym) error {
	switch caller.Role {
	case policy.Subject:
		if caller.Pseudonym != pseudonym {
			return &portrait.Error{Code: portrait.EFORBIDDEN, Message: "a subject token may change only its own subject's choices"}
		}
	case policy.Operator, policy.Admin, policy.System:
	default:
		return &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "CM-5",
			Message: fmt.Sprintf("role %q may not change a subject's consent or choices; use an operator key", caller.Role)}
	}
	return nil
}

// resolve returns the subject's pseudonym and, when it must be created,
// the new subject record.
func (l *Ledger) resolve(ctx context.Context, subj Subject) (portrait.Pseudonym, *portrait.SubjectKey, error) {
	p := subj.pseudonym
	if subj.id != "" {
		p = l.keys.Pseudonym(subj.id)
	}
	if p == "" {
		return "", nil, portrait.Errorf(portrait.EINVALID, "no subject given: name it by id or pseudonym")
	}
	got, err := l.store.Subjects(ctx, []portrait.Pseudonym{p})
	if err != nil {
		return "", nil, fmt.Errorf("look up subject %s: %w", p, err)
	}
	if _, ok := got[p]; ok {
		return p, nil, nil
	}
	if subj.id == "" {
		return "", nil, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored; record its consent by subject id, or send an event first", p)
	}
	s, _, err := l.keys.NewSubject(subj.id)
	if err != nil {
		return "", nil, fmt.Errorf("new subject %s: %w", p, err)
	}
	s.Created = l.now()
	return p, &s, nil
}

// apply validates the changes plan returns for the subject's current state
// and records them, with their audit entries, in one transaction.
func (l *Ledger) apply(ctx context.Context, caller policy.Caller, subj Subject, plan func(*catalog.Catalog, *policy.State) ([]Change, error)) ([]Receipt, error) {
	p, created, err := l.resolve(ctx, subj)
	if err != nil {
		return nil, err
	}
	if err := authorize(caller, p); err != nil {
		return nil, err
	}
	st, err := l.State(ctx, p)
	if err != nil {
		return nil, err
	}
	cat := l.point.Catalog()
	changes, err := plan(cat, st)
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	at := l.now()
	recs := make([]portrait.ConsentRecord, len(changes))
	receipts := make([]Receipt, len(changes))
	logRecs := make([]audit.Record, len(changes))
	var dropLabels []string
	for i, c := range changes {
		pur, rec, err := l.validate(cat, st, p, c, at)
		if err != nil {
			return nil, err
		}
		digest, err := recordDigest(rec)
		if err != nil {
			return nil, err
		}
		recs[i] = rec
		receipts[i] = l.receipt(cat, pur, rec, digest)
		logRecs[i] = audit.Record{Kind: "consent", Time: at, Actor: actor(caller), Pseudonym: p,
			Purpose: rec.Purpose, Action: rec.Status.String(), Digest: digest,
			Detail: map[string]any{"notice_version": rec.NoticeVersion, "channel": rec.Channel}}
		if rec.Status != policy.Granted {
			dropLabels = append(dropLabels, onlyFor(cat, st, rec.Purpose)...)
		}
	}
	slices.Sort(dropLabels)
	dropLabels = slices.Compact(dropLabels)
	if len(dropLabels) > 0 {
		logRecs[len(logRecs)-1].Detail["labels_deleted"] = dropLabels
	}
	// The user agent is evidence about a person: it is stored sealed with
	// the subject's key, so erasure makes it unreadable, backups included.
	cipher, err := l.subjectCipher(ctx, p, created)
	if err != nil {
		return nil, err
	}
	stored := make([]portrait.ConsentRecord, len(recs))
	for i, r := range recs {
		if r.UserAgent != "" {
			r.SealedUA = cipher.Seal([]byte(r.UserAgent), keys.ConsentAD(p, r.Purpose))
			r.UserAgent = ""
		}
		stored[i] = r
	}
	err = l.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		if created != nil {
			if err := tx.EnsureSubjects(ctx, []portrait.SubjectKey{*created}); err != nil {
				return fmt.Errorf("create subject %s: %w", p, err)
			}
		}
		for _, r := range stored {
			if err := tx.AppendConsent(ctx, r); err != nil {
				return fmt.Errorf("append consent of %s to %s: %w", p, r.Purpose, err)
			}
		}
		// CN-4: labels used only for purposes that now lack consent go.
		if len(dropLabels) > 0 {
			if err := tx.DeleteLabels(ctx, p, dropLabels); err != nil {
				return fmt.Errorf("delete labels of withdrawn purpose: %w", err)
			}
		}
		first, err := l.log.Append(ctx, tx, logRecs...)
		if err != nil {
			return err
		}
		for i := range receipts {
			receipts[i].LogIndex = first + int64(i)
		}
		return nil
	})
	if err != nil {
		return nil, failClosed("record consent", err)
	}
	for i := range receipts {
		if err := receipts[i].sign(l.keys.ReceiptKey()); err != nil {
			return nil, err
		}
	}
	return receipts, nil
}

// failClosed keeps application errors as they are and marks anything else
// as the store or log being unavailable: nothing was changed (invariant 3).
func failClosed(op string, err error) error {
	var pe *portrait.Error
	if errors.As(err, &pe) {
		return err
	}
	return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: op + ": the store or audit log is unavailable; nothing was changed", Err: err}
}

// validate turns a change into a ledger record, refusing what the law or
// the catalog does not allow.
func (l *Ledger) validate(cat *catalog.Catalog, st *policy.State, p portrait.Pseudonym, c Change, at time.Time) (*catalog.Purpose, portrait.ConsentRecord, error) {
	var rec portrait.ConsentRecord
	pur := cat.Purpose(c.Purpose)
	if pur == nil {
		return nil, rec, &portrait.Error{Code: portrait.EINVALID, Requirement: "CN-1",
			Message: fmt.Sprintf("purpose %q is not declared in the catalog; declare it under purposes: with a legal basis and a notice", c.Purpose)}
	}
	switch c.Status {
	case policy.Granted, policy.Refused, policy.Withdrawn:
	default:
		return nil, rec, portrait.Errorf(portrait.EINVALID, "consent status %s: want granted, refused or withdrawn", c.Status)
	}
	nv := c.NoticeVersion
	guardian := false
	if c.Status == policy.Granted {
		if pur.Basis != catalog.BasisConsent {
			return nil, rec, &portrait.Error{Code: portrait.EINVALID, Requirement: "CN-1",
				Message: fmt.Sprintf("purpose %q is processed under basis %q, not consent; there is nothing to grant", pur.ID, pur.Basis)}
		}
		if nv != pur.NoticeVersion {
			return nil, rec, &portrait.Error{Code: portrait.EINVALID, Requirement: "CN-3",
				Message: fmt.Sprintf("consent to purpose %q must be for the current notice version %q, not %q; show the current notice and ask again", pur.ID, pur.NoticeVersion, nv)}
		}
		if c.GuardianToken != "" {
			if err := l.keys.CheckGuardianToken(c.GuardianToken, p, pur.ID, at); err != nil {
				return nil, rec, &portrait.Error{Code: portrait.EDENIED, Requirement: "SM-3", Message: err.Error()}
			}
			guardian = true
		}
		if st.Minor && !guardian {
			return nil, rec, &portrait.Error{Code: portrait.EDENIED, Requirement: "SM-3",
				Message: fmt.Sprintf("the subject is under %d: consent to purpose %q must be given by a guardian, with a guardian_token from the verified guardian flow", l.opts.MinorAge, pur.ID)}
		}
	} else if nv == "" {
		// Withdrawing or refusing takes no more than granting (CN-4):
		// no need to know which notice is current.
		nv = pur.NoticeVersion
	}
	channel := c.Channel
	if channel == "" {
		channel = "api"
	}
	if len(channel) > 64 {
		return nil, rec, portrait.Errorf(portrait.EINVALID, "consent channel is %d bytes; keep it to a short name such as web, app or api", len(channel))
	}
	ip, err := truncateIP(c.IP)
	if err != nil {
		return nil, rec, err
	}
	// The same text rule as every stored string (a NUL is refused with 400
	// on both engines), though the user agent is stored sealed.
	if err := portrait.CheckText("user_agent", c.UserAgent); err != nil {
		return nil, rec, err
	}
	ua := c.UserAgent
	if len(ua) > MaxUserAgent {
		n := MaxUserAgent
		for n > 0 && !utf8.RuneStart(ua[n]) {
			n--
		}
		ua = ua[:n]
	}
	rec = portrait.ConsentRecord{
		Pseudonym:     p,
		Purpose:       pur.ID,
		Status:        c.Status,
		NoticeVersion: nv,
		Channel:       channel,
		UserAgent:     ua,
		IP:            ip,
		Guardian:      guardian,
		Categories:    categories(cat, pur.ID),
		ConsentString: c.ConsentString,
		StringType:    c.StringType,
		At:            at,
	}
	return pur, rec, nil
}

// truncateIP keeps the network part only: /24 of IPv4, /48 of IPv6, enough
// as evidence of where consent came from without identifying a host.
func truncateIP(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return "", portrait.Errorf(portrait.EINVALID, "consent evidence IP %q is not an IP address (want 203.0.113.7, 2001:db8::1 or with :port)", s)
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	bits := 48
	if a.Is4() {
		bits = 24
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return "", portrait.Errorf(portrait.EINVALID, "consent evidence IP %q: %v", s, err)
	}
	return pfx.String(), nil
}

// categories lists the data categories of the fields declared for purpose.
func categories(cat *catalog.Catalog, purpose string) []string {
	var out []string
	for i := range cat.Fields {
		if slices.Contains(cat.Fields[i].Purposes, purpose) && cat.Fields[i].Category != "" {
			out = append(out, cat.Fields[i].Category)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// onlyFor lists the labels that, once purpose has no consent, serve no
// purpose with a lawful basis any more: every purpose of the label is
// either this one or another consent purpose the subject has not granted.
func onlyFor(cat *catalog.Catalog, st *policy.State, purpose string) []string {
	var out []string
	for i := range cat.Labels {
		lb := &cat.Labels[i]
		if !slices.Contains(lb.Purposes, purpose) {
			continue
		}
		dead := true
		for _, q := range lb.Purposes {
			if q == purpose {
				continue
			}
			qp := cat.Purpose(q)
			if qp == nil || qp.Basis != catalog.BasisConsent || st.Consents[q].Status == policy.Granted {
				dead = false
				break
			}
		}
		if dead {
			out = append(out, lb.ID)
		}
	}
	return out
}

// recordDigest is the hex SHA-256 of the record's JSON, subject and status
// included; the audit log and the receipt carry it, never the record.
func recordDigest(r portrait.ConsentRecord) (string, error) {
	b, err := json.Marshal(struct {
		Pseudonym portrait.Pseudonym `json:"subject"`
		Status    string             `json:"status"`
		portrait.ConsentRecord
	}{r.Pseudonym, r.Status.String(), r})
	if err != nil {
		return "", fmt.Errorf("digest consent record: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ShouldAsk reports whether a consent prompt for purpose should be shown to
// the subject: not for an undeclared purpose or one not based on consent,
// not while a grant for the current notice stands, and not within the
// refusal cooldown after a refusal or withdrawal (CN-6).
func (l *Ledger) ShouldAsk(st *policy.State, purpose string) bool {
	p := l.point.Catalog().Purpose(purpose)
	if p == nil || p.Basis != catalog.BasisConsent || st == nil || st.Erased {
		return false
	}
	c := st.Consents[purpose]
	switch c.Status {
	case policy.Granted:
		return c.NoticeVersion != p.NoticeVersion || (st.Minor && !c.Guardian)
	case policy.Refused, policy.Withdrawn:
		return !l.opts.Now().Before(c.At.Add(l.opts.RefusalCooldown))
	}
	return true
}

// History returns the grant's subject's consent records, oldest first,
// with their sealed user agents opened.
func (l *Ledger) History(ctx context.Context, g policy.Grant) ([]portrait.ConsentRecord, error) {
	h, err := l.store.ConsentHistory(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("consent history of %s: %w", g.Pseudonym(), err)
	}
	var cipher *keys.Cipher
	for i := range h {
		r := &h[i]
		if len(r.SealedUA) == 0 {
			continue // recorded without a user agent, or before they were sealed
		}
		if cipher == nil {
			if cipher, err = l.subjectCipher(ctx, g.Pseudonym(), nil); err != nil {
				return nil, fmt.Errorf("consent history of %s: %w", g.Pseudonym(), err)
			}
		}
		ua, err := cipher.Open(r.SealedUA, keys.ConsentAD(g.Pseudonym(), r.Purpose))
		if err != nil {
			return nil, fmt.Errorf("consent history of %s: record %d: %w", g.Pseudonym(), r.Seq, err)
		}
		r.UserAgent, r.SealedUA = string(ua), nil
	}
	return h, nil
}

// subjectCipher returns the data key of subject p: created's if the
// subject is being created, else the stored one's.
func (l *Ledger) subjectCipher(ctx context.Context, p portrait.Pseudonym, created *portrait.SubjectKey) (*keys.Cipher, error) {
	if created != nil {
		return l.keys.Open(*created)
	}
	got, err := l.store.Subjects(ctx, []portrait.Pseudonym{p})
	if err != nil {
		return nil, failClosed("read subject key", err)
	}
	s, ok := got[p]
	if !ok {
		return nil, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored", p)
	}
	c, err := l.keys.Open(s)
	if err != nil {
		return nil, fmt.Errorf("subject key of %s: %w", p, err)
	}
	return c, nil
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
