package rights

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
)

// Schema is the version of the export document, documented in
// docs/EXPORT.md and docs/export.schema.json; fields are only ever added
// within a version.
const Schema = "portrait.export/v1"

// Export is everything Portrait holds about one subject, readable by the
// subject and by another handler (SR-1, SR-2).
type Export struct {
	Schema     string               `json:"schema"`
	Generated  time.Time            `json:"generated"`
	Handler    Handler              `json:"handler"`
	Pseudonym  portrait.Pseudonym   `json:"subject"`
	SubjectID  string               `json:"subject_id"` // the id the company knows the subject by
	Flags      FlagsView            `json:"flags"`
	Profile    []ProfileEntry       `json:"profile"`
	Events     []EventEntry         `json:"events"`
	Consents   []ConsentEntry       `json:"consents"`
	History    []HistoryEntry       `json:"consent_history"`
	Labels     []LabelEntry         `json:"labels"`
	Decisions  []DeterminationEntry `json:"decisions"`
	Recipients []RecipientEntry     `json:"recipients"`
	Cases      []portrait.Case      `json:"cases"`
	// Delivered lists the destinations Portrait itself sent the subject's
	// data to (audience membership), from the audit log; rights events
	// follow to exactly these (PIPL Art. 23, GDPR Art. 19).
	Delivered []DeliveredEntry `json:"delivered_to"`
}

// DeliveredEntry is a destination that received the subject's data: in
// which audience, for which purpose, since when, and the log record that
// shows it.
type DeliveredEntry struct {
	Destination string    `json:"destination"`
	Audience    string    `json:"audience"`
	Purpose     string    `json:"purpose"`
	Since       time.Time `json:"since"`
	LogIndex    int64     `json:"log_index"`
}

// Handler names who holds the data and how to reach them.
type Handler struct {
	Name    catalog.Text `json:"name"`
	Contact string       `json:"contact"`
	Officer string       `json:"officer,omitempty"`
}

// FlagsView is the subject's standing choices.
type FlagsView struct {
	Restricted      bool `json:"restricted"`
	ObjectProfiling bool `json:"object_profiling"`
	ObjectMarketing bool `json:"object_marketing"`
	Personalization int  `json:"personalization"`
}

// ProfileEntry is one profile field with its provenance (CM-2).
type ProfileEntry struct {
	Field    string    `json:"field"`
	Category string    `json:"category"`
	Value    any       `json:"value"`
	Source   string    `json:"source"`
	Updated  time.Time `json:"updated"`
	Expires  time.Time `json:"expires,omitzero"`
}

// EventEntry is one stored event, decrypted. Fields is the JSON object
// exactly as it was sealed at ingestion: passing it through instead of
// decoding and re-encoding it keeps access to 10,000 events fast.
type EventEntry struct {
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Fields  json.RawMessage `json:"fields"`
	Expires time.Time       `json:"expires,omitzero"`
}

// ConsentEntry is the current consent to one purpose.
type ConsentEntry struct {
	Purpose       string       `json:"purpose"`
	Basis         string       `json:"basis"`
	Status        string       `json:"status"`
	NoticeVersion string       `json:"notice_version,omitempty"`
	Current       string       `json:"current_notice_version"`
	Effective     bool         `json:"effective"`
	Required      bool         `json:"required,omitempty"`
	At            *time.Time   `json:"at,omitempty"`
	Notice        catalog.Text `json:"notice"`
}

// HistoryEntry is one record of the consent ledger.
type HistoryEntry struct {
	portrait.ConsentRecord
	Status string `json:"status"`
}

// LabelEntry is one label of the subject with its provenance and
// plain-language explanation (SR-1, LP-3). A deleted label has no value.
type LabelEntry struct {
	Label       string       `json:"label"`
	Name        catalog.Text `json:"name"`
	Description catalog.Text `json:"description"`
	Kind        string       `json:"kind"`
	Purposes    []string     `json:"purposes"`
	// Status is active, deselected (kept but not used) or deleted.
	Status      string       `json:"status"`
	Value       *label.Value `json:"value,omitempty"`
	Explanation catalog.Text `json:"explanation,omitempty"`
}

// DeterminationEntry is one automated decision about the subject with its
// opened explanation and every human review of it (SR-1, AD-3, AD-4).
// While a human decides a decision the subject refused to have made
// automatically, the automated outcome, score and detail are held back,
// as the decisions API does (AD-2).
type DeterminationEntry struct {
	ID           string   `json:"id"`
	UseCase      string   `json:"usecase"`
	Model        string   `json:"model"`
	ModelVersion int      `json:"model_version"`
	Status       string   `json:"status"` // automated, pending_review, upheld, overturned
	Outcome      *bool    `json:"outcome,omitempty"`
	Score        *float64 `json:"score,omitempty"`
	// Final is the outcome that stands: the automated one, or its reverse
	// once a reviewer overturned it; absent while a human decides.
	Final          *bool                 `json:"final_outcome,omitempty"`
	Features       map[string]float64    `json:"features,omitempty"`
	Contributions  map[string]float64    `json:"contributions,omitempty"`
	Counterfactual *apply.Counterfactual `json:"counterfactual,omitempty"`
	Explanation    catalog.Text          `json:"explanation,omitempty"`
	Notice         catalog.Text          `json:"notice,omitempty"`
	Reviews        []ReviewEntry         `json:"reviews"`
	Created        time.Time             `json:"created"`
	LogIndex       int64                 `json:"log_index"`
}

// ReviewEntry is one human review of a decision, with the subject's own
// statement opened.
type ReviewEntry struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"` // appeal, refusal
	Status    string    `json:"status"`
	Statement string    `json:"statement,omitempty"`
	Outcome   string    `json:"outcome,omitempty"` // upheld, overturned
	Reason    string    `json:"reason,omitempty"`
	Created   time.Time `json:"created"`
	Deadline  time.Time `json:"deadline"`
	Closed    time.Time `json:"closed,omitzero"`
}

// decisions lists the subject's decisions, opened.
func (s *Service) decisions(ctx context.Context, g policy.Grant, c *keys.Cipher) ([]DeterminationEntry, error) {
	p := g.Pseudonym()
	decs, err := s.store.Determinations(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("read decisions of %s: %w", p, err)
	}
	out := make([]DeterminationEntry, 0, len(decs))
	if len(decs) == 0 {
		return out, nil
	}
	all, err := s.store.Reviews(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("read reviews: %w", err)
	}
	for _, d := range decs {
		e := DeterminationEntry{ID: d.ID, UseCase: d.UseCase, Model: d.Model, ModelVersion: d.ModelVersion, Status: d.Status,
			Created: d.Created, LogIndex: d.LogIndex, Reviews: []ReviewEntry{}}
		refusedOnly := d.Status == apply.StatusPendingReview
		for _, r := range all {
			if r.DeterminationID != d.ID || r.Pseudonym != p {
				continue
			}
			re := ReviewEntry{ID: r.ID, Kind: r.Kind, Status: r.Status, Outcome: r.Outcome, Reason: r.Reason,
				Created: r.Created, Deadline: r.Deadline, Closed: r.Closed}
			if len(r.Sealed) > 0 {
				b, err := c.Open(r.Sealed, keys.StatementAD(p, r.ID))
				if err != nil {
					return nil, fmt.Errorf("open the statement of review %s: %w", r.ID, err)
				}
				re.Statement = string(b)
			}
			e.Reviews = append(e.Reviews, re)
			refusedOnly = refusedOnly && r.Kind == review.KindRefusal
		}
		if !refusedOnly {
			det, err := apply.OpenDecision(c, d)
			if err != nil {
				return nil, err
			}
			outcome, score := d.Outcome, d.Score
			e.Outcome, e.Score = &outcome, &score
			e.Features, e.Contributions, e.Counterfactual = det.Features, det.Contributions, det.Counterfactual
			e.Explanation, e.Notice = det.Explanation, det.Notice
		}
		switch d.Status {
		case apply.StatusAutomated, apply.StatusUpheld, apply.StatusModified:
			f := d.Outcome
			e.Final = &f
		case apply.StatusOverturned:
			f := !d.Outcome
			e.Final = &f
		}
		out = append(out, e)
	}
	return out, nil
}

// RecipientEntry is another handler data goes to, and for which purpose.
type RecipientEntry struct {
	Recipient string `json:"recipient"`
	Purpose   string `json:"purpose"`
}

// Label status values.
const (
	LabelActive     = "active"
	LabelDeselected = "deselected"
	LabelDeleted    = "deleted"
)

// SealLabel seals a label value the way the rights service reads it.
func SealLabel(c *keys.Cipher, pseudonym portrait.Pseudonym, v label.Value) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode label %s: %w", v.Label, err)
	}
	return c.Seal(b, keys.LabelAD(pseudonym, v.Label)), nil
}

func openLabel(c *keys.Cipher, pseudonym portrait.Pseudonym, lv portrait.LabelValue) (label.Value, error) {
	b, err := c.Open(lv.Sealed, keys.LabelAD(pseudonym, lv.Label))
	if err != nil {
		return label.Value{}, fmt.Errorf("open label %s of %s: %w", lv.Label, pseudonym, err)
	}
	var v label.Value
	if err := json.Unmarshal(b, &v); err != nil {
		return label.Value{}, fmt.Errorf("decode label %s: %w", lv.Label, err)
	}
	return v, nil
}

func explain(v label.Value, l *catalog.Label) catalog.Text {
	return catalog.Text{"zh-CN": v.Explain("zh-CN", l), "en": v.Explain("en", l)}
}

// labels lists the subject's labels: stored values and suppressed ones.
func (s *Service) labels(ctx context.Context, g policy.Grant, c *keys.Cipher, st *policy.State) ([]LabelEntry, error) {
	cat := s.point.Catalog()
	stored, err := s.store.Labels(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("read labels of %s: %w", g.Pseudonym(), err)
	}
	out := []LabelEntry{}
	seen := map[string]bool{}
	entry := func(id string) LabelEntry {
		e := LabelEntry{Label: id, Status: LabelActive, Purposes: []string{}}
		if l := cat.Label(id); l != nil {
			e.Name, e.Description, e.Kind, e.Purposes = l.Name, l.Description, l.Kind, l.Purposes
		}
		if deleted, ok := st.Suppressed[id]; ok {
			e.Status = LabelDeselected
			if deleted {
				e.Status = LabelDeleted
			}
		}
		return e
	}
	for _, lv := range stored {
		v, err := openLabel(c, g.Pseudonym(), lv)
		if err != nil {
			return nil, err
		}
		e := entry(lv.Label)
		e.Value = &v
		e.Explanation = explain(v, cat.Label(lv.Label))
		out = append(out, e)
		seen[lv.Label] = true
	}
	for id := range st.Suppressed {
		if !seen[id] {
			out = append(out, entry(id))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}

// Access returns everything held about the subject (SR-1) and records the
// request as a fulfilled case.
func (s *Service) Access(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) (*Export, error) {
	return s.access(ctx, caller, pseudonym, TypeAccess)
}

func (s *Service) access(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, typ string) (*Export, error) {
	if err := authorize(caller, pseudonym); err != nil {
		return nil, err
	}
	c := s.newCase(pseudonym, typ)
	doc, err := s.document(ctx, caller, pseudonym)
	if err != nil {
		return nil, s.finish(ctx, c, "", err)
	}
	// The case is recorded, with the audit entry of the read, before the
	// document leaves: an access that cannot be logged does not happen.
	raw, err := doc.AppendJSON(nil)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	c = fulfil(c, s.now(), fmt.Sprintf("%d events, %d profile fields, %d labels", len(doc.Events), len(doc.Profile), len(doc.Labels)), 0)
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		idx, err := s.log.Append(ctx, tx, audit.Record{Kind: "access", Time: c.Closed, Actor: actor(caller), Pseudonym: pseudonym,
			Action: typ, Digest: hex.EncodeToString(sum[:]), Detail: map[string]any{"case": c.ID}})
		if err != nil {
			return err
		}
		c.LogIndex = idx
		return tx.PutCase(ctx, c)
	})
	if err != nil {
		return nil, failClosed(typ, err)
	}
	doc.Cases = append(doc.Cases, c)
	return doc, nil
}

// AppendJSON appends the document as json.Marshal would encode it, but
// writes the events itself: encoding/json re-scans every marshaller's
// output, which for 10,000 events' raw fields and times was a fifth of
// the time an access took.
func (d *Export) AppendJSON(b []byte) ([]byte, error) {
	head, err := json.Marshal(struct {
		Schema    string             `json:"schema"`
		Generated time.Time          `json:"generated"`
		Handler   Handler            `json:"handler"`
		Pseudonym portrait.Pseudonym `json:"subject"`
		SubjectID string             `json:"subject_id"`
		Flags     FlagsView          `json:"flags"`
		Profile   []ProfileEntry     `json:"profile"`
	}{d.Schema, d.Generated, d.Handler, d.Pseudonym, d.SubjectID, d.Flags, d.Profile})
	if err != nil {
		return b, fmt.Errorf("encode export: %w", err)
	}
	tail, err := json.Marshal(struct {
		Consents   []ConsentEntry       `json:"consents"`
		History    []HistoryEntry       `json:"consent_history"`
		Labels     []LabelEntry         `json:"labels"`
		Decisions  []DeterminationEntry `json:"decisions"`
		Recipients []RecipientEntry     `json:"recipients"`
		Cases      []portrait.Case      `json:"cases"`
		Delivered  []DeliveredEntry     `json:"delivered_to"`
	}{d.Consents, d.History, d.Labels, d.Decisions, d.Recipients, d.Cases, d.Delivered})
	if err != nil {
		return b, fmt.Errorf("encode export: %w", err)
	}
	b = append(b, head[:len(head)-1]...)
	if d.Events == nil {
		b = append(b, `,"events":null`...)
	} else {
		b = append(b, `,"events":[`...)
		types := map[string][]byte{}
		for i, e := range d.Events {
			if i > 0 {
				b = append(b, ',')
			}
			typ, ok := types[e.Type]
			if !ok {
				typ, _ = json.Marshal(e.Type) // a string always encodes
				types[e.Type] = typ
			}
			b = append(b, `{"type":`...)
			b = append(b, typ...)
			if b, err = appendTime(append(b, `,"time":`...), e.Time); err != nil {
				return b, err
			}
			b = append(b, `,"fields":`...)
			if e.Fields == nil {
				b = append(b, "null"...)
			} else {
				b = append(b, e.Fields...)
			}
			if !e.Expires.IsZero() {
				if b, err = appendTime(append(b, `,"expires":`...), e.Expires); err != nil {
					return b, err
				}
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(append(b, ','), tail[1:]...), nil
}

// appendTime appends t as time.Time.MarshalJSON does.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		return b, fmt.Errorf("encode export: time %v is outside years 0 to 9999", t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// document builds the export of pseudonym without recording anything.
func (s *Service) document(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) (*Export, error) {
	sub, err := s.subject(ctx, pseudonym)
	if err != nil {
		return nil, err
	}
	g, st, err := s.grant(ctx, caller, pseudonym, policy.Access, nil)
	if err != nil {
		return nil, err
	}
	ci, err := s.keys.Open(sub)
	if err != nil {
		return nil, err
	}
	id, err := s.keys.SubjectID(sub)
	if err != nil {
		return nil, err
	}
	cat := s.point.Catalog()
	doc := &Export{
		Schema: Schema, Generated: s.now(), Pseudonym: pseudonym, SubjectID: id,
		Handler: Handler{Name: cat.Handler.Name, Contact: cat.Handler.Contact, Officer: cat.Handler.Officer},
		Flags: FlagsView{Restricted: st.Restricted, ObjectProfiling: st.ObjectProfiling, ObjectMarketing: st.ObjectMarketing,
			Personalization: st.Personalization},
		Profile: []ProfileEntry{}, Events: []EventEntry{}, History: []HistoryEntry{}, Decisions: []DeterminationEntry{},
		Recipients: []RecipientEntry{}, Delivered: []DeliveredEntry{},
	}
	if s.opts.Delivered != nil {
		if doc.Delivered, err = s.opts.Delivered(ctx, pseudonym); err != nil {
			return nil, fmt.Errorf("read the destinations that received %s's data: %w", pseudonym, err)
		}
	}
	if doc.Profile, err = s.profile(ctx, g, ci); err != nil {
		return nil, err
	}
	evs, err := s.store.Events(ctx, g, time.Time{})
	if err != nil {
		return nil, fmt.Errorf("read events of %s: %w", pseudonym, err)
	}
	doc.Events = make([]EventEntry, 0, len(evs))
	ad := keys.EventAD(pseudonym)
	for _, ev := range evs {
		b, err := ci.Open(ev.Sealed, ad)
		if err != nil {
			return nil, fmt.Errorf("open event %d of %s: %w", ev.ID, pseudonym, err)
		}
		if len(b) == 0 || b[0] != '{' || !json.Valid(b) {
			return nil, fmt.Errorf("decode event %d of %s: its fields are not a JSON object", ev.ID, pseudonym)
		}
		doc.Events = append(doc.Events, EventEntry{Type: ev.Type, Time: ev.Time, Fields: b, Expires: ev.Expires})
	}
	doc.Consents = Consents(cat, st)
	hist, err := s.ledger.History(ctx, g)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		doc.History = append(doc.History, HistoryEntry{ConsentRecord: h, Status: h.Status.String()})
	}
	if doc.Labels, err = s.labels(ctx, g, ci, st); err != nil {
		return nil, err
	}
	if doc.Decisions, err = s.decisions(ctx, g, ci); err != nil {
		return nil, err
	}
	for _, c := range doc.Consents {
		if !c.Effective {
			continue
		}
		for _, r := range cat.Purpose(c.Purpose).Recipients {
			doc.Recipients = append(doc.Recipients, RecipientEntry{Recipient: r, Purpose: c.Purpose})
		}
	}
	if doc.Cases, err = s.Cases(ctx, pseudonym); err != nil {
		return nil, err
	}
	return doc, nil
}

// Consents is the current consent of the subject in st to every declared
// purpose, and whether it gives a lawful basis now.
func Consents(cat *catalog.Catalog, st *policy.State) []ConsentEntry {
	out := make([]ConsentEntry, 0, len(cat.Purposes))
	for _, p := range cat.Purposes {
		e := ConsentEntry{Purpose: p.ID, Basis: string(p.Basis), Status: policy.None.String(), Current: p.NoticeVersion,
			Required: p.Required, Notice: p.Notice}
		if c, ok := st.Consents[p.ID]; ok {
			at := c.At
			e.Status, e.NoticeVersion, e.At = c.Status.String(), c.NoticeVersion, &at
		}
		e.Effective = !st.Restricted && (p.Basis != catalog.BasisConsent || (e.Status == "granted" && e.NoticeVersion == p.NoticeVersion))
		if p.Basis != catalog.BasisConsent && p.OptOut() && (e.Status == "refused" || e.Status == "withdrawn") {
			e.Effective = false
		}
		out = append(out, e)
	}
	return out
}

// Bundle is a signed export: the document exactly as signed, the signing
// key's id and its Ed25519 signature, so another handler can check it
// offline with VerifyExport (SR-2).
type Bundle struct {
	Export    json.RawMessage `json:"export"`
	Key       string          `json:"key"`        // hex SHA-256 prefix of the public key
	PublicKey string          `json:"public_key"` // base64; trust it only if it matches a key you already hold
	Signature string          `json:"signature"`  // base64 Ed25519 over Export
}

// Export returns the subject's export as a signed bundle (SR-2).
func (s *Service) Export(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) (*Bundle, error) {
	doc, err := s.access(ctx, caller, pseudonym, TypeExport)
	if err != nil {
		return nil, err
	}
	raw, err := doc.AppendJSON(nil)
	if err != nil {
		return nil, err
	}
	key := s.keys.ReceiptKey()
	pub := key.Public().(ed25519.PublicKey)
	return &Bundle{Export: raw, Key: keyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw))}, nil
}

func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Errors the verifiers return, for callers to branch on.
var (
	ErrMalformed = errors.New("malformed")
	ErrSignature = errors.New("signature does not verify: it was altered or signed by another key")
)

// VerifyExport checks a bundle against the handler's public key and
// returns the document it carries.
func VerifyExport(data []byte, pub ed25519.PublicKey) (*Export, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify export: public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("verify export: %w: %v", ErrMalformed, err)
	}
	sig, err := base64.StdEncoding.DecodeString(b.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("verify export: %w: signature is not base64 of %d bytes", ErrMalformed, ed25519.SignatureSize)
	}
	if b.Key != keyID(pub) || !ed25519.Verify(pub, b.Export, sig) {
		return nil, fmt.Errorf("verify export: %w", ErrSignature)
	}
	var doc Export
	if err := json.Unmarshal(b.Export, &doc); err != nil {
		return nil, fmt.Errorf("verify export: %w: %v", ErrMalformed, err)
	}
	if doc.Schema != Schema {
		return nil, fmt.Errorf("verify export: %w: schema %q, this verifier reads %q", ErrMalformed, doc.Schema, Schema)
	}
	return &doc, nil
}

// Labels lists the subject's labels used to personalise for them, with
// why each applies, and the deselected and deleted ones (LP-3).
func (s *Service) Labels(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) ([]LabelEntry, error) {
	g, st, ci, err := s.openFor(ctx, caller, pseudonym)
	if err != nil {
		return nil, err
	}
	return s.labels(ctx, g, ci, st)
}

// openFor checks that caller may act for pseudonym, and returns an access
// grant from the decision point, the subject's state and their cipher.
func (s *Service) openFor(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) (policy.Grant, *policy.State, *keys.Cipher, error) {
	if err := authorize(caller, pseudonym); err != nil {
		return policy.Grant{}, nil, nil, err
	}
	sub, err := s.subject(ctx, pseudonym)
	if err != nil {
		return policy.Grant{}, nil, nil, err
	}
	g, st, err := s.grant(ctx, caller, pseudonym, policy.Access, nil)
	if err != nil {
		return policy.Grant{}, nil, nil, err
	}
	ci, err := s.keys.Open(sub)
	if err != nil {
		return policy.Grant{}, nil, nil, err
	}
	return g, st, ci, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("rights: encode %T: %v", v, err))
	}
	return b
}

// Profile lists the subject's profile fields with their provenance, for
// the correction form (CM-2). Unlike Access it records no case: it is the
// subject looking at a page, not a request.
func (s *Service) Profile(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym) ([]ProfileEntry, error) {
	g, _, ci, err := s.openFor(ctx, caller, pseudonym)
	if err != nil {
		return nil, err
	}
	return s.profile(ctx, g, ci)
}

func (s *Service) profile(ctx context.Context, g policy.Grant, ci *keys.Cipher) ([]ProfileEntry, error) {
	p, cat := g.Pseudonym(), s.point.Catalog()
	prof, err := s.store.Profile(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("read profile of %s: %w", p, err)
	}
	out := make([]ProfileEntry, 0, len(prof))
	for _, pv := range prof {
		b, err := ci.Open(pv.Sealed, keys.ProfileAD(p, pv.Field))
		if err != nil {
			return nil, fmt.Errorf("open profile field %s of %s: %w", pv.Field, p, err)
		}
		e := ProfileEntry{Field: pv.Field, Source: pv.Source, Updated: pv.Updated, Expires: pv.Expires}
		if f := cat.Field(pv.Field); f != nil {
			e.Category = f.Category
		}
		if err := json.Unmarshal(b, &e.Value); err != nil {
			return nil, fmt.Errorf("decode profile field %s: %w", pv.Field, err)
		}
		out = append(out, e)
	}
	return out, nil
}
