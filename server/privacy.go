package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookie names of the privacy centre.
const (
	sessionCookie = "portrait_session"
	langCookie    = "portrait_lang"
)

var pageNames = []string{"signin", "home", "notice", "consents", "labels", "personalization", "export", "erasure", "erased", "requests", "profile", "decisions"}

// pages holds one template set per page: the layout plus the page's content.
var pages = func() map[string]*template.Template {
	m := make(map[string]*template.Template, len(pageNames))
	for _, n := range pageNames {
		m[n] = template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html"))
	}
	return m
}()

// view is what every page template gets. html/template escapes all of it
// in context, so nothing a subject or the catalog holds can inject markup.
type view struct {
	Lang, Page, Title, CSRF, Flash, Error string
	Signed                                bool
	T                                     map[string]string
	Data                                  any
	Extra                                 string
	// Operator is the receivership in force: every page says who
	// operates the service and why.
	Operator *Receivership
}

// privacy serves the privacy centre: server-rendered pages that sign in
// with a subject token held in an HttpOnly, SameSite=Strict cookie; every
// form that changes something carries a CSRF token bound to the session.
func (s *Server) privacy() http.Handler {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /privacy/static/", http.StripPrefix("/privacy/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /privacy/{$}", s.pageHome)
	m.HandleFunc("POST /privacy/signin", s.pageSignin)
	m.HandleFunc("POST /privacy/demo", s.pageDemo)
	m.HandleFunc("POST /privacy/signout", s.session(s.pageSignout))
	m.HandleFunc("GET /privacy/notice", s.pageNotice)
	m.HandleFunc("GET /privacy/consents", s.session(s.pageConsents))
	m.HandleFunc("POST /privacy/consents/{purpose}", s.session(s.postPageConsent))
	m.HandleFunc("GET /privacy/labels", s.session(s.pageLabels))
	m.HandleFunc("POST /privacy/labels/{label}", s.session(s.postPageLabel))
	m.HandleFunc("GET /privacy/personalization", s.session(s.pagePersonalization))
	m.HandleFunc("POST /privacy/personalization", s.session(s.postPageLevel))
	m.HandleFunc("POST /privacy/restriction", s.session(s.postPageRestriction))
	m.HandleFunc("POST /privacy/objection", s.session(s.postPageObjection))
	m.HandleFunc("GET /privacy/export", s.session(s.pageExport))
	m.HandleFunc("GET /privacy/export.json", s.session(s.downloadExport))
	m.HandleFunc("GET /privacy/erasure", s.session(s.pageErasure))
	m.HandleFunc("POST /privacy/erasure", s.session(s.postPageErasure))
	m.HandleFunc("GET /privacy/requests", s.session(s.pageRequests))
	m.HandleFunc("POST /privacy/requests", s.session(s.postPageRequest))
	m.HandleFunc("GET /privacy/profile", s.session(s.pageProfile))
	m.HandleFunc("POST /privacy/profile/{field}", s.session(s.postPageCorrection))
	m.HandleFunc("GET /privacy/decisions", s.session(s.pageDecisions))
	m.HandleFunc("POST /privacy/decisions/{id}/appeal", s.session(s.postPageAppeal))
	cop := sameOrigin(m)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		cop.ServeHTTP(w, r)
	})
}

// sameOrigin refuses, with 403, a non-safe request (POST) that the
// browser says comes from another site (Sec-Fetch-Site, else Origin
// against Host), before any handler runs. It guards both the privacy
// centre and the console: SameSite=Strict cookies and the CSRF tokens
// already stop forged posts inside a session, but a sign-in form has no
// session yet, so without this another site could sign a visitor in as
// someone else (login CSRF) and watch what they then do.
func sameOrigin(h http.Handler) http.Handler {
	return http.NewCrossOriginProtection().Handler(h)
}

// pageLang picks the language: ?lang= (remembered in a cookie), then the
// cookie, then Chinese.
func pageLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh-CN" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/privacy/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, HttpOnly: true})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == "en" || c.Value == "zh-CN") {
		return c.Value
	}
	return "zh-CN"
}

// csrfKey derives the CSRF MAC key from the receipt key, so that every
// node sharing the master key accepts the same tokens.
func (s *Server) csrfKey() []byte {
	sum := sha256.Sum256(append([]byte("portrait/csrf/v1/"), s.cfg.Keys.ReceiptKey().Seed()...))
	return sum[:]
}

// csrf is the CSRF token of a session: an HMAC of the session token.
func (s *Server) csrf(session string) string {
	m := hmac.New(sha256.New, s.csrfKey())
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view)

// session authenticates the page by its session cookie and, for POST,
// checks the CSRF token before anything is done.
func (s *Server) session(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := &view{Lang: pageLang(w, r)}
		v.T = texts(v.Lang)
		ck, err := r.Cookie(sessionCookie)
		if err != nil {
			http.Redirect(w, r, "/privacy/", http.StatusSeeOther)
			return
		}
		t, err := s.checkSubjectToken(r.Context(), ck.Value)
		if portrait.ErrorCode(err) == portrait.EUNAVAILABLE {
			v.Page, v.Title = "signin", v.T["signin"]
			s.fail(w, v, err)
			return
		} else if err != nil {
			clearSession(w)
			v.Page, v.Title, v.Error = "signin", v.T["signin"], v.T["bad_token"]
			s.render(w, http.StatusUnauthorized, v)
			return
		}
		ps := t.Pseudonym
		v.Signed, v.CSRF = true, s.csrf(ck.Value)
		if r.Method == http.MethodPost {
			got := r.PostFormValue("csrf")
			if !hmac.Equal([]byte(got), []byte(v.CSRF)) {
				v.Page, v.Title, v.Error = "home", v.T["centre"], v.T["bad_csrf"]
				v.Data = overview{}
				s.render(w, http.StatusForbidden, v)
				return
			}
		}
		v.Flash = flash(r, v.T)
		h(w, r, policy.Caller{Role: policy.Subject, Pseudonym: ps}, v)
	}
}

// flash renders the effect of the change a redirect came from.
func flash(r *http.Request, t map[string]string) string {
	q := r.URL.Query()
	if k := q.Get("done"); k != "" {
		if msg, ok := t["done_"+k]; ok {
			return msg + q.Get("what")
		}
	}
	return ""
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/privacy/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func (s *Server) render(w http.ResponseWriter, status int, v *view) {
	t := pages[v.Page]
	v.Operator = s.receivership.Load()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", v); err != nil {
		s.cfg.Logger.Error("render page", "page", v.Page, "err", err)
	}
}

// fail renders the page with the error's caller-safe message.
func (s *Server) fail(w http.ResponseWriter, v *view, err error) {
	status := statuses[portrait.ErrorCode(err)]
	msg := portrait.ErrorMessage(err)
	var d *policy.Denied
	if errors.As(err, &d) {
		status, msg = http.StatusForbidden, d.Reasons[0].Message
	}
	if status == 0 || status >= 500 {
		s.cfg.Logger.Error("privacy centre", "page", v.Page, "err", err)
		if status == 0 {
			status = http.StatusInternalServerError
		}
	}
	v.Error = msg
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages[v.Page].ExecuteTemplate(w, "layout", v); err != nil {
		s.cfg.Logger.Error("render page", "page", v.Page, "err", err)
	}
}

func back(w http.ResponseWriter, r *http.Request, path, done, what string) {
	q := url.Values{"done": {done}}
	if what != "" {
		q.Set("what", what)
	}
	http.Redirect(w, r, path+"?"+q.Encode(), http.StatusSeeOther)
}

func (s *Server) pageHome(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if _, err := s.checkSubjectToken(r.Context(), ck.Value); err == nil {
			s.session(s.pageOverview)(w, r)
			return
		}
	}
	v := &view{Lang: pageLang(w, r), Page: "signin"}
	v.T = texts(v.Lang)
	v.Title = v.T["signin"]
	if r.URL.Query().Get("done") == "signout" {
		v.Flash = v.T["signed_out"]
	}
	if s.cfg.Demo {
		v.Data = s.cfg.DemoSubjects
	}
	s.render(w, http.StatusOK, v)
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, tok string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok, Path: "/privacy/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secure(r), MaxAge: int(s.cfg.TokenTTL / time.Second)})
	http.Redirect(w, r, "/privacy/", http.StatusSeeOther)
}

func (s *Server) pageSignin(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	if _, err := s.checkSubjectToken(r.Context(), tok); err != nil {
		v := &view{Lang: pageLang(w, r), Page: "signin"}
		v.T = texts(v.Lang)
		v.Title, v.Error = v.T["signin"], v.T["bad_token"]
		if s.cfg.Demo {
			v.Data = s.cfg.DemoSubjects
		}
		s.render(w, http.StatusUnauthorized, v)
		return
	}
	s.startSession(w, r, tok)
}

// pageDemo signs in as one of the configured demo subjects; it exists only
// when the server runs as a demo.
func (s *Server) pageDemo(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("subject")
	if !s.cfg.Demo || !slices.Contains(s.cfg.DemoSubjects, id) {
		http.Error(w, "no such demo subject", http.StatusNotFound)
		return
	}
	ps := s.cfg.Keys.Pseudonym(id)
	if _, err := s.record(r, audit.Record{Kind: "token", Actor: "demo", Pseudonym: ps, Action: "issue"}); err != nil {
		http.Error(w, portrait.ErrorMessage(err), http.StatusServiceUnavailable)
		return
	}
	s.startSession(w, r, s.cfg.Keys.IssueToken(ps, s.cfg.TokenTTL))
}

// pageSignout ends the session on every node, not only in this browser:
// a copy of the cookie stops working too.
func (s *Server) pageSignout(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	ck, _ := r.Cookie(sessionCookie) // session has checked it
	t, err := s.cfg.Keys.ParseToken(ck.Value, time.Now())
	if err == nil {
		err = s.endSession(r.Context(), ck.Value, t.Expires, audit.Record{Kind: "token", Time: time.Now().UTC(), Actor: "subject", Pseudonym: c.Pseudonym, Action: "signout"})
	}
	if err != nil {
		v.Page, v.Title = "home", v.T["centre"]
		v.Data = overview{}
		s.fail(w, v, err)
		return
	}
	clearSession(w)
	http.Redirect(w, r, "/privacy/?done=signout", http.StatusSeeOther)
}

func (s *Server) pageNotice(w http.ResponseWriter, r *http.Request) {
	v := &view{Lang: pageLang(w, r), Page: "notice"}
	v.T = texts(v.Lang)
	v.Title = v.T["notice"]
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if _, err := s.checkSubjectToken(r.Context(), ck.Value); err == nil {
			v.Signed, v.CSRF = true, s.csrf(ck.Value)
		}
	}
	v.Data = s.cfg.Rights.Notice(v.Lang)
	s.render(w, http.StatusOK, v)
}

type overview struct{ Granted, Labels, Level, Open int }

func (s *Server) pageOverview(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	v.Page, v.Title = "home", v.T["centre"]
	st, err := s.cfg.Ledger.State(r.Context(), c.Pseudonym)
	if err != nil {
		s.fail(w, v, err)
		return
	}
	o := overview{Level: st.Personalization}
	for _, cs := range st.Consents {
		if cs.Status == policy.Granted {
			o.Granted++
		}
	}
	if ls, err := s.cfg.Rights.Labels(r.Context(), c, c.Pseudonym); err == nil {
		o.Labels = len(ls)
	}
	if cs, err := s.cfg.Rights.Cases(r.Context(), c.Pseudonym); err == nil {
		for _, x := range cs {
			if x.Status == rights.StatusOpen {
				o.Open++
			}
		}
	}
	v.Data = o
	s.render(w, http.StatusOK, v)
}

func (s *Server) pageConsents(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	v.Page, v.Title = "consents", v.T["consents"]
	st, err := s.cfg.Ledger.State(r.Context(), c.Pseudonym)
	if err != nil {
		s.fail(w, v, err)
		return
	}
	v.Data = s.consentCards(r.Context(), rights.Consents(s.cfg.Point.Catalog(), st), v)
	s.render(w, http.StatusOK, v)
}

// consentCard is a purpose on the consents page; Why says, when consent
// was given under an older notice version, what changed since and so why
// it is asked for again (CN-3).
type consentCard struct {
	rights.ConsentEntry
	Why, Changes string
}

func (s *Server) consentCards(ctx context.Context, list []rights.ConsentEntry, v *view) []consentCard {
	out := make([]consentCard, len(list))
	for i, e := range list {
		out[i].ConsentEntry = e
		if e.Basis != string(catalog.BasisConsent) || e.Status != policy.Granted.String() || e.NoticeVersion == e.Current || s.cfg.Oversight == nil {
			continue
		}
		out[i].Why = strings.NewReplacer("{from}", e.NoticeVersion, "{to}", e.Current).Replace(v.T["notice_changed"])
		out[i].Changes = v.T["notice_reworded"]
		ch, ok, err := s.cfg.Oversight.NoticeChange(ctx, e.Purpose, e.NoticeVersion)
		if err != nil {
			s.cfg.Logger.Error("privacy centre: what changed in a notice", "purpose", e.Purpose, "err", err)
			continue
		}
		if ok && !strings.HasPrefix(ch.What, "notice version") {
			out[i].Changes = ch.WhatWords(v.Lang, s.cfg.Point.Catalog())
		}
	}
	return out
}

// postPageConsent grants or withdraws one purpose: one button either way
// (CN-4).
func (s *Server) postPageConsent(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	purpose := r.PathValue("purpose")
	status, err := policy.ParseStatus(r.PostFormValue("action"))
	if err == nil {
		p := s.cfg.Point.Catalog().Purpose(purpose)
		ch := consent.Change{Purpose: purpose, Status: status, Channel: "web", UserAgent: r.UserAgent(), IP: clientIP(r)}
		if p != nil {
			ch.NoticeVersion = p.NoticeVersion
		}
		_, err = s.cfg.Ledger.Record(r.Context(), c, consent.ByPseudonym(c.Pseudonym), ch)
	} else {
		err = portrait.Errorf(portrait.EINVALID, "%v", err)
	}
	if err != nil {
		v.Page, v.Title = "consents", v.T["consents"]
		st, serr := s.cfg.Ledger.State(r.Context(), c.Pseudonym)
		if serr == nil {
			v.Data = s.consentCards(r.Context(), rights.Consents(s.cfg.Point.Catalog(), st), v)
		}
		s.fail(w, v, err)
		return
	}
	back(w, r, "/privacy/consents", "consent", purpose+" · "+v.T[status.String()])
}

func (s *Server) pageLabels(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	v.Page, v.Title = "labels", v.T["labels"]
	ls, err := s.cfg.Rights.Labels(r.Context(), c, c.Pseudonym)
	if err != nil && portrait.ErrorCode(err) != portrait.ENOTFOUND {
		s.fail(w, v, err)
		return
	}
	v.Data = attached(ls, s.cfg.Point.Catalog(), v.Lang)
	s.render(w, http.StatusOK, v)
}

// labelCard is a label as the labels page shows it: once, with the
// purposes it serves in words and one state.
type labelCard struct {
	rights.LabelEntry
	Serves []string
}

// attached keeps the labels actually attached to the person: a rule
// label whose rule the person does not meet is computed but not theirs,
// and the page would contradict its own explanation ("不符合") by listing
// it as in use. Paused and deleted labels stay, so they can be restored.
// Each label appears once. The export (SR-1) still lists everything.
func attached(ls []rights.LabelEntry, cat *catalog.Catalog, lang string) []labelCard {
	var out []labelCard
	seen := map[string]bool{}
	for _, e := range ls {
		if seen[e.Label] {
			continue
		}
		if e.Status != rights.LabelDeleted && (e.Value == nil || (e.Value.Kind == catalog.KindRule && !e.Value.Bool)) {
			continue
		}
		seen[e.Label] = true
		c := labelCard{LabelEntry: e}
		for _, p := range e.Purposes {
			if pp := cat.Purpose(p); pp != nil {
				c.Serves = append(c.Serves, pp.Notice.In(lang))
			}
		}
		out = append(out, c)
	}
	return out
}

func (s *Server) postPageLabel(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	lbl, action := r.PathValue("label"), r.PostFormValue("action")
	var err error
	if action == "restore" {
		err = s.cfg.Rights.RestoreLabel(r.Context(), c, c.Pseudonym, lbl)
	} else {
		err = s.cfg.Rights.SuppressLabel(r.Context(), c, c.Pseudonym, lbl, action)
	}
	if err != nil {
		v.Page, v.Title = "labels", v.T["labels"]
		ls, _ := s.cfg.Rights.Labels(r.Context(), c, c.Pseudonym)
		v.Data = attached(ls, s.cfg.Point.Catalog(), v.Lang)
		s.fail(w, v, err)
		return
	}
	name := lbl
	if l := s.cfg.Point.Catalog().Label(lbl); l != nil && l.Name.In(v.Lang) != "" {
		name = l.Name.In(v.Lang)
	}
	back(w, r, "/privacy/labels", "label", name+" · "+v.T[map[string]string{"restore": "active", "deselect": "deselected", "delete": "deleted"}[action]])
}

type dial struct {
	Level                                        int
	Restricted, ObjectProfiling, ObjectMarketing bool
}

func (s *Server) dialView(r *http.Request, c policy.Caller, v *view) error {
	v.Page, v.Title = "personalization", v.T["personalization"]
	st, err := s.cfg.Ledger.State(r.Context(), c.Pseudonym)
	if err != nil {
		return err
	}
	v.Data = dial{Level: st.Personalization, Restricted: st.Restricted, ObjectProfiling: st.ObjectProfiling, ObjectMarketing: st.ObjectMarketing}
	return nil
}

func (s *Server) pagePersonalization(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	if err := s.dialView(r, c, v); err != nil {
		s.fail(w, v, err)
		return
	}
	s.render(w, http.StatusOK, v)
}

func (s *Server) afterChoice(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view, err error, done, what string) {
	if err != nil {
		s.dialView(r, c, v)
		s.fail(w, v, err)
		return
	}
	back(w, r, "/privacy/personalization", done, what)
}

func (s *Server) postPageLevel(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	raw := r.PostFormValue("level")
	level, err := strconv.Atoi(raw)
	if err != nil {
		err = &portrait.Error{Code: portrait.EINVALID, Requirement: "LP-5", Message: "the level must be a whole number from 0 to 100"}
	} else {
		err = s.cfg.Rights.SetPersonalization(r.Context(), c, c.Pseudonym, level)
	}
	s.afterChoice(w, r, c, v, err, "level", raw)
}

func (s *Server) postPageRestriction(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	var err error
	if r.PostFormValue("on") == "1" {
		err = s.cfg.Rights.Restrict(r.Context(), c, c.Pseudonym)
	} else {
		err = s.cfg.Rights.Unrestrict(r.Context(), c, c.Pseudonym)
	}
	s.afterChoice(w, r, c, v, err, "choice", "")
}

func (s *Server) postPageObjection(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	err := s.cfg.Rights.Object(r.Context(), c, c.Pseudonym, r.PostFormValue("kind"), r.PostFormValue("on") != "1")
	s.afterChoice(w, r, c, v, err, "choice", "")
}

func (s *Server) pageExport(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	v.Page, v.Title = "export", v.T["export"]
	s.render(w, http.StatusOK, v)
}

func (s *Server) downloadExport(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	b, err := s.cfg.Rights.Export(r.Context(), c, c.Pseudonym)
	if err != nil {
		v.Page, v.Title = "export", v.T["export"]
		s.fail(w, v, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="portrait-export.json"`)
	json.NewEncoder(w).Encode(b)
}

func (s *Server) pageErasure(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	v.Page, v.Title = "erasure", v.T["erasure"]
	rm, err := s.cfg.Rights.Preview(r.Context(), c, c.Pseudonym)
	if err != nil {
		v.Data = rights.Removal{}
		s.fail(w, v, err)
		return
	}
	v.Data = s.named(rm, v.Lang)
	if r.URL.Query().Get("step") == "confirm" {
		v.Extra = "confirm" // the second, explicit confirmation
	}
	s.render(w, http.StatusOK, v)
}

// named puts the words of the catalog in place of label ids and field
// keys in a removal preview, so the person reads what they lose.
func (s *Server) named(rm rights.Removal, lang string) rights.Removal {
	cat := s.cfg.Point.Catalog()
	labels := make([]string, len(rm.Labels))
	for i, id := range rm.Labels {
		labels[i] = cat.LabelName(id, lang)
	}
	fields := make([]string, len(rm.ProfileFields))
	for i, name := range rm.ProfileFields {
		fields[i] = cat.FieldName(name, lang)
	}
	rm.Labels, rm.ProfileFields = labels, fields
	return rm
}

// postPageErasure erases only after the second confirmation: the box that
// says what is lost must be ticked, so one stray click destroys nothing.
func (s *Server) postPageErasure(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	if r.PostFormValue("confirm") != "yes" {
		v.Page, v.Title, v.Extra = "erasure", v.T["erasure"], "confirm"
		rm, err := s.cfg.Rights.Preview(r.Context(), c, c.Pseudonym)
		v.Data = s.named(rm, v.Lang)
		if err != nil {
			v.Data = rights.Removal{}
		}
		s.fail(w, v, &portrait.Error{Code: portrait.EINVALID, Requirement: "SR-3", Message: v.T["must_confirm"]})
		return
	}
	res, err := s.cfg.Rights.Erase(r.Context(), c, c.Pseudonym)
	if err != nil {
		v.Page, v.Title, v.Data = "erasure", v.T["erasure"], rights.Removal{}
		s.fail(w, v, err)
		return
	}
	clearSession(w)
	v.Page, v.Title, v.Signed, v.Data = "erased", v.T["erased"], false, res
	b, _ := json.MarshalIndent(res.Receipt, "", "  ")
	v.Extra = string(b)
	s.render(w, http.StatusOK, v)
}

// requestTypes are the requests a subject files from the requests page for
// staff to handle (SR-4); everything else the centre does at once.
var requestTypes = []string{rights.TypeAccess, rights.TypeExplanation, rights.TypeObjection}

func (s *Server) requestsView(r *http.Request, c policy.Caller, v *view) error {
	v.Page, v.Title = "requests", v.T["requests"]
	cs, err := s.cfg.Rights.Cases(r.Context(), c.Pseudonym)
	v.Data, v.Extra = cs, ""
	return err
}

func (s *Server) pageRequests(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	if err := s.requestsView(r, c, v); err != nil {
		s.fail(w, v, err)
		return
	}
	s.render(w, http.StatusOK, v)
}

// postPageRequest files a request that goes to the staff queue (SR-4).
func (s *Server) postPageRequest(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	typ := r.PostFormValue("type")
	var err error
	if !slices.Contains(requestTypes, typ) {
		err = portrait.Errorf(portrait.EINVALID, "request type %q: choose access, explanation or objection", typ)
	} else {
		_, err = s.cfg.Rights.Request(r.Context(), c, c.Pseudonym, typ)
	}
	if err != nil {
		s.requestsView(r, c, v)
		s.fail(w, v, err)
		return
	}
	back(w, r, "/privacy/requests", "request", v.T["type_"+typ])
}

// profileField is one declared profile field with its current value, as
// the correction form shows it.
type profileField struct {
	Name, Title, Type, Category, Value, Source string
	Set                                        bool
}

func (s *Server) profileView(r *http.Request, c policy.Caller, v *view) error {
	v.Page, v.Title = "profile", v.T["profile"]
	got, err := s.cfg.Rights.Profile(r.Context(), c, c.Pseudonym)
	if err != nil && portrait.ErrorCode(err) != portrait.ENOTFOUND {
		return err
	}
	have := map[string]rights.ProfileEntry{}
	for _, e := range got {
		have[e.Field] = e
	}
	var out []profileField
	for _, f := range s.cfg.Point.Catalog().Fields {
		if !f.Profile || f.Protected {
			continue
		}
		pf := profileField{Name: f.Name, Title: s.cfg.Point.Catalog().FieldName(f.Name, v.Lang), Type: f.Type, Category: f.Category}
		if pf.Type == "" {
			pf.Type = "string"
		}
		if e, ok := have[f.Name]; ok {
			pf.Set, pf.Source = true, e.Source
			if str, ok := e.Value.(string); ok {
				pf.Value = str
			} else {
				b, _ := json.Marshal(e.Value)
				pf.Value = string(b)
			}
		}
		out = append(out, pf)
	}
	v.Data = out
	return nil
}

func (s *Server) pageProfile(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	if err := s.profileView(r, c, v); err != nil {
		s.fail(w, v, err)
		return
	}
	s.render(w, http.StatusOK, v)
}

// formValue turns a form's text into the declared type of field, so that
// the rights service type-checks a number as a number; text that is not of
// the type goes through as text and is refused there with the reason
// (CM-2).
func formValue(typ, raw string) any {
	switch typ {
	case "number":
		if n, err := strconv.ParseFloat(raw, 64); err == nil {
			return n
		}
	case "bool":
		if b, err := strconv.ParseBool(raw); err == nil {
			return b
		}
	}
	return raw
}

// postPageCorrection corrects one profile field (CM-2); the page it
// returns to shows the stored value at once.
func (s *Server) postPageCorrection(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	field := r.PathValue("field")
	typ := ""
	if f := s.cfg.Point.Catalog().Field(field); f != nil {
		typ = f.Type
	}
	err := s.cfg.Rights.Correct(r.Context(), c, c.Pseudonym, field, formValue(typ, r.PostFormValue("value")))
	if err != nil {
		s.profileView(r, c, v)
		s.fail(w, v, err)
		return
	}
	back(w, r, "/privacy/profile", "corrected", s.cfg.Point.Catalog().FieldName(field, v.Lang))
}

// myDecision is one automated decision as the decisions page shows it.
type myDecision struct {
	review.Mine
	Explanation string
	Open        bool // a review is under way: no second appeal
	// Result and ScoreText are Final, Outcome and Score rendered: the
	// template cannot tell a false *bool from a true one.
	Result, ScoreText string
}

func (s *Server) decisionsView(r *http.Request, c policy.Caller, v *view) error {
	v.Page, v.Title = "decisions", v.T["my_decisions"]
	if s.cfg.Review == nil {
		v.Data = []myDecision{}
		return nil
	}
	list, err := s.cfg.Review.Decisions(r.Context(), c, c.Pseudonym)
	if err != nil {
		return err
	}
	out := make([]myDecision, 0, len(list))
	for _, m := range list {
		d := myDecision{Mine: m}
		verdict := func(b bool) string {
			if b {
				return v.T["approved"]
			}
			return v.T["declined"]
		}
		switch {
		case m.Final != nil:
			d.Result = verdict(*m.Final)
		case m.Outcome != nil:
			d.Result = verdict(*m.Outcome) + " · " + v.T["under_review"]
		default:
			d.Result = v.T["under_review"]
		}
		if m.Score != nil {
			d.ScoreText = strconv.FormatFloat(*m.Score, 'f', 3, 64)
		}
		if m.Detail != nil {
			d.Explanation = m.Detail.Explanation[v.Lang]
		}
		for _, rv := range m.Reviews {
			d.Open = d.Open || rv.Status == review.StatusOpen
		}
		out = append(out, d)
	}
	v.Data = out
	return nil
}

func (s *Server) pageDecisions(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	if err := s.decisionsView(r, c, v); err != nil {
		s.fail(w, v, err)
		return
	}
	s.render(w, http.StatusOK, v)
}

// postPageAppeal appeals one of the subject's own decisions with their
// statement (AD-3): a human reviewer takes it from the review queue.
func (s *Server) postPageAppeal(w http.ResponseWriter, r *http.Request, c policy.Caller, v *view) {
	var err error
	if s.cfg.Review == nil {
		err = portrait.Errorf(portrait.EUNAVAILABLE, "human review is not available on this server")
	} else {
		_, err = s.cfg.Review.Appeal(r.Context(), c, r.PathValue("id"), review.KindAppeal, r.PostFormValue("statement"))
	}
	if err != nil {
		s.decisionsView(r, c, v)
		s.fail(w, v, err)
		return
	}
	back(w, r, "/privacy/decisions", "appeal", "")
}
