package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/rights"
	"github.com/portrait-dev/portrait/witness"
)

// section is one part of the staff console: a page and the roles that may
// read it. The roles are those of the API routes whose services the page
// uses, so the console never shows more than the API would.
type section struct {
	Path, Key string
	Roles     []policy.Role
}

// caseReaders may list data-subject requests (GET /v1/cases).
var caseReaders = []policy.Role{policy.Admin, policy.Operator, policy.Auditor, policy.Regulator}

// consoleSections are the console's sections in the order of its
// navigation bar.
var consoleSections = []section{
	{"/console/reviews", "reviews", reviewReaders},
	{"/console/cases", "cases", caseReaders},
	{"/console/log", "log", staff},
	{"/console/reports", "reports", inspectors},
	{"/console/breaches", "breaches", inspectors},
	{"/console/orders", "orders", staff},
	{"/console/monitor", "monitor", monitorStaff},
	{"/console/records", "records", inspectors},
	{"/console/filing", "filing", inspectors},
}

// ConsoleSection is a console page and the roles that may open it, for
// the role-matrix test.
type ConsoleSection struct {
	Path  string
	Roles []policy.Role
}

// ConsoleSections lists the console's sections.
func ConsoleSections() []ConsoleSection {
	out := make([]ConsoleSection, len(consoleSections))
	for i, s := range consoleSections {
		out[i] = ConsoleSection{s.Path, s.Roles}
	}
	return out
}

type navItem struct {
	Path, Key, Text string
	Current         bool
}

// nav is the navigation bar for c: only the sections c may open.
func nav(c policy.Caller, page string, t map[string]string) []navItem {
	var out []navItem
	for _, s := range consoleSections {
		if !slices.Contains(s.Roles, c.Role) {
			continue
		}
		text := t[s.Key]
		if s.Key == "reviews" && c.Role != policy.Reviewer {
			text = t["overdue_report"]
		}
		out = append(out, navItem{Path: s.Path, Key: s.Key, Text: text, Current: s.Key == page || (s.Key == "reviews" && page == "case") || (s.Key == "log" && page == "entry")})
	}
	return out
}

func sectionByKey(key string) section {
	for _, s := range consoleSections {
		if s.Key == key {
			return s
		}
	}
	panic("console: no section " + key)
}

// section authenticates as staffSession does and then refuses, with a
// page in the console's language, a role the section is not for.
func (s *Server) section(key string, h staffHandler) http.HandlerFunc {
	sec := sectionByKey(key)
	return s.staffSession(func(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
		v.Page, v.Title = key, v.T[key]
		if !slices.Contains(sec.Roles, c.Role) {
			v.Page, v.Title = "refused", v.T["refused"]
			v.Error = strings.ReplaceAll(v.T["not_for_role"], "{role}", v.T["role_"+string(c.Role)])
			s.renderConsole(w, http.StatusForbidden, v)
			return
		}
		h(w, r, c, v)
	})
}

// --- data-subject requests ---------------------------------------------

type caseRow struct {
	portrait.Case
	Overdue bool
	Left    string
}

type casesData struct {
	Rows           []caseRow
	Overdue, Open  int
	CanAnswer      bool
	Answer, Status string
}

func (s *Server) consoleCases(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Rights == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "subject rights are not configured on this server"))
		return
	}
	if err := s.casesView(r, c, v); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	s.renderConsole(w, http.StatusOK, v)
}

// maxConsoleRows bounds a console table; the API has the full lists.
const maxConsoleRows = 200

func (s *Server) casesView(r *http.Request, c policy.Caller, v *consoleView) error {
	all, err := s.cfg.Rights.Cases(r.Context(), "")
	if err != nil {
		return err
	}
	now := time.Now()
	d := &casesData{CanAnswer: c.Role == policy.Admin || c.Role == policy.Operator}
	for _, cs := range all {
		if !rights.IsRequest(cs.Type) {
			continue
		}
		row := caseRow{Case: cs}
		if cs.Status == rights.StatusOpen {
			d.Open++
			left := cs.Deadline.Sub(now).Round(time.Hour)
			if row.Overdue = now.After(cs.Deadline); row.Overdue {
				d.Overdue++
				left = -left
			}
			row.Left = humanDuration(left, v.T)
		}
		d.Rows = append(d.Rows, row)
	}
	// Open cases first, by deadline, so the overdue lead; closed ones
	// after, newest first.
	slices.SortStableFunc(d.Rows, func(a, b caseRow) int {
		ao, bo := a.Status == rights.StatusOpen, b.Status == rights.StatusOpen
		switch {
		case ao && !bo:
			return -1
		case bo && !ao:
			return 1
		case ao:
			return a.Deadline.Compare(b.Deadline)
		}
		return b.Closed.Compare(a.Closed)
	})
	if len(d.Rows) > maxConsoleRows {
		d.Rows = d.Rows[:maxConsoleRows]
	}
	v.Data = d
	return nil
}

// consoleCloseCase answers a request through rights.Close, which checks
// the role and the case as POST /v1/cases/{case}/close does.
func (s *Server) consoleCloseCase(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Rights == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "subject rights are not configured on this server"))
		return
	}
	status, text := r.PostFormValue("status"), strings.TrimSpace(r.PostFormValue("text"))
	var err error
	if status != rights.StatusFulfilled && status != rights.StatusRefused {
		err = portrait.Errorf(portrait.EINVALID, "status %q: want fulfilled or refused", status)
	} else {
		_, err = s.cfg.Rights.Close(r.Context(), c, r.PathValue("id"), status == rights.StatusRefused, text)
	}
	if err != nil {
		if verr := s.casesView(r, c, v); verr != nil {
			err = verr
		} else {
			d := v.Data.(*casesData)
			d.Answer, d.Status = text, status
		}
		s.consoleFail(w, v, err)
		return
	}
	http.Redirect(w, r, "/console/cases?done=case_"+url.QueryEscape(status), http.StatusSeeOther)
}

// --- the audit log ------------------------------------------------------

type logRow struct {
	Index int64
	audit.Record
	Words string
}

type logData struct {
	Rows           []logRow
	Kind, From, To string
	Kinds          []string
	Size           int64
	More           bool
}

// logKinds are the record kinds offered in the search form.
var logKinds = []string{"decision", "consent", "request", "review", "erasure", "suspension", "oversight", "breach", "report", "alert", "ingest", "audience", "console", "key"}

func parseDay(v string, end bool) (time.Time, bool) {
	if v == "" {
		return time.Time{}, true
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, false
	}
	if end {
		t = t.Add(24 * time.Hour)
	}
	return t, true
}

// consoleLog searches the audit log by kind and day, newest first.
func (s *Server) consoleLog(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	q := r.URL.Query()
	d := &logData{Kind: q.Get("kind"), From: q.Get("from"), To: q.Get("to"), Kinds: logKinds}
	v.Data = d
	from, ok1 := parseDay(d.From, false)
	to, ok2 := parseDay(d.To, true)
	if !ok1 || !ok2 {
		s.consoleFail(w, v, portrait.Errorf(portrait.EINVALID, "a day is written YYYY-MM-DD"))
		return
	}
	ctx := r.Context()
	size, err := s.cfg.Store.LogSize(ctx)
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	d.Size = size
	// Read backwards in windows until enough rows match: the log may be
	// long, and a page shows at most maxConsoleRows.
	const window = 2048
	for hi := size; hi > 0 && len(d.Rows) < maxConsoleRows; hi -= window {
		lo := max(0, hi-window)
		// Rows are read through the verifier, so a record that does not
		// match the signed tree is shown as the error it is (invariant 8).
		var es []audit.Entry
		if d.Kind != "" {
			es, err = s.cfg.Log.ReadVerifiedKinds(ctx, s.cfg.Store, []string{d.Kind}, lo, hi)
		} else {
			es, err = s.cfg.Log.ReadVerified(ctx, s.cfg.Store, lo, hi)
		}
		if err != nil {
			s.consoleFail(w, v, err)
			return
		}
		for i := len(es) - 1; i >= 0; i-- {
			rec := es[i].Record
			if (!from.IsZero() && rec.Time.Before(from)) || (!to.IsZero() && !rec.Time.Before(to)) {
				continue
			}
			if len(d.Rows) == maxConsoleRows {
				d.More = true
				break
			}
			d.Rows = append(d.Rows, logRow{Index: es[i].Index, Record: rec, Words: kindWord(v.T, rec.Kind)})
		}
	}
	s.renderConsole(w, http.StatusOK, v)
}

func kindWord(t map[string]string, kind string) string {
	if w, ok := t["lk_"+kind]; ok {
		return w
	}
	return kind
}

type entryData struct {
	Index      int64
	Record     audit.Record
	Words      string
	JSON       string
	Checkpoint audit.Checkpoint
	Root       string
	Proof      []string
	Verified   bool
	Problem    string
	// Witness names the joined regulator's cosignature on the published
	// checkpoint, checked by this page with the regulator's key, and
	// WitnessAt its time; WitnessProblem says why it did not verify.
	Witness        string
	WitnessAt      time.Time
	WitnessProblem string
	// Cosigners name other signatures on the published checkpoint that
	// this page cannot check (no regulator key known): shown as unchecked.
	Cosigners []string
	// Fresh says the entry is newer than the published checkpoint, so the
	// page signed the tree as it is now (not yet cosigned).
	Fresh bool
}

// consoleEntry shows one entry and checks, here and now, that the signed
// checkpoint includes it: the proof is computed from the stored tree and
// verified against the checkpoint's root with the log's public key, as
// an outside verifier would (FA-6).
func (s *Server) consoleEntry(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	v.Page, v.Title = "entry", v.T["entry"]
	ctx := r.Context()
	i, err := intParam("index", r.PathValue("index"))
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	data, err := s.cfg.Log.Entry(ctx, s.cfg.Store, i)
	if err != nil {
		s.consoleFail(w, v, logErr(err))
		return
	}
	d := &entryData{Index: i}
	v.Data = d
	var pretty bytes.Buffer
	json.Indent(&pretty, data, "", "  ")
	d.JSON = pretty.String()
	json.Unmarshal(data, &d.Record)
	d.Words = kindWord(v.T, d.Record.Kind)
	note, err := s.cfg.Store.Checkpoint(ctx)
	var cp audit.Checkpoint
	if err == nil && len(note) > 0 {
		cp, err = audit.ParseCheckpoint(note, s.cfg.Log.VerifierKey())
	}
	if err == nil && len(note) > 0 && cp.Size > i {
		s.checkCosignature(d, note)
	}
	if err != nil || len(note) == 0 || cp.Size <= i {
		// Not yet covered by a published checkpoint: sign the tree as it
		// is now, which includes every entry written.
		d.Fresh = true
		if note, err = s.cfg.Log.Sign(ctx, s.cfg.Store); err == nil {
			cp, err = audit.ParseCheckpoint(note, s.cfg.Log.VerifierKey())
		}
	}
	if err != nil {
		d.Problem = err.Error()
		s.renderConsole(w, http.StatusOK, v)
		return
	}
	d.Checkpoint, d.Root = cp, b64(cp.Hash)
	p, err := s.cfg.Log.InclusionProof(ctx, s.cfg.Store, i, cp.Size)
	if err != nil {
		d.Problem = err.Error()
		s.renderConsole(w, http.StatusOK, v)
		return
	}
	proof := make(tlog.RecordProof, len(p))
	for j, h := range p {
		proof[j] = h
		d.Proof = append(d.Proof, b64(h))
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, i, tlog.RecordHash(data)); err != nil {
		d.Problem = err.Error()
	} else {
		d.Verified = true
	}
	s.renderConsole(w, http.StatusOK, v)
}

// checkCosignature checks the joined regulator's cosignature on the
// published checkpoint msg with the regulator's key, here and now: the
// checkpoint comes from the store, which the company can write, so that it
// was checked before publishing is not evidence (nothing unverified is
// trusted). Without a regulator key the other signatures are only named.
func (s *Server) checkCosignature(d *entryData, msg []byte) {
	others := cosigners(msg, s.cfg.Log.VerifierKey())
	v := s.witness.Load()
	if v == nil {
		d.Cosigners = others
		return
	}
	sig, err := witness.Verify(msg, v)
	if err != nil {
		d.WitnessProblem = err.Error()
		return
	}
	d.Witness = v.Name()
	d.WitnessAt, _ = witness.Time(sig)
}

// cosigners returns the names of the signatures on a checkpoint other
// than the log's own (the regulator's witness when joined).
func cosigners(msg []byte, logKey string) []string {
	v, err := note.NewVerifier(strings.TrimSpace(logKey))
	if err != nil {
		return nil
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range n.UnverifiedSigs {
		out = append(out, s.Name)
	}
	return out
}

// --- violation reports and breaches ------------------------------------

type reportsData struct {
	Rows      []reportRow
	Overdue   int
	CanAnswer bool
	Answer    string
}

type reportRow struct {
	Report any
	ID     string
	Open   bool
	Late   bool
	Left   string
}

func (s *Server) consoleReports(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Oversight == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "oversight is not configured on this server"))
		return
	}
	if err := s.reportsView(r, c, v); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	s.renderConsole(w, http.StatusOK, v)
}

func (s *Server) reportsView(r *http.Request, c policy.Caller, v *consoleView) error {
	list, err := s.cfg.Oversight.Reports(r.Context())
	if err != nil {
		return err
	}
	now := time.Now()
	d := &reportsData{CanAnswer: c.Role == policy.Admin}
	slices.SortStableFunc(list, func(a, b oversightReport) int {
		if (a.Status == "open") != (b.Status == "open") {
			if a.Status == "open" {
				return -1
			}
			return 1
		}
		return a.Deadline.Compare(b.Deadline)
	})
	for _, rp := range list {
		row := reportRow{Report: rp, ID: rp.ID, Open: rp.Status == "open", Late: rp.Overdue}
		if row.Open {
			left := rp.Deadline.Sub(now).Round(time.Hour)
			if row.Late {
				d.Overdue++
				left = -left
			}
			row.Left = humanDuration(left, v.T)
		}
		d.Rows = append(d.Rows, row)
	}
	v.Data = d
	return nil
}

func (s *Server) consoleAnswerReport(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Oversight == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "oversight is not configured on this server"))
		return
	}
	answer := strings.TrimSpace(r.PostFormValue("answer"))
	if _, err := s.cfg.Oversight.Answer(r.Context(), c, r.PathValue("id"), answer); err != nil {
		if verr := s.reportsView(r, c, v); verr != nil {
			err = verr
		} else {
			v.Data.(*reportsData).Answer = answer
		}
		s.consoleFail(w, v, err)
		return
	}
	http.Redirect(w, r, "/console/reports?done=report", http.StatusSeeOther)
}

func (s *Server) consoleBreaches(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Oversight == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "oversight is not configured on this server"))
		return
	}
	list, err := s.cfg.Oversight.Breaches(r.Context())
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	slices.SortStableFunc(list, func(a, b oversightBreach) int { return b.Reported.Compare(a.Reported) })
	type row struct {
		oversightBreach
		Text string
	}
	var rows []row
	for _, b := range list {
		t := b.Notice[v.Lang]
		if t == "" {
			t = b.Notice["zh-CN"]
		}
		rows = append(rows, row{b, t})
	}
	v.Data = rows
	s.renderConsole(w, http.StatusOK, v)
}

// --- orders: suspensions and halts --------------------------------------

type ordersData struct {
	InForce []policy.Suspension
	History []logRow
}

// consoleOrders lists what is suspended or halted now, and the history of
// orders from the audit log, newest first.
func (s *Server) consoleOrders(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	ctx := r.Context()
	list, err := s.cfg.Store.Suspensions(ctx)
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	size, err := s.cfg.Store.LogSize(ctx)
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	// The history an officer reads is the signed one: a record that does
	// not match the tree is an error here, not a row (invariant 8).
	es, err := s.cfg.Log.ReadVerifiedKinds(ctx, s.cfg.Store, []string{"suspension", "oversight"}, 0, size)
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	d := &ordersData{InForce: list}
	for i := len(es) - 1; i >= 0 && len(d.History) < maxConsoleRows; i-- {
		rec := es[i].Record
		d.History = append(d.History, logRow{Index: es[i].Index, Record: rec, Words: kindWord(v.T, rec.Kind)})
	}
	v.Data = d
	s.renderConsole(w, http.StatusOK, v)
}

// --- monitor ------------------------------------------------------------

// consoleMonitor shows the latest monitor report as the monitor package
// writes it (charts first, per-subject alerts summarised), inside the
// console's page.
func (s *Server) consoleMonitor(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	rep, err := s.latestReport()
	if err != nil {
		if portrait.ErrorCode(err) == portrait.ENOTFOUND {
			v.Flash = v.T["no_report"]
			s.renderConsole(w, http.StatusOK, v)
			return
		}
		s.consoleFail(w, v, err)
		return
	}
	var buf bytes.Buffer
	if err := monitor.WriteFragment(&buf, rep, v.Lang, v.Word); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	v.Data = template.HTML(buf.String()) // rendered by html/template
	s.renderConsole(w, http.StatusOK, v)
}

// --- records and filing -------------------------------------------------

func (s *Server) consoleRecords(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Oversight == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "oversight is not configured on this server"))
		return
	}
	var buf bytes.Buffer
	if err := s.cfg.Oversight.Processing(v.Lang).Fragment(&buf); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	v.Data = template.HTML(buf.String()) // rendered by html/template
	s.renderConsole(w, http.StatusOK, v)
}

func (s *Server) consoleFiling(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Oversight == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "oversight is not configured on this server"))
		return
	}
	f, err := s.cfg.Oversight.Filing(r.Context(), v.Lang)
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	var buf bytes.Buffer
	if err := f.Fragment(&buf); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	v.Data = template.HTML(buf.String()) // rendered by html/template
	s.renderConsole(w, http.StatusOK, v)
}

func b64(h [32]byte) string { return base64.StdEncoding.EncodeToString(h[:]) }

type (
	oversightReport = oversight.Report
	oversightBreach = oversight.Breach
)
