package server

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/ingest"
	"github.com/portrait-dev/portrait/policy"
)

// subject resolves the subject a request is about: the token's own
// subject under /v1/me, or the pseudonym of {id} for staff.
func (s *Server) subject(r *http.Request, c policy.Caller) (portrait.Pseudonym, error) {
	if c.Role == policy.Subject {
		return c.Pseudonym, nil
	}
	id := r.PathValue("id")
	if id == "" || len(id) > 256 {
		return "", portrait.Errorf(portrait.EINVALID, "the subject id in the path is empty or longer than 256 bytes")
	}
	return s.cfg.Keys.Pseudonym(id), nil
}

type eventsResponse struct {
	ingest.Summary
	Results []ingest.Result `json:"results"`
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var ndjson bool
	switch ct {
	case "application/x-ndjson", "application/ndjson", "application/jsonl":
		ndjson = true
	case "application/json", "":
	default:
		return portrait.Errorf(portrait.EINVALID, "Content-Type %q is not accepted; send application/json (an array) or application/x-ndjson", ct)
	}
	items, err := ingest.Decode(r.Body, ndjson)
	if err != nil {
		return err
	}
	s.ownEvents(items, c)
	results, sum, err := s.cfg.Ingester.Ingest(r.Context(), c, items)
	ingest.Recycle(items) // nothing below reads them
	if err != nil {
		return &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the batch could not be stored and recorded in the audit log; nothing was stored, retry later", Err: err}
	}
	s.metrics.events.WithLabelValues(ingest.Accepted).Add(float64(sum.Accepted))
	s.metrics.events.WithLabelValues(ingest.Rejected).Add(float64(sum.Rejected))
	s.metrics.events.WithLabelValues(ingest.Duplicate).Add(float64(sum.Duplicates))
	s.metrics.events.WithLabelValues(ingest.NotStored).Add(float64(sum.NotStored))
	status := http.StatusOK
	if sum.Accepted == 0 && sum.Duplicates == 0 {
		status = http.StatusUnprocessableEntity
	}
	return writeJSON(w, status, eventsResponse{Summary: sum, Results: results})
}

type consentBody struct {
	Status        string `json:"status"`
	NoticeVersion string `json:"notice_version"`
	Channel       string `json:"channel"`
	// GuardianToken comes from the verified guardian flow
	// (POST /v1/subjects/{id}/guardian-token); a guardian flag is refused.
	GuardianToken string `json:"guardian_token"`
	Guardian      *bool  `json:"guardian"`
	// Evidence relayed by the company's own front end, for staff callers.
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
	// A CMP's consent string decides the status through the purpose's
	// catalog mapping (tcf:, usnat:); status may then be left out.
	TCString  string `json:"tc_string,omitempty"`
	GPPString string `json:"gpp_string,omitempty"`
}

func (s *Server) putConsent(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	var b consentBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	str, typ := b.TCString, consent.StringTCF
	switch {
	case b.TCString != "" && b.GPPString != "":
		return portrait.Errorf(portrait.EINVALID, "send tc_string or gpp_string, not both")
	case b.GPPString != "":
		str, typ = b.GPPString, consent.StringGPP
	case b.TCString == "":
		typ = ""
	}
	st := policy.None
	if b.Status != "" || str == "" {
		var err error
		if st, err = policy.ParseStatus(b.Status); err != nil {
			return portrait.Errorf(portrait.EINVALID, "%v", err)
		}
	}
	if b.Guardian != nil {
		return &portrait.Error{Code: portrait.EINVALID, Requirement: "SM-3",
			Message: "guardian: a flag cannot prove a guardian's consent; send guardian_token from the verified guardian flow (POST /v1/subjects/{id}/guardian-token)"}
	}
	ua, ip := b.UserAgent, b.IP
	if c.Role == policy.Subject || ua == "" {
		ua, ip = r.UserAgent(), clientIP(r)
	}
	if b.Channel == "" {
		b.Channel = "api"
	}
	sel := consent.ByPseudonym(ps)
	if c.Role != policy.Subject {
		sel = consent.ByID(r.PathValue("id"))
	}
	rc, err := s.cfg.Ledger.Record(r.Context(), c, sel, consent.Change{
		Purpose: r.PathValue("purpose"), Status: st, NoticeVersion: b.NoticeVersion,
		Channel: b.Channel, UserAgent: ua, IP: ip, GuardianToken: b.GuardianToken,
		ConsentString: str, StringType: typ,
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rc)
}

type guardianBody struct {
	Purpose string `json:"purpose"`
}

// postGuardianToken closes the company's verified guardian flow: staff
// that verified a guardian get a token for one subject and purpose.
func (s *Server) postGuardianToken(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	var b guardianBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	tok, exp, err := s.cfg.Ledger.GuardianToken(r.Context(), c, consent.ByID(r.PathValue("id")), b.Purpose)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, guardianTokenResponse{GuardianToken: tok, Expires: exp.UTC(), Purpose: b.Purpose})
}

type consentView struct {
	Purpose       string `json:"purpose"`
	Basis         string `json:"basis"`
	Required      bool   `json:"required"`
	Separate      bool   `json:"separate_consent"`
	Status        string `json:"status"`
	NoticeVersion string `json:"notice_version,omitempty"`
	// Current is the purpose's notice version now; a consent to an older
	// one no longer suffices (CN-3).
	Current   string     `json:"current_notice_version"`
	Effective bool       `json:"effective"`
	At        *time.Time `json:"at,omitempty"`
	Notice    string     `json:"notice"`
}

type historyView struct {
	portrait.ConsentRecord
	Status string `json:"status"`
}

func (s *Server) getConsents(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	st, err := s.cfg.Ledger.State(r.Context(), ps)
	if err != nil {
		return err
	}
	d := s.cfg.Point.Decide(policy.Request{State: st, Action: policy.Access, Caller: c})
	if err := d.Err(); err != nil {
		return err
	}
	if c.Role != policy.Subject {
		// CM-5: a staff read of a subject's consent evidence is logged,
		// and does not happen if it cannot be.
		if _, err := s.record(r, audit.Record{Kind: "access", Actor: actor(c), Pseudonym: ps, Action: "read_consents"}); err != nil {
			return err
		}
	}
	hist, err := s.cfg.Ledger.History(r.Context(), d.Grant)
	if err != nil {
		return err
	}
	lang := lang(r)
	cat := s.cfg.Point.Catalog()
	out := consentsResponse{Consents: []consentView{}, History: []historyView{}}
	for _, p := range cat.Purposes {
		v := consentView{Purpose: p.ID, Basis: string(p.Basis), Required: p.Required, Separate: p.Separate,
			Current: p.NoticeVersion, Notice: p.Notice.In(lang), Status: policy.None.String()}
		if cs, ok := st.Consents[p.ID]; ok {
			at := cs.At
			v.Status, v.NoticeVersion, v.At = cs.Status.String(), cs.NoticeVersion, &at
		}
		v.Effective = p.Basis != "consent" || (v.Status == "granted" && v.NoticeVersion == p.NoticeVersion)
		out.Consents = append(out.Consents, v)
	}
	for _, h := range hist {
		out.History = append(out.History, historyView{ConsentRecord: h, Status: h.Status.String()})
	}
	return writeJSON(w, 200, out)
}

func lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh-CN" {
		return l
	}
	return "zh-CN"
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	ps, err := s.subject(r, c)
	if err != nil {
		return err
	}
	tok := s.cfg.Keys.IssueToken(ps, s.cfg.TokenTTL)
	if _, err := s.record(r, audit.Record{Kind: "token", Actor: actor(c), Pseudonym: ps, Action: "issue"}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, tokenResponse{Token: tok, ExpiresAt: time.Now().Add(s.cfg.TokenTTL).UTC()})
}

// record appends one audit record in a transaction of its own: the caller
// must not act if it fails (invariant 3).
func (s *Server) record(r *http.Request, rec audit.Record) (int64, error) {
	var idx int64
	err := s.cfg.Store.Update(r.Context(), func(ctx context.Context, tx portrait.Tx) error {
		var err error
		idx, err = s.cfg.Log.Append(ctx, tx, rec)
		return err
	})
	if err != nil {
		return 0, &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the audit log could not record this action, so it was not done", Err: err}
	}
	return idx, nil
}

func actor(c policy.Caller) string {
	if c.Role == policy.Subject {
		return "subject"
	}
	return string(c.Role) + ":" + c.ID
}

func (s *Server) verifyReceipt(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	rc, err := consent.VerifyReceipt(data, s.cfg.Keys.ReceiptKey().Public().(ed25519.PublicKey))
	if err != nil {
		return portrait.Errorf(portrait.EINVALID, "the receipt does not verify: %v", err)
	}
	return writeJSON(w, 200, receiptCheck{Valid: true, Receipt: rc})
}

func (s *Server) receiptKey(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	pub := s.cfg.Keys.ReceiptKey().Public().(ed25519.PublicKey)
	_, err := io.WriteString(w, base64.StdEncoding.EncodeToString(pub)+"\n")
	return err
}

func (s *Server) getSuspensions(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	list, err := s.cfg.Store.Suspensions(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []policy.Suspension{}
	}
	return writeJSON(w, 200, suspensionsResponse{Suspensions: list})
}

func (s *Server) postSuspension(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	if s.regulated.Load() {
		return errRegulated
	}
	var b suspensionBody
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if err := s.checkTarget(b.Kind, b.ID); err != nil {
		return err
	}
	if b.Reason == "" {
		return portrait.Errorf(portrait.EINVALID, "a suspension needs a \"reason\" that the company and subjects will see")
	}
	sp := policy.Suspension{Kind: b.Kind, ID: b.ID, Reason: b.Reason, By: c.ID, At: time.Now().UTC()}
	if err := s.cfg.Ledger.Suspend(r.Context(), c, sp); err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, sp)
}

func (s *Server) deleteSuspension(w http.ResponseWriter, r *http.Request, c policy.Caller) error {
	if s.regulated.Load() {
		return errRegulated
	}
	kind, id := r.PathValue("kind"), r.PathValue("id")
	if err := s.checkTarget(kind, id); err != nil {
		return err
	}
	if err := s.cfg.Ledger.Lift(r.Context(), c, kind, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkTarget refuses suspensions of things the catalog does not declare.
func (s *Server) checkTarget(kind, id string) error {
	err := s.cfg.Point.Target(kind, id)
	switch {
	case errors.Is(err, policy.ErrUndeclared):
		return portrait.Errorf(portrait.ENOTFOUND, "%v", err)
	case err != nil:
		return portrait.Errorf(portrait.EINVALID, "%v", err)
	}
	return nil
}

func (s *Server) logCheckpoint(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	note, err := s.cfg.Store.Checkpoint(r.Context())
	if err != nil || len(note) == 0 {
		// Nothing published yet: sign the current tree now.
		if note, err = s.cfg.Log.Sign(r.Context(), s.cfg.Store); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write(note)
	return err
}

func (s *Server) logKey(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := io.WriteString(w, s.cfg.Log.VerifierKey()+"\n")
	return err
}

func intParam(name, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, portrait.Errorf(portrait.EINVALID, "%s=%q: want a whole number ≥ 0", name, v)
	}
	return n, nil
}

func (s *Server) logEntry(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	i, err := intParam("index", r.PathValue("index"))
	if err != nil {
		return err
	}
	data, err := s.cfg.Log.Entry(r.Context(), s.cfg.Store, i)
	if err != nil {
		return logErr(err)
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(data)
	return err
}

func (s *Server) logEntries(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	q := r.URL.Query()
	from, err := intParam("from", q.Get("from"))
	if err != nil {
		return err
	}
	to, err := intParam("to", q.Get("to"))
	if err != nil {
		return err
	}
	ds, err := s.cfg.Log.Entries(r.Context(), s.cfg.Store, from, to)
	if err != nil {
		return logErr(err)
	}
	return writeJSON(w, 200, audit.EntriesResponse{Entries: ds})
}

func logErr(err error) error {
	if errors.Is(err, audit.ErrRange) {
		return portrait.Errorf(portrait.EINVALID, "%v", err)
	}
	return err
}

func (s *Server) logInclusion(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	q := r.URL.Query()
	i, err := intParam("index", q.Get("index"))
	if err != nil {
		return err
	}
	n, err := intParam("size", q.Get("size"))
	if err != nil {
		return err
	}
	p, err := s.cfg.Log.InclusionProof(r.Context(), s.cfg.Store, i, n)
	if err != nil {
		return logErr(err)
	}
	return writeJSON(w, 200, audit.NewProofResponse(p))
}

func (s *Server) logConsistency(w http.ResponseWriter, r *http.Request, _ policy.Caller) error {
	q := r.URL.Query()
	from, err := intParam("from", q.Get("from"))
	if err != nil {
		return err
	}
	to, err := intParam("to", q.Get("to"))
	if err != nil {
		return err
	}
	p, err := s.cfg.Log.ConsistencyProof(r.Context(), s.cfg.Store, from, to)
	if err != nil {
		return logErr(err)
	}
	return writeJSON(w, 200, audit.NewProofResponse(p))
}
