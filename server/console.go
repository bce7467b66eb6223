package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/review"
)

// Cookies of the staff console. They are scoped to /console/ so that the
// privacy centre never sees a staff session and the console never sees a
// subject's.
const (
	consoleCookie     = "portrait_console"
	consoleLangCookie = "portrait_console_lang"
	// consoleTTL bounds a console session: a working day.
	consoleTTL = 8 * time.Hour
)

var consolePageNames = []string{"signin", "reviews", "case", "refused", "cases", "log", "entry", "reports", "breaches", "orders", "monitor", "records", "filing"}

var consolePages = func() map[string]*template.Template {
	m := make(map[string]*template.Template, len(consolePageNames))
	for _, n := range consolePageNames {
		m[n] = template.Must(template.New("").Funcs(consoleFuncs).ParseFS(templateFS, "templates/console_layout.html", "templates/console_"+n+".html"))
	}
	return m
}()

var consoleFuncs = template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"num":  func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) },
	"signed": func(f float64) string {
		s := strconv.FormatFloat(f, 'f', 3, 64)
		if f >= 0 {
			s = "+" + s
		}
		return s
	},
}

// reviewReaders may open /console/reviews: reviewers see the queue they
// work, the others the overdue report, as GET /v1/reviews and
// GET /v1/reviews/overdue allow (review.Queue, review.Overdue).
var reviewReaders = []policy.Role{policy.Reviewer, policy.Admin, policy.Auditor, policy.Regulator}

// consoleView is what every console template gets; html/template escapes
// all of it in context.
type consoleView struct {
	Lang, Page, Title, CSRF, Flash, Error string
	Caller                                policy.Caller
	Signed                                bool
	T                                     map[string]string
	Data                                  any
	Nav                                   []navItem
	cat                                   *catalog.Catalog // for Word
}

// Console serves the staff console pages under /console/: a sign-in form,
// the human-review queue and case pages (AD-2, AD-3, RO-7), and the
// sections of consoleSections (requests, audit log, reports, breaches,
// orders, monitor, records, filing), each through the service its API
// route uses and open to the same roles.
//
// A browser cannot send the Bearer header a plain link needs, so staff
// sign in once with their API key. The key itself is never put in the
// cookie: the session cookie holds the SHA-256 of the key (what the store
// indexes keys by, and useless as a Bearer token), an expiry, and an HMAC
// of both under a key derived from the master key, so any node sharing
// the master key accepts it, nobody can forge or extend one, and a key
// removed from the store ends its sessions at the next request. The
// cookie is HttpOnly, SameSite=Strict, Secure under TLS and scoped to
// /console/; every POST carries a CSRF token bound to the session and is
// refused when the browser says it comes from another site.
func (s *Server) Console() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/reviews", http.StatusSeeOther)
	})
	m.HandleFunc("GET /console/signin", s.consoleSigninPage)
	m.HandleFunc("POST /console/signin", s.consoleSignin)
	m.HandleFunc("POST /console/signout", s.staffSession(s.consoleSignout))
	m.HandleFunc("GET /console/reviews", s.section("reviews", s.consoleReviews))
	m.HandleFunc("GET /console/reviews/{id}", s.staffSession(s.consoleCase))
	m.HandleFunc("POST /console/reviews/{id}", s.staffSession(s.consoleDecide))
	m.HandleFunc("GET /console/cases", s.section("cases", s.consoleCases))
	m.HandleFunc("POST /console/cases/{id}", s.section("cases", s.consoleCloseCase))
	m.HandleFunc("GET /console/log", s.section("log", s.consoleLog))
	m.HandleFunc("GET /console/log/{index}", s.section("log", s.consoleEntry))
	m.HandleFunc("GET /console/reports", s.section("reports", s.consoleReports))
	m.HandleFunc("POST /console/reports/{id}", s.section("reports", s.consoleAnswerReport))
	m.HandleFunc("GET /console/breaches", s.section("breaches", s.consoleBreaches))
	m.HandleFunc("GET /console/orders", s.section("orders", s.consoleOrders))
	m.HandleFunc("GET /console/monitor", s.section("monitor", s.consoleMonitor))
	m.HandleFunc("GET /console/records", s.section("records", s.consoleRecords))
	m.HandleFunc("GET /console/filing", s.section("filing", s.consoleFiling))
	s.consoleChangesRoutes(m)
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

func consoleLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh-CN" {
		http.SetCookie(w, &http.Cookie{Name: consoleLangCookie, Value: l, Path: "/console/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, HttpOnly: true})
		return l
	}
	if c, err := r.Cookie(consoleLangCookie); err == nil && (c.Value == "en" || c.Value == "zh-CN") {
		return c.Value
	}
	return "zh-CN"
}

// newStaffSession mints a console session for an API key's SHA-256
// (keys.StaffSessions: the cookie never holds the key).
func (s *Server) newStaffSession(keyHash []byte, exp time.Time) string {
	return s.cfg.Keys.StaffSessions().New(keyHash, exp)
}

// checkStaffSession verifies a session value and returns the caller of
// the API key it names, looked up in the store again.
func (s *Server) checkStaffSession(r *http.Request, v string) (policy.Caller, bool) {
	hash, err := s.cfg.Keys.StaffSessions().Check(v, time.Now())
	if err != nil {
		return policy.Caller{}, false
	}
	c, err := s.cfg.Staff.CheckHash(r.Context(), hash)
	if err != nil || !slices.Contains(policy.Roles, c.Role) {
		return policy.Caller{}, false
	}
	// Signed out on any node: console sessions carry no issue time, so
	// any record under their id ends them.
	if ended, err := s.cfg.Store.SessionEnded(r.Context(), time.Unix(0, 0), keys.SessionID(v)); err != nil || ended {
		return policy.Caller{}, false
	}
	noteCaller(r.Context(), c)
	return c, true
}

func (s *Server) consoleView(w http.ResponseWriter, r *http.Request, page string) *consoleView {
	v := &consoleView{Lang: consoleLang(w, r), Page: page, cat: s.cfg.Point.Catalog()}
	v.T = consoleTexts(v.Lang)
	v.Title = v.T[page]
	return v
}

type staffHandler func(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView)

// staffSession authenticates a console page by its session cookie and,
// for POST, checks the CSRF token before anything is done.
func (s *Server) staffSession(h staffHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := s.consoleView(w, r, "signin")
		if r.Header.Get("Authorization") != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			// A script or curl with a Bearer key reads the same pages; a
			// browser never sends the header by itself, so no CSRF check
			// is needed, and writes still go through the form.
			c, err := s.authenticate(r)
			if err != nil || c.Role == "" || c.Role == policy.Subject {
				s.problem(w, r, portrait.Errorf(portrait.EUNAUTHORIZED, "console pages need a staff API key or a console session"))
				return
			}
			v.Signed, v.Caller, v.Nav = true, c, nav(c, "", v.T)
			h(w, r, c, v)
			return
		}
		ck, err := r.Cookie(consoleCookie)
		if err != nil {
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
			return
		}
		c, ok := s.checkStaffSession(r, ck.Value)
		if !ok {
			clearStaffSession(w)
			v.Error = v.T["bad_session"]
			s.renderConsole(w, http.StatusUnauthorized, v)
			return
		}
		v.Signed, v.Caller, v.CSRF = true, c, s.cfg.Keys.StaffSessions().CSRF(ck.Value)
		v.Nav = nav(c, "", v.T)
		if r.Method == http.MethodPost && !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(v.CSRF)) {
			v.Page, v.Title, v.Error = "refused", v.T["refused"], v.T["bad_csrf"]
			s.renderConsole(w, http.StatusForbidden, v)
			return
		}
		if k := r.URL.Query().Get("done"); k != "" {
			v.Flash = v.T["done_"+k]
		}
		h(w, r, c, v)
	}
}

func clearStaffSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: "", Path: "/console/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func (s *Server) renderConsole(w http.ResponseWriter, status int, v *consoleView) {
	if v.Signed {
		v.Nav = nav(v.Caller, v.Page, v.T)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := consolePages[v.Page].ExecuteTemplate(w, "layout", v); err != nil {
		s.cfg.Logger.Error("render console page", "page", v.Page, "err", err)
	}
}

// consoleFail renders page with the error's caller-safe message and the
// status the API would answer with.
func (s *Server) consoleFail(w http.ResponseWriter, v *consoleView, err error) {
	status, msg := statuses[portrait.ErrorCode(err)], portrait.ErrorMessage(err)
	var d *policy.Denied
	var pe *portrait.Error
	switch {
	case errors.As(err, &d):
		status, msg = http.StatusForbidden, d.Reasons[0].Message+" ("+d.Reasons[0].Requirement+")"
	case errors.As(err, &pe) && pe.Requirement != "":
		msg += " (" + pe.Requirement + ")"
	}
	if status == 0 || status >= 500 {
		s.cfg.Logger.Error("staff console", "page", v.Page, "err", err)
		if status == 0 {
			status = http.StatusInternalServerError
		}
	}
	v.Error = msg
	s.renderConsole(w, status, v)
}

func (s *Server) consoleSigninPage(w http.ResponseWriter, r *http.Request) {
	v := s.consoleView(w, r, "signin")
	if r.URL.Query().Get("done") == "signout" {
		v.Flash = v.T["signed_out"]
	}
	s.renderConsole(w, http.StatusOK, v)
}

// consoleSignin checks the API key as the API does and starts a session.
// Sign-ins are recorded in the audit log (fail closed).
func (s *Server) consoleSignin(w http.ResponseWriter, r *http.Request) {
	v := s.consoleView(w, r, "signin")
	key := strings.TrimSpace(r.PostFormValue("key"))
	sum := sha256.Sum256([]byte(key))
	c, err := s.cfg.Staff.CheckHash(r.Context(), sum[:])
	if key == "" || err != nil || !slices.Contains(policy.Roles, c.Role) {
		if err != nil && portrait.ErrorCode(err) != portrait.EUNAUTHORIZED {
			s.consoleFail(w, v, &portrait.Error{Code: portrait.EUNAVAILABLE, Message: "the store is not reachable; try again", Err: err})
			return
		}
		v.Error = v.T["bad_key"]
		s.renderConsole(w, http.StatusUnauthorized, v)
		return
	}
	if _, err := s.record(r, audit.Record{Kind: "console", Time: time.Now().UTC(), Actor: actor(c), Action: "signin"}); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: s.newStaffSession(sum[:], time.Now().Add(consoleTTL)), Path: "/console/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r), MaxAge: int(consoleTTL / time.Second)})
	http.Redirect(w, r, home(c), http.StatusSeeOther)
}

// home is the first section c may open.
func home(c policy.Caller) string {
	for _, s := range consoleSections {
		if slices.Contains(s.Roles, c.Role) {
			return s.Path
		}
	}
	return "/console/log"
}

// consoleSignout ends the session on every node, not only in this
// browser. The session's own expiry is at most consoleTTL away.
func (s *Server) consoleSignout(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	ck, _ := r.Cookie(consoleCookie) // staffSession has checked it
	err := s.endSession(r.Context(), ck.Value, time.Now().Add(consoleTTL), audit.Record{Kind: "console", Time: time.Now().UTC(), Actor: actor(c), Action: "signout"})
	if err != nil {
		v.Page, v.Title = "refused", v.T["refused"]
		s.consoleFail(w, v, err)
		return
	}
	clearStaffSession(w)
	http.Redirect(w, r, "/console/signin?done=signout", http.StatusSeeOther)
}

// queueRow is one review in the queue or the overdue report.
type queueRow struct {
	portrait.Review
	Overdue bool
	Left    string // time left, or time past the deadline
}

type queueData struct {
	Rows []queueRow
	// Report is true when the caller sees the overdue report read-only.
	Report  bool
	Overdue int
}

func (s *Server) consoleReviews(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	v.Page, v.Title = "reviews", v.T["reviews"]
	if s.cfg.Review == nil {
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "human review is not configured on this server"))
		return
	}
	if !slices.Contains(reviewReaders, c.Role) {
		v.Page, v.Title = "refused", v.T["refused"]
		s.consoleFail(w, v, &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "RO-7", Message: "role " + string(c.Role) + " may not read the review queue"})
		return
	}
	var list []portrait.Review
	var err error
	d := queueData{Report: c.Role != policy.Reviewer}
	if d.Report {
		v.Title = v.T["overdue_report"]
		list, err = s.cfg.Review.Overdue(r.Context(), c)
	} else {
		list, err = s.cfg.Review.Queue(r.Context(), c)
	}
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	now := time.Now()
	for _, rv := range list {
		row := queueRow{Review: rv, Overdue: now.After(rv.Deadline)}
		left := rv.Deadline.Sub(now).Round(time.Hour)
		if row.Overdue {
			left = -left
			d.Overdue++
		}
		row.Left = humanDuration(left, v.T)
		d.Rows = append(d.Rows, row)
	}
	// By deadline, so overdue cases come first: the queue is worked in
	// the order the clock runs out.
	slices.SortStableFunc(d.Rows, func(a, b queueRow) int { return a.Deadline.Compare(b.Deadline) })
	v.Data = d
	s.renderConsole(w, http.StatusOK, v)
}

func humanDuration(d time.Duration, t map[string]string) string {
	if d < time.Hour {
		return t["under_hour"]
	}
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	return strconv.Itoa(days) + t["days"] + " " + strconv.Itoa(hours) + t["hours"]
}

// contribution is one feature's part in a decision, for the case table.
type contribution struct {
	Feature      string
	Value, Share float64
	HasValue     bool
}

type caseData struct {
	review.Case
	Overdue       bool
	Explanation   string
	Notice        string
	Contributions []contribution
	Reason        string
	Outcome       string
}

// consoleCase shows one case through review.Case, which refuses every
// role but reviewer and audits the view; a reviewer with a conflict of
// interest sees why and gets no form (RO-7).
func (s *Server) consoleCase(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	v.Page, v.Title = "case", v.T["case"]
	if err := s.caseView(r, c, v); err != nil {
		v.Page, v.Title = "refused", v.T["refused"]
		s.consoleFail(w, v, err)
		return
	}
	s.renderConsole(w, http.StatusOK, v)
}

func (s *Server) caseView(r *http.Request, c policy.Caller, v *consoleView) error {
	if s.cfg.Review == nil {
		return portrait.Errorf(portrait.EUNAVAILABLE, "human review is not configured on this server")
	}
	cs, err := s.cfg.Review.Case(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	d := caseData{Case: cs, Overdue: cs.Review.Status == review.StatusOpen && time.Now().After(cs.Review.Deadline)}
	if cs.Detail != nil {
		d.Explanation, d.Notice = cs.Detail.Explanation.In(v.Lang), cs.Detail.Notice.In(v.Lang)
		for f, x := range cs.Detail.Contributions {
			val, ok := cs.Detail.Features[f]
			d.Contributions = append(d.Contributions, contribution{Feature: f, Share: x, Value: val, HasValue: ok})
		}
		// Largest effect first: what counted most is what the reviewer
		// should weigh first (AD-4).
		slices.SortFunc(d.Contributions, func(a, b contribution) int {
			if x, y := abs(a.Share), abs(b.Share); x != y {
				if x > y {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Feature, b.Feature)
		})
	}
	v.Data = &d
	return nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// consoleDecide upholds or overturns through review.Decide, which enforces
// the reviewer role and separation of duties exactly as the API does.
func (s *Server) consoleDecide(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if s.cfg.Review == nil {
		v.Page, v.Title = "refused", v.T["refused"]
		s.consoleFail(w, v, portrait.Errorf(portrait.EUNAVAILABLE, "human review is not configured on this server"))
		return
	}
	id := r.PathValue("id")
	outcome, reason := r.PostFormValue("outcome"), r.PostFormValue("reason")
	if _, err := s.cfg.Review.Conclude(r.Context(), c, id, outcome, reason); err != nil {
		v.Page, v.Title = "case", v.T["case"]
		if verr := s.caseView(r, c, v); verr != nil {
			v.Page, v.Title = "refused", v.T["refused"]
		} else {
			d := v.Data.(*caseData)
			d.Reason, d.Outcome = reason, outcome
		}
		s.consoleFail(w, v, err)
		return
	}
	http.Redirect(w, r, "/console/reviews?done="+url.QueryEscape(outcome), http.StatusSeeOther)
}

// consoleMessages are the console's texts, zh-CN first; keys missing in a
// language fall back to zh-CN.
var consoleMessages = map[string]map[string]string{
	"zh-CN": {
		"console": "员工控制台", "skip": "跳到正文", "nav": "主导航", "signin": "员工登录", "signout": "退出",
		"signin_intro": "请输入您的员工 API 密钥。密钥本身不会保存在浏览器中：会话仅保存其摘要并带有签名，8 小时后失效。",
		"key":          "API 密钥", "reviews": "人工复核队列", "overdue_report": "逾期复核报告", "case": "复核案件", "refused": "无权访问", "monitor": "监测报告",
		"bad_key": "API 密钥无效。", "bad_session": "会话无效或已过期，请重新登录。", "bad_csrf": "表单已过期或来源不明，未做任何更改。请重试。",
		"signed_out": "您已退出。", "signed_as": "当前身份：",
		"queue_intro":  "待复核的自动化决定：数据主体提出了申诉，或拒绝了仅由自动化作出的决定。请在期限前维持或推翻，并写明理由，数据主体将看到结果。",
		"report_intro": "已超过期限仍未复核的案件（只读）。复核由复核员角色处理。",
		"empty":        "没有待处理的案件。", "overdue_n": "件已逾期",
		"id": "编号", "usecase": "用例", "kind": "类型", "created": "提交时间", "deadline": "期限", "left": "剩余/逾期",
		"kind_appeal": "申诉", "kind_refusal": "拒绝自动化决定", "overdue": "已逾期", "due_in": "剩余 ", "late_by": "逾期 ",
		"days": " 天", "hours": " 小时", "under_hour": "不足 1 小时", "open": "打开",
		"decision": "决定", "model": "模型", "version": "版本", "outcome": "自动化结果", "score": "得分", "status": "状态",
		"positive": "通过", "negative": "未通过", "input_hash": "输入摘要", "log_index": "审计日志条目", "subject": "数据主体（假名）",
		"explanation": "解释", "notice": "事前告知", "contributions": "各特征的贡献", "feature": "特征", "value": "取值", "contribution": "贡献",
		"counterfactual": "反事实：最小可改变结果的变化", "from_to": "→",
		"statement": "数据主体的陈述", "no_statement": "数据主体拒绝了仅由自动化作出的决定，未附陈述。",
		"conflict": "您不能复核此案件", "your_decision": "您的复核结论", "uphold": "维持原决定", "overturn": "推翻原决定",
		"reason": "理由（数据主体将看到）", "reason_help": "用数据主体能读懂的语言说明理由，最多 2000 字节。", "submit": "提交结论",
		"closed": "此案件已结案：", "done_upheld": "已维持原决定，数据主体将看到结果。", "done_overturned": "已推翻原决定，数据主体将看到结果。",
		"back":  "返回队列",
		"cases": "个人信息权利请求", "log": "审计日志", "entry": "审计日志条目", "reports": "违法举报", "breaches": "安全事件通知", "orders": "暂停与叫停",
		"records": "处理活动记录", "filing": "算法备案",
		"not_for_role": "您的角色（{role}）不能查看此页面。", "back_home": "返回首页",
		"role_admin": "管理员", "role_operator": "运营人员", "role_reviewer": "复核员", "role_auditor": "审计员", "role_regulator": "监管检查员",
		"modify": "修正原决定（方向不变，条件改变，请在理由中写明）", "outcome_upheld": "维持", "outcome_overturned": "推翻", "outcome_modified": "修正",
		"done_modified": "已修正原决定，数据主体将看到结果。",
		"cases_intro":   "数据主体提出的请求。未结的按期限排列，逾期的在最前。法定期限为 15 个工作日。", "open_n": "件未结",
		"ct_access": "查阅", "ct_export": "导出（可携带）", "ct_correction": "更正", "ct_erasure": "删除", "ct_restriction": "限制处理", "ct_objection": "反对",
		"ct_label": "标签", "ct_personalization": "个性化设置", "ct_explanation": "要求说明", "ct_withdrawal": "撤回同意",
		"cs_open": "处理中", "cs_fulfilled": "已办结", "cs_refused": "已拒绝", "outcome_text": "结果", "refusal_reason": "拒绝理由",
		"answer": "答复", "fulfil": "已办结", "refuse": "拒绝（必须说明理由）", "answer_text": "答复内容（数据主体将看到）", "send": "提交答复",
		"no_cases": "暂无请求。", "done_case_fulfilled": "请求已办结。", "done_case_refused": "已拒绝请求，并说明了理由。", "done_report": "举报已答复。",
		"log_intro": "审计日志记录每一次处理与决定，只增不改。可按类型和日期查找，打开条目即可看到它包含在当前签名检查点中的证明。",
		"all_kinds": "全部类型", "from": "起始日期", "to": "截止日期", "search": "查找", "log_size": "日志条目总数：", "more_rows": "仅显示最近 200 条，请缩小范围。", "no_entries": "没有符合条件的条目。",
		"lk_decision": "自动化决定", "lk_consent": "同意", "lk_request": "权利请求", "lk_review": "人工复核", "lk_erasure": "删除", "lk_suspension": "暂停令",
		"lk_oversight": "叫停/恢复", "lk_breach": "安全事件", "lk_report": "举报", "lk_alert": "监测告警", "lk_ingest": "数据接收", "lk_audience": "人群包", "lk_console": "控制台登录", "lk_key": "员工密钥",
		"back_log": "返回审计日志", "cosigned": "已发布的检查点带有监管机构的联署，本页刚用监管机构的公钥核验通过：", "cosign_bad": "已发布的检查点上的监管机构联署未能用其公钥核验，请勿信任此检查点：", "cosigners": "已发布的检查点带有其他签名（本引擎未接入监管机构，本页无法核验）：",
		"fresh_cp": "此条目晚于已发布的检查点：本页按当前日志现场签名核对，尚未经监管机构联署。", "not_cosigned": "已发布的检查点没有其他联署（本引擎未接入监管机构）。",
		"proof_ok": "已验证：此条目包含在当前签名检查点中（包含证明与签名均通过检查）。", "proof_bad": "验证失败：",
		"checkpoint": "签名检查点", "tree_size": "条目数", "root": "根哈希", "proof": "包含证明", "entry_text": "条目原文（即被哈希的内容）",
		"reports_intro": "公众提交的违法举报，须在期限内答复。逾期的在最前。", "no_reports": "暂无举报。",
		"breaches_intro": "已记录的个人信息安全事件及其通知（个人信息保护法第五十七条）。", "no_breaches": "暂无安全事件记录。",
		"orders_intro": "监管暂停令与应用场景叫停：现在生效的，以及审计日志中的全部历史。",
		"in_force":     "现在生效", "none_in_force": "目前没有生效的暂停或叫停。", "history": "历史", "no_history": "没有记录。",
		"ok_purpose": "暂停目的", "ok_field": "暂停字段", "ok_label": "暂停标签", "ok_model": "暂停模型", "ok_usecase": "暂停应用场景", "ok_halt": "叫停应用场景",
		"no_report": "还没有监测报告：监测尚未运行。",
	},
	"en": {
		"console": "Staff console", "skip": "Skip to content", "nav": "Main", "signin": "Staff sign-in", "signout": "Sign out",
		"signin_intro": "Enter your staff API key. The key itself is not kept in the browser: the session holds only its digest, signed, and ends after 8 hours.",
		"key":          "API key", "reviews": "Human review queue", "overdue_report": "Overdue reviews report", "case": "Review case", "refused": "Not allowed", "monitor": "Monitor report",
		"bad_key": "The API key is not valid.", "bad_session": "The session is not valid or has expired; sign in again.", "bad_csrf": "The form expired or came from elsewhere; nothing was changed. Please try again.",
		"signed_out": "You are signed out.", "signed_as": "Signed in as ",
		"queue_intro":  "Automated decisions awaiting a human: the subject appealed, or refused a purely automated decision. Uphold or overturn each before its deadline, with a reason the subject will read.",
		"report_intro": "Reviews still open past their deadline (read-only). Reviews are decided by the reviewer role.",
		"empty":        "No open cases.", "overdue_n": "overdue",
		"id": "Case", "usecase": "Use-case", "kind": "Kind", "created": "Received", "deadline": "Deadline", "left": "Left / late",
		"kind_appeal": "appeal", "kind_refusal": "refused automation", "overdue": "OVERDUE", "due_in": "due in ", "late_by": "late by ",
		"days": "d", "hours": "h", "under_hour": "under an hour", "open": "Open",
		"decision": "Decision", "model": "Model", "version": "version", "outcome": "Automated outcome", "score": "Score", "status": "Status",
		"positive": "positive", "negative": "negative", "input_hash": "Input digest", "log_index": "Audit-log entry", "subject": "Subject (pseudonym)",
		"explanation": "Explanation", "notice": "Pre-use notice", "contributions": "What each feature contributed", "feature": "Feature", "value": "Value", "contribution": "Contribution",
		"counterfactual": "Counterfactual: the smallest change that flips the outcome", "from_to": "→",
		"statement": "The subject's statement", "no_statement": "The subject refused a purely automated decision and wrote no statement.",
		"conflict": "You may not review this case", "your_decision": "Your decision", "uphold": "Uphold the decision", "overturn": "Overturn the decision",
		"reason": "Reason (the subject will read it)", "reason_help": "Explain in words the subject can follow; up to 2000 bytes.", "submit": "Submit decision",
		"closed": "This case is closed: ", "done_upheld": "Decision upheld; the subject will see the outcome.", "done_overturned": "Decision overturned; the subject will see the outcome.",
		"back":  "Back to the queue",
		"cases": "Subject requests", "log": "Audit log", "entry": "Audit-log entry", "reports": "Violation reports", "breaches": "Breach notices", "orders": "Suspensions and halts",
		"records": "Record of processing", "filing": "Algorithm filing",
		"not_for_role": "Your role ({role}) may not see this page.", "back_home": "Back to the start",
		"role_admin": "admin", "role_operator": "operator", "role_reviewer": "reviewer", "role_auditor": "auditor", "role_regulator": "regulator inspector",
		"modify": "Correct the decision (same direction, changed terms; say how in the reason)", "outcome_upheld": "upheld", "outcome_overturned": "overturned", "outcome_modified": "corrected",
		"done_modified": "Decision corrected; the subject will see the outcome.",
		"cases_intro":   "Requests made by data subjects. Open ones by deadline, overdue first. The legal deadline is 15 working days.", "open_n": "open",
		"ct_access": "access", "ct_export": "export (portability)", "ct_correction": "correction", "ct_erasure": "erasure", "ct_restriction": "restriction", "ct_objection": "objection",
		"ct_label": "label", "ct_personalization": "personalisation setting", "ct_explanation": "explanation", "ct_withdrawal": "consent withdrawal",
		"cs_open": "open", "cs_fulfilled": "done", "cs_refused": "refused", "outcome_text": "Outcome", "refusal_reason": "Reason for refusal",
		"answer": "Answer", "fulfil": "Done", "refuse": "Refuse (a reason is required)", "answer_text": "Answer (the subject will read it)", "send": "Send the answer",
		"no_cases": "No requests.", "done_case_fulfilled": "The request is closed as done.", "done_case_refused": "The request is refused, with its reason.", "done_report": "The report is answered.",
		"log_intro": "The audit log records every processing step and decision, append-only. Search by kind and day; open an entry to see the proof that the current signed checkpoint includes it.",
		"all_kinds": "All kinds", "from": "From", "to": "To", "search": "Search", "log_size": "Entries in the log:", "more_rows": "Only the latest 200 are shown; narrow the search.", "no_entries": "No entries match.",
		"lk_decision": "automated decision", "lk_consent": "consent", "lk_request": "subject request", "lk_review": "human review", "lk_erasure": "erasure", "lk_suspension": "suspension order",
		"lk_oversight": "halt / resume", "lk_breach": "breach", "lk_report": "violation report", "lk_alert": "monitor alert", "lk_ingest": "ingest", "lk_audience": "audience", "lk_console": "console sign-in", "lk_key": "staff key",
		"back_log": "Back to the audit log", "cosigned": "The published checkpoint carries the regulator's cosignature, checked by this page just now with the regulator's key:", "cosign_bad": "The regulator's cosignature on the published checkpoint does not verify with its key; do not trust this checkpoint:", "cosigners": "The published checkpoint carries other signatures (this engine has not joined a regulator, so this page cannot check them):",
		"fresh_cp": "This entry is newer than the published checkpoint: the page signed the log as it is now to check it; not yet cosigned by a regulator.", "not_cosigned": "The published checkpoint has no other cosignature (this engine has not joined a regulator).",
		"proof_ok": "Verified: the current signed checkpoint includes this entry (inclusion proof and signature checked).", "proof_bad": "Not verified:",
		"checkpoint": "Signed checkpoint", "tree_size": "entries", "root": "Root hash", "proof": "Inclusion proof", "entry_text": "The entry as hashed",
		"reports_intro": "Violation reports from the public, to be answered by their deadline. Overdue first.", "no_reports": "No reports.",
		"breaches_intro": "Recorded personal-information breaches and their notices (PIPL Art. 57).", "no_breaches": "No breaches recorded.",
		"orders_intro": "Regulator suspensions and use-case halts: those in force now, and the full history from the audit log.",
		"in_force":     "In force", "none_in_force": "Nothing is suspended or halted.", "history": "History", "no_history": "Nothing recorded.",
		"ok_purpose": "purpose suspended", "ok_field": "field suspended", "ok_label": "label suspended", "ok_model": "model suspended", "ok_usecase": "use-case suspended", "ok_halt": "use-case halted",
		"no_report": "No monitor report yet: the monitors have not run.",
	},
}

func consoleTexts(lang string) map[string]string {
	if lang == "zh-CN" {
		return consoleMessages["zh-CN"]
	}
	out := make(map[string]string, len(consoleMessages["zh-CN"]))
	for k, v := range consoleMessages["zh-CN"] {
		out[k] = v
	}
	for k, v := range consoleMessages[lang] {
		out[k] = v
	}
	return out
}
