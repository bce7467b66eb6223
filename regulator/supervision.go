package regulator

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/limit"
	"github.com/portrait-dev/portrait/policy"
)

// Doc is one supervision document as the regulator stores it: a signed
// supervision report, a complaint, a rule-pack draft. Body is the JSON
// this package defines for its kind.
type Doc struct {
	Kind    string
	ID      string
	Company string // "" for documents of no one company (packs)
	Created time.Time
	Body    []byte
}

// Docs is where the regulator keeps supervision documents; the sqlite and
// postgres packages implement it beside Store (table reg_docs).
type Docs interface {
	// PutDoc inserts a document or replaces its body.
	PutDoc(ctx context.Context, d Doc) error
	// Doc returns one document; ENOTFOUND if absent.
	Doc(ctx context.Context, kind, id string) (Doc, error)
	// Docs lists the documents of kind, of one company or ("") of all,
	// oldest first.
	Docs(ctx context.Context, kind, company string) ([]Doc, error)
}

// Document kinds.
const (
	docReport    = "supervision"
	docComplaint = "complaint"
	docPack      = "pack"
)

// supervision is the part of the node that supervises through disclosure
// and participation: reports, complaints and consultations.
type supervision struct {
	docs    Docs
	keys    *keys.Keyring
	limiter *limit.Limiter
}

// Supervise turns on supervision reports, complaints and rule-pack
// consultation, kept in docs; complaint texts are sealed with keys, the
// regulator's keyring, which also makes the complainants' secrets.
func (n *Node) Supervise(docs Docs, kr *keys.Keyring) {
	n.sup = &supervision{docs: docs, keys: kr, limiter: limit.New(time.Minute, 5)}
}

func (n *Node) supervising() (*supervision, error) {
	if n.sup == nil {
		return nil, portrait.Errorf(portrait.EUNAVAILABLE, "this regulator node does not take supervision reports or complaints")
	}
	return n.sup, nil
}

// SupervisionPrefix is the header line of a supervision report's signed
// message: the company signs SupervisionPrefix || Body with its receipt
// key, which it filed with the regulator.
const SupervisionPrefix = "portrait-supervision/v1\n"

// Supervision is a company's periodic supervision report: monitor
// aggregates, subject-request and consent figures, complaints and
// breaches. Counts of people carry calibrated noise (Noise).
type Supervision struct {
	Company string    `json:"company"`
	Sent    time.Time `json:"sent"`
	// Noisy are counts of distinct people, each with noise added.
	Noisy map[string]int64 `json:"noisy_counts"`
	Noise Noise            `json:"noise"`
	// Exact are counts about the company, not about people: complaints,
	// breaches.
	Exact map[string]int64 `json:"exact_counts"`
	// ConsentRate is granted ÷ (granted + withdrawn), from the noisy counts.
	ConsentRate *float64 `json:"consent_rate"`
	// ImpactRatios is the lowest impact ratio of any group, per decision
	// use-case (FP-4); PriceDispersion the highest max ÷ min price per
	// item and context (FP-1); Bubble the latest normalised category
	// entropy per recommendation scope (FB-2). All from the engine's last
	// monitor run, over groups the monitor already bounds by size.
	ImpactRatios    map[string]float64 `json:"impact_ratios"`
	PriceDispersion map[string]float64 `json:"price_dispersion"`
	Bubble          map[string]float64 `json:"filter_bubble"`
	MonitorRun      string             `json:"monitor_run,omitempty"`
	// Alerts counts the last monitor run's alerts by kind.
	Alerts map[string]int `json:"alerts,omitempty"`
	// Detections counts the content detectors' findings at ingest (SM-1)
	// by "kind/outcome" — a resident ID refused, an e-mail flagged, a
	// lexicon term flagged — on the sending node since it started: refused
	// values are stored nowhere, so no node can count another's. Fields
	// flagged sensitive by a lexicon term, company-wide, are counted from
	// the log in Exact["fields_flagged_lexicon"].
	Detections map[string]int64 `json:"detections,omitempty"`
}

// SignedSupervision is a supervision report as sent: the exact bytes
// signed and the signature.
type SignedSupervision struct {
	Body      json.RawMessage `json:"report"`
	Signature []byte          `json:"signature"`
}

// SupervisionRecord is a received report as the regulator keeps it.
type SupervisionRecord struct {
	ID       string            `json:"id"`
	Received time.Time         `json:"received"`
	Signed   SignedSupervision `json:"signed"`
	Report   Supervision       `json:"parsed"`
	LogIndex int64             `json:"log_index"`
}

// SignSupervision signs a report with the company's receipt key.
func SignSupervision(r Supervision, key ed25519.PrivateKey) (SignedSupervision, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return SignedSupervision{}, err
	}
	return SignedSupervision{Body: body, Signature: ed25519.Sign(key, append([]byte(SupervisionPrefix), body...))}, nil
}

// maxMetrics bounds the entries of each map of a report.
const maxMetrics = 200

// Receive verifies and stores a supervision report from company c: the
// signature must verify with the receipt key c filed, and the report must
// name c. Nothing of an unverified report is read (invariant 8).
func (n *Node) Receive(ctx context.Context, c Company, s SignedSupervision) (SupervisionRecord, error) {
	sup, err := n.supervising()
	if err != nil {
		return SupervisionRecord{}, err
	}
	pub, err := base64.StdEncoding.DecodeString(c.ReceiptKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return SupervisionRecord{}, portrait.Errorf(portrait.ECONFLICT, "company %s has filed no receipt key to verify its reports with", c.ID)
	}
	if !ed25519.Verify(pub, append([]byte(SupervisionPrefix), s.Body...), s.Signature) {
		return SupervisionRecord{}, portrait.Errorf(portrait.EFORBIDDEN, "the supervision report's signature does not verify with the receipt key company %s filed", c.ID)
	}
	var r Supervision
	d := json.NewDecoder(bytes.NewReader(s.Body))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return SupervisionRecord{}, portrait.Errorf(portrait.EINVALID, "supervision report: %v", err)
	}
	if r.Company != c.ID {
		return SupervisionRecord{}, portrait.Errorf(portrait.EINVALID, "the report names company %q, not %s", r.Company, c.ID)
	}
	for _, m := range []int{len(r.Noisy), len(r.Exact), len(r.ImpactRatios), len(r.PriceDispersion), len(r.Bubble)} {
		if m > maxMetrics {
			return SupervisionRecord{}, portrait.Errorf(portrait.ETOOLARGE, "a supervision report holds at most %d figures of each kind", maxMetrics)
		}
	}
	for _, m := range []map[string]float64{r.ImpactRatios, r.PriceDispersion, r.Bubble} {
		for k, v := range m {
			if math.IsNaN(v) || math.IsInf(v, 0) || len(k) > 200 {
				return SupervisionRecord{}, portrait.Errorf(portrait.EINVALID, "supervision report: figure %.40q is not a finite number under a short name", k)
			}
		}
	}
	rec := SupervisionRecord{ID: "sup_" + hex.EncodeToString(hash(token(""))[:8]), Received: n.now(), Signed: s, Report: r}
	sum := sha256.Sum256(s.Body)
	if rec.LogIndex, err = n.record(ctx, audit.Record{Kind: "supervision", Actor: "company:" + c.ID, Action: "report", Digest: hex.EncodeToString(sum[:]),
		Detail: map[string]any{"report": rec.ID, "company": c.ID}}, nil); err != nil {
		return SupervisionRecord{}, err
	}
	return rec, putDoc(ctx, sup.docs, docReport, rec.ID, c.ID, rec.Received, rec)
}

// Reports lists a company's supervision reports, oldest first.
func (n *Node) Reports(ctx context.Context, company string) ([]SupervisionRecord, error) {
	sup, err := n.supervising()
	if err != nil {
		return nil, err
	}
	return listDocs[SupervisionRecord](ctx, sup.docs, docReport, company)
}

// Series is one figure of a company's reports over time, for charts.
type Series struct {
	Name   string    `json:"name"`
	Times  []string  `json:"times"`
	Values []float64 `json:"values"`
}

// Chart turns reports into one series per figure, names sorted.
func Chart(reps []SupervisionRecord) []Series {
	by := map[string]*Series{}
	add := func(name, at string, v float64) {
		s := by[name]
		if s == nil {
			s = &Series{Name: name}
			by[name] = s
		}
		s.Times, s.Values = append(s.Times, at), append(s.Values, v)
	}
	for _, r := range reps {
		at := r.Report.Sent.UTC().Format(time.RFC3339)
		for k, v := range r.Report.Noisy {
			add(k, at, float64(v))
		}
		for k, v := range r.Report.Exact {
			add(k, at, float64(v))
		}
		for k, v := range r.Report.Detections {
			add("detections/"+k, at, float64(v))
		}
		if r.Report.ConsentRate != nil {
			add("consent_rate", at, *r.Report.ConsentRate)
		}
		for prefix, m := range map[string]map[string]float64{"impact_ratio/": r.Report.ImpactRatios, "price_dispersion/": r.Report.PriceDispersion, "filter_bubble/": r.Report.Bubble} {
			for k, v := range m {
				add(prefix+k, at, v)
			}
		}
	}
	out := make([]Series, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Complaint statuses. Only the regulator closes a complaint.
const (
	ComplaintOpen     = "open"
	ComplaintAnswered = "answered"
	ComplaintClosed   = "closed"
)

// Complaint is a complaint about a company as its complainant, the
// company and the regulator's staff see it (text opened).
type Complaint struct {
	ID       string    `json:"id"`
	Company  string    `json:"company"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Deadline time.Time `json:"deadline"`
	Text     string    `json:"text,omitempty"`
	Answers  []Answer  `json:"answers"`
	Closed   time.Time `json:"closed,omitzero"`
	ClosedBy string    `json:"closed_by,omitempty"`
	Closing  string    `json:"closing,omitempty"`
	// Channel is how it came in: "regulator" (filed at the regulator) or
	// "company" (at the company's /v1/reports, forwarded).
	Channel string `json:"channel"`
}

// Answer is the company's answer to a complaint.
type Answer struct {
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// ComplaintReceipt is what the complainant gets: the id and the secret
// that together let them follow the complaint without an account.
type ComplaintReceipt struct {
	ID       string    `json:"id"`
	Secret   string    `json:"secret"`
	Deadline time.Time `json:"deadline"`
}

// complaintRecord is a complaint at rest: its text and answers sealed.
type complaintRecord struct {
	ID       string    `json:"id"`
	Company  string    `json:"company"`
	Status   string    `json:"status"`
	Created  time.Time `json:"created"`
	Deadline time.Time `json:"deadline"`
	Sealed   string    `json:"sealed"` // text and answers, sealed
	Closed   time.Time `json:"closed,omitzero"`
	ClosedBy string    `json:"closed_by,omitempty"`
	Channel  string    `json:"channel"`
}

// sealedPart is what a complaint seals.
type sealedPart struct {
	Text    string   `json:"text"`
	Answers []Answer `json:"answers"`
	Closing string   `json:"closing,omitempty"`
}

// ComplaintDeadline is how long a company has to answer: 15 days.
const ComplaintDeadline = 15 * 24 * time.Hour

// maxComplaint bounds a complaint's text, an answer and a closing note.
const maxComplaint = 8 << 10

// ErrRateLimited refuses a client that complained or commented too often.
var ErrRateLimited = portrait.Errorf(portrait.EUNAVAILABLE, "too many submissions from this address; try again later")

func checkText(what, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-8", Message: fmt.Sprintf("a %s needs text", what)}
	case len(s) > maxComplaint:
		return "", &portrait.Error{Code: portrait.ETOOLARGE, Requirement: "RO-8", Message: fmt.Sprintf("the %s has %d bytes; the limit is %d", what, len(s), maxComplaint)}
	case strings.ContainsRune(s, 0) || !utf8.ValidString(s):
		return "", &portrait.Error{Code: portrait.EINVALID, Requirement: "RO-8", Message: fmt.Sprintf("the %s is not valid UTF-8 text", what)}
	}
	return s, nil
}

// Complain files a complaint about company. client is the caller's
// address, for rate limiting only ("" skips it: a company forwarding a
// complaint it took has limited it already).
func (n *Node) Complain(ctx context.Context, client, company, text, channel string) (ComplaintReceipt, error) {
	sup, err := n.supervising()
	if err != nil {
		return ComplaintReceipt{}, err
	}
	if text, err = checkText("complaint", text); err != nil {
		return ComplaintReceipt{}, err
	}
	if _, err := n.db.Company(ctx, company); err != nil {
		return ComplaintReceipt{}, portrait.Errorf(portrait.ENOTFOUND, "no enrolled company %q: see the list of companies on the public portal", company)
	}
	if client != "" && !sup.limiter.Allow(client, n.now()) {
		return ComplaintReceipt{}, ErrRateLimited
	}
	now := n.now()
	rec := complaintRecord{ID: "cmp_" + hex.EncodeToString(hash(token(""))[:8]), Company: company, Status: ComplaintOpen,
		Created: now, Deadline: now.Add(ComplaintDeadline), Channel: channel}
	if rec.Sealed, err = sup.seal(rec.ID, sealedPart{Text: text, Answers: []Answer{}}); err != nil {
		return ComplaintReceipt{}, err
	}
	if _, err := n.record(ctx, audit.Record{Kind: "complaint", Actor: "public", Action: "open", Digest: digest(text), Codes: []string{"RO-8"},
		Detail: map[string]any{"complaint": rec.ID, "company": company, "channel": channel, "deadline": rec.Deadline}}, nil); err != nil {
		return ComplaintReceipt{}, err
	}
	if err := putDoc(ctx, sup.docs, docComplaint, rec.ID, company, now, rec); err != nil {
		return ComplaintReceipt{}, err
	}
	return ComplaintReceipt{ID: rec.ID, Secret: sup.secret(rec.ID), Deadline: rec.Deadline}, nil
}

// Follow returns a complaint to the complainant who holds its secret.
func (n *Node) Follow(ctx context.Context, id, secret string) (Complaint, error) {
	sup, err := n.supervising()
	if err != nil {
		return Complaint{}, err
	}
	if !hmac.Equal([]byte(secret), []byte(sup.secret(id))) {
		// The same answer as an unknown id: a wrong secret reveals nothing.
		return Complaint{}, portrait.Errorf(portrait.ENOTFOUND, "no complaint %s with this secret", id)
	}
	return n.complaint(ctx, id)
}

func (n *Node) complaint(ctx context.Context, id string) (Complaint, error) {
	rec, err := getDoc[complaintRecord](ctx, n.sup.docs, docComplaint, id)
	if err != nil {
		return Complaint{}, err
	}
	return n.sup.open(rec)
}

// Complaints lists a company's complaints, opened, oldest first.
func (n *Node) Complaints(ctx context.Context, company string) ([]Complaint, error) {
	sup, err := n.supervising()
	if err != nil {
		return nil, err
	}
	recs, err := listDocs[complaintRecord](ctx, sup.docs, docComplaint, company)
	if err != nil {
		return nil, err
	}
	out := make([]Complaint, len(recs))
	for i, r := range recs {
		if out[i], err = sup.open(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// AnswerComplaint records company c's answer to one of its complaints.
// It does not close the complaint: only the regulator does (Close).
func (n *Node) AnswerComplaint(ctx context.Context, c Company, id, text string) (Complaint, error) {
	return n.update(ctx, id, func(rec *complaintRecord, p *sealedPart) (audit.Record, error) {
		if rec.Company != c.ID {
			return audit.Record{}, portrait.Errorf(portrait.ENOTFOUND, "no complaint %s about this company", id)
		}
		if rec.Status == ComplaintClosed {
			return audit.Record{}, portrait.Errorf(portrait.ECONFLICT, "complaint %s is closed", id)
		}
		text, err := checkText("answer", text)
		if err != nil {
			return audit.Record{}, err
		}
		rec.Status, p.Answers = ComplaintAnswered, append(p.Answers, Answer{Text: text, At: n.now()})
		return audit.Record{Kind: "complaint", Actor: "company:" + c.ID, Action: "answer", Digest: digest(text), Codes: []string{"RO-8"},
			Detail: map[string]any{"complaint": id, "company": c.ID}}, nil
	})
}

// Close closes a complaint with the regulator's note. Only regulator
// staff close complaints; a company answers them.
func (n *Node) Close(ctx context.Context, by policy.Caller, id, note string) (Complaint, error) {
	return n.update(ctx, id, func(rec *complaintRecord, p *sealedPart) (audit.Record, error) {
		if rec.Status == ComplaintClosed {
			return audit.Record{}, portrait.Errorf(portrait.ECONFLICT, "complaint %s is already closed", id)
		}
		note, err := checkText("closing note", note)
		if err != nil {
			return audit.Record{}, err
		}
		rec.Status, rec.Closed, rec.ClosedBy, p.Closing = ComplaintClosed, n.now(), by.ID, note
		return audit.Record{Kind: "complaint", Actor: actor(by), Action: "close", Digest: digest(note), Codes: []string{"RO-8"},
			Detail: map[string]any{"complaint": id, "company": rec.Company}}, nil
	})
}

// update changes one complaint: logged first, then stored (as File does).
func (n *Node) update(ctx context.Context, id string, fn func(*complaintRecord, *sealedPart) (audit.Record, error)) (Complaint, error) {
	sup, err := n.supervising()
	if err != nil {
		return Complaint{}, err
	}
	rec, err := getDoc[complaintRecord](ctx, sup.docs, docComplaint, id)
	if err != nil {
		return Complaint{}, err
	}
	var p sealedPart
	if err := sup.unseal(rec.ID, rec.Sealed, &p); err != nil {
		return Complaint{}, err
	}
	ar, err := fn(&rec, &p)
	if err != nil {
		return Complaint{}, err
	}
	if rec.Sealed, err = sup.seal(rec.ID, p); err != nil {
		return Complaint{}, err
	}
	if _, err := n.record(ctx, ar, nil); err != nil {
		return Complaint{}, err
	}
	if err := putDoc(ctx, sup.docs, docComplaint, rec.ID, rec.Company, rec.Created, rec); err != nil {
		return Complaint{}, err
	}
	return sup.open(rec)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// secret is the complainant's secret for id: a MAC under a key derived
// from the regulator's receipt key, so nothing needs storing.
func (s *supervision) secret(id string) string {
	key := sha256.Sum256(append([]byte("portrait/complaint-secret/v1/"), s.keys.ReceiptKey().Seed()...))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// seal encrypts v under a data key of its own wrapped by the master key,
// bound to the complaint id, as package oversight seals violation reports.
func (s *supervision) seal(id string, v any) (string, error) {
	subj, ci, err := s.keys.NewSubject("portrait/complaint/" + id)
	if err != nil {
		return "", fmt.Errorf("seal complaint: %w", err)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	enc := base64.StdEncoding
	return "v1." + enc.EncodeToString(subj.WrappedKey) + "." + enc.EncodeToString(ci.Seal(body, []byte("portrait/complaint/"+id))), nil
}

func (s *supervision) unseal(id, sealed string, v any) error {
	parts := strings.Split(sealed, ".")
	bad := fmt.Errorf("complaint %s: the stored text is not sealed", id)
	if len(parts) != 3 || parts[0] != "v1" {
		return bad
	}
	wrapped, err1 := base64.StdEncoding.DecodeString(parts[1])
	ct, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil {
		return bad
	}
	name := "portrait/complaint/" + id
	ci, err := s.keys.Open(portrait.SubjectKey{Pseudonym: s.keys.Pseudonym(name), WrappedKey: wrapped})
	if err != nil {
		return fmt.Errorf("complaint %s: %w", id, err)
	}
	body, err := ci.Open(ct, []byte(name))
	if err != nil {
		return fmt.Errorf("complaint %s: open: %w", id, err)
	}
	return json.Unmarshal(body, v)
}

func (s *supervision) open(rec complaintRecord) (Complaint, error) {
	var p sealedPart
	if err := s.unseal(rec.ID, rec.Sealed, &p); err != nil {
		return Complaint{}, err
	}
	if p.Answers == nil {
		p.Answers = []Answer{}
	}
	return Complaint{ID: rec.ID, Company: rec.Company, Status: rec.Status, Created: rec.Created, Deadline: rec.Deadline,
		Text: p.Text, Answers: p.Answers, Closed: rec.Closed, ClosedBy: rec.ClosedBy, Closing: p.Closing, Channel: rec.Channel}, nil
}

func putDoc(ctx context.Context, docs Docs, kind, id, company string, at time.Time, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return docs.PutDoc(ctx, Doc{Kind: kind, ID: id, Company: company, Created: at, Body: body})
}

func getDoc[T any](ctx context.Context, docs Docs, kind, id string) (T, error) {
	var v T
	d, err := docs.Doc(ctx, kind, id)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(d.Body, &v)
}

func listDocs[T any](ctx context.Context, docs Docs, kind, company string) ([]T, error) {
	ds, err := docs.Docs(ctx, kind, company)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(ds))
	for i, d := range ds {
		if err := json.Unmarshal(d.Body, &out[i]); err != nil {
			return nil, fmt.Errorf("%s %s: %w", kind, d.ID, err)
		}
	}
	return out, nil
}
