package regulator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// The regulator's screens: the console for its staff (/console/, signed
// in with a staff key) and the public portal (/public/, no login). Plain
// Chinese first, English second. The console's cookie is a signed
// session naming the staff key by its hash (keys.StaffSessions, as the
// engine's console), HttpOnly, SameSite=Strict, Path=/console, 8 hours;
// the key it names is looked up on every request, so revoking the key
// ends the session, and signing out ends it on every node. Every form
// carries a CSRF token bound to the session.

//go:embed screens.html
var screensHTML string

var screens = template.Must(template.New("screens").Funcs(template.FuncMap{
	"orderList": func(t map[string]string, list []orderView) map[string]any {
		return map[string]any{"T": t, "List": list}
	},
}).Parse(screensHTML))

// texts are the screens' words, zh-CN and en.
var texts = map[string]map[string]string{
	"zh-CN": {
		"console": "监管控制台", "portal": "算法监管公示", "nav": "导航", "companies": "企业", "packs": "规则包", "complain": "投诉",
		"signin": "登录", "signout": "退出", "signed_as": "已登录：", "staff_key": "工作人员密钥", "company": "企业", "checkpoint": "最近检查点",
		"witnessed": "已见证条目", "silence": "失联时长", "orders_in_force": "生效中的命令", "orders_lifted": "已解除的命令", "open_complaints": "未结投诉",
		"alerts": "最近告警", "none": "暂无", "reports": "监督报告", "orders": "命令", "order": "命令编号", "kind": "类型", "target": "对象",
		"target_kind": "对象类型", "reason": "理由", "status": "状态", "approved_by": "复核人", "approve": "复核批准", "k_suspend": "暂停",
		"k_lift": "解除", "k_receivership": "接管", "k_end": "结束接管", "k_silence": "失联上限", "max_silence": "失联上限（秒，仅失联上限命令）",
		"four_eyes": "接管命令须由另一名工作人员复核批准后才生效（四眼原则）。", "issue": "发出命令", "complaints": "投诉", "deadline": "答复期限",
		"answer": "企业答复", "closing": "监管结论", "close": "结案", "filings": "备案的目录版本", "first_filing": "首次备案", "noise_note": "人数均加入校准噪声：",
		"comments": "公众意见", "signoffs": "专家签署", "your_name": "您的称呼（可不填）", "comment": "意见", "send_comment": "提交意见",
		"open_consult": "公开征求意见", "simulate": "模拟检查", "expert": "专家姓名", "discipline": "领域", "d_law": "法学", "d_ethics": "伦理学",
		"d_sociology": "社会学", "d_technology": "技术", "d_economics": "经济学", "statement": "意见陈述", "record_signoff": "记录签署", "publish": "签署发布",
		"simulation": "模拟结果", "result": "结果", "no_catalog": "未备案目录", "pass": "通过", "fail": "将被拒绝", "new_draft": "新建草案", "title": "标题",
		"pack_json": "规则包 JSON", "save_draft": "保存草案", "public_intro": "以下为登记企业的备案说明、监管命令、见证状态和加噪的监督数据。",
		"filing": "算法备案公示", "complain_how": "任何人无需账号即可投诉登记企业。请选择企业并描述问题；提交后请保存投诉编号和密钥，用于查询进展。企业须在期限内答复，由监管机构结案。",
		"receipt": "投诉编号", "secret": "查询密钥", "complaint_text": "投诉内容", "send_complaint": "提交投诉", "follow": "查询进展",
		"p_draft": "草案", "p_consultation": "征求意见中", "p_published": "已发布生效", "p_superseded": "已被取代",
		"c_open": "待企业答复", "c_answered": "企业已答复，待监管结案", "c_closed": "已结案", "sent": "已提交", "done": "已完成",
		"countersigns": "高风险变更会签", "cs_intro": "企业已由作者以外的具名人员批准、涉及高风险应用场景的目录变更，须经本机构会签后方可生效。以下内容均取自本机构见证的企业日志镜像，逐条对照已会签的检查点验证。",
		"cs_request": "变更请求", "cs_author": "提出人", "cs_approver": "企业批准人", "cs_data": "批准人对所选数据的判断", "cs_algorithm": "批准人对算法适当性的判断",
		"cs_changes": "变更内容", "cs_usecases": "须会签的高风险应用场景", "art56": "个人信息保护影响评估（《个人信息保护法》第五十六条）",
		"a_purpose": "处理目的、处理方式", "a_necessity": "是否合法、正当、必要", "a_rights": "对个人权益的影响", "a_risks": "安全风险", "a_safeguards": "保护措施及其与风险的相称性", "a_signed": "签署人",
		"cs_note": "意见（拒绝时必填，企业可见）", "cs_sign": "会签", "cs_refuse": "拒绝", "cs_pending": "待会签", "cs_countersigned": "已会签", "cs_refused": "已拒绝", "cs_decided": "决定人",
	},
	"en": {
		"console": "Regulator console", "portal": "Algorithm supervision — public record", "nav": "Navigation", "companies": "Companies", "packs": "Rule packs", "complain": "Complain",
		"signin": "Sign in", "signout": "Sign out", "signed_as": "Signed in as", "staff_key": "Staff key", "company": "Company", "checkpoint": "Last checkpoint",
		"witnessed": "Witnessed entries", "silence": "Silent for", "orders_in_force": "Orders in force", "orders_lifted": "Orders lifted", "open_complaints": "Open complaints",
		"alerts": "Latest alerts", "none": "None", "reports": "Supervision reports", "orders": "Orders", "order": "Order", "kind": "Kind", "target": "Target",
		"target_kind": "Target kind", "reason": "Reason", "status": "Status", "approved_by": "approved by", "approve": "Approve", "k_suspend": "Suspend",
		"k_lift": "Lift", "k_receivership": "Receivership", "k_end": "End receivership", "k_silence": "Maximum silence", "max_silence": "Maximum silence (seconds, max_silence orders only)",
		"four_eyes": "A receivership takes effect only once a second member of staff approves it (four eyes).", "issue": "Issue order", "complaints": "Complaints", "deadline": "Answer due",
		"answer": "Company's answer", "closing": "Regulator's conclusion", "close": "Close", "filings": "Filed catalog versions", "first_filing": "First filing", "noise_note": "Counts of people carry calibrated noise:",
		"comments": "Public comments", "signoffs": "Expert sign-offs", "your_name": "Your name (optional)", "comment": "Comment", "send_comment": "Send comment",
		"open_consult": "Open for public comment", "simulate": "Simulate", "expert": "Expert's name", "discipline": "Discipline", "d_law": "Law", "d_ethics": "Ethics",
		"d_sociology": "Sociology", "d_technology": "Technology", "d_economics": "Economics", "statement": "Statement", "record_signoff": "Record sign-off", "publish": "Sign and publish",
		"simulation": "Simulation", "result": "Result", "no_catalog": "No catalog filed", "pass": "Passes", "fail": "Would be refused", "new_draft": "New draft", "title": "Title",
		"pack_json": "Rule pack JSON", "save_draft": "Save draft", "public_intro": "Registered companies' filing descriptions, the regulator's orders, witness status and the noisy supervision figures.",
		"filing": "Public filing description", "complain_how": "Anyone may complain about a registered company without an account. Choose the company and describe the problem; keep the complaint number and secret to follow it. The company must answer by the deadline; the regulator closes it.",
		"receipt": "Complaint number", "secret": "Secret", "complaint_text": "Your complaint", "send_complaint": "Send complaint", "follow": "Follow a complaint",
		"p_draft": "draft", "p_consultation": "open for comment", "p_published": "published, in force", "p_superseded": "superseded",
		"c_open": "awaiting the company's answer", "c_answered": "answered, awaiting the regulator", "c_closed": "closed", "sent": "Sent", "done": "Done",
		"countersigns": "High-tier countersignatures", "cs_intro": "Catalog changes touching high-tier use-cases, approved at the company by a named person other than their author, go live only once countersigned here. Everything below is read from this regulator's mirror of the company's log, each entry proved against the checkpoint it cosigned.",
		"cs_request": "Change request", "cs_author": "Author", "cs_approver": "Approved at the company by", "cs_data": "Approver's judgement of the data chosen", "cs_algorithm": "Approver's judgement of the algorithm",
		"cs_changes": "Changes", "cs_usecases": "High-tier use-cases to countersign", "art56": "Personal information protection impact assessment (PIPL Art. 56)",
		"a_purpose": "Purpose and method", "a_necessity": "Lawful, legitimate and necessary?", "a_rights": "Impact on individuals' rights", "a_risks": "Security risks", "a_safeguards": "Safeguards and their proportionality", "a_signed": "Signed by",
		"cs_note": "Note (required to refuse; the company reads it)", "cs_sign": "Countersign", "cs_refuse": "Refuse", "cs_pending": "awaiting countersignature", "cs_countersigned": "countersigned", "cs_refused": "refused", "cs_decided": "Decided by",
	},
}

// page is what a screen template gets.
type page struct {
	Lang, Title, Base, CSRF, Flash, Error string
	T                                     map[string]string
	Console, Signed                       bool
	Caller                                policy.Caller
	Data                                  any
}

func screenLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh-CN" {
		http.SetCookie(w, &http.Cookie{Name: "lang", Value: l, Path: "/", SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
		return l
	}
	if c, err := r.Cookie("lang"); err == nil && (c.Value == "en" || c.Value == "zh-CN") {
		return c.Value
	}
	return "zh-CN"
}

func (n *Node) render(w http.ResponseWriter, r *http.Request, p page, content string) error {
	p.Lang = screenLang(w, r)
	p.T = texts[p.Lang]
	if p.Title == "" {
		p.Title = p.T[content]
	}
	t, err := screens.Clone()
	if err == nil {
		_, err = t.New("content").Parse(`{{template "` + content + `" .}}`)
	}
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, err = w.Write(buf.Bytes())
	return err
}

// chartPoints scales a series into a 240×90 polyline.
type chart struct {
	Name   string
	Points string
	Last   string
}

func charts(series []Series) []chart {
	out := make([]chart, 0, len(series))
	for _, s := range series {
		lo, hi := 0.0, 0.0
		for i, v := range s.Values {
			if i == 0 || v < lo {
				lo = v
			}
			if i == 0 || v > hi {
				hi = v
			}
		}
		var pts []string
		for i, v := range s.Values {
			x := 4.0
			if len(s.Values) > 1 {
				x = 4 + 232*float64(i)/float64(len(s.Values)-1)
			}
			y := 50.0
			if hi > lo {
				y = 75 - 55*(v-lo)/(hi-lo)
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		last := ""
		if len(s.Values) > 0 {
			last = strconv.FormatFloat(s.Values[len(s.Values)-1], 'g', 4, 64)
		}
		out = append(out, chart{Name: s.Name, Points: strings.Join(pts, " "), Last: last})
	}
	return out
}

// orderView is an order with what became of it.
type orderView struct {
	OrderRecord
	State string
}

// inForce splits a company's issued orders into those in force and
// those lifted (by a lift, an end of receivership, or a later limit).
func inForce(list []OrderRecord) (now, lifted []orderView) {
	active := map[string]int{} // target → index in now
	for _, o := range list {
		if o.Status != "issued" {
			continue
		}
		key := o.Target.Kind + "/" + o.Target.ID
		switch o.Kind {
		case Suspend, Receivership:
			active[key] = len(now)
			now = append(now, orderView{o, "in force"})
		case MaxSilence:
			if i, ok := active["silence"]; ok {
				now[i].State = "lifted"
			}
			if o.MaxSilenceSeconds > 0 {
				active["silence"] = len(now)
				now = append(now, orderView{o, "in force"})
			}
		case Lift, EndReceivership:
			if i, ok := active[key]; ok {
				now[i].State = "lifted"
				delete(active, key)
			} else if o.Kind == EndReceivership {
				for k, i := range active {
					if now[i].Kind == Receivership {
						now[i].State = "lifted"
						delete(active, k)
					}
				}
			}
		}
	}
	var keep []orderView
	for _, o := range now {
		if o.State == "lifted" {
			lifted = append(lifted, o)
		} else {
			keep = append(keep, o)
		}
	}
	return keep, lifted
}

// companyStatus is one row of the console's company list and one section
// of the public portal.
type companyStatus struct {
	ID, Name, Origin    string
	Size                int64
	Checkpoint, Silence string
	InForce, Lifted     []orderView
	OpenComplaints      int
	Alerts              int
	Series              []chart
	Noise               string
	Algorithms          []string
}

func (n *Node) statuses(ctx context.Context, withReports bool) ([]companyStatus, error) {
	cos, err := n.Companies(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]companyStatus, 0, len(cos))
	for _, co := range cos {
		s := companyStatus{ID: co.ID, Name: co.Name, Origin: co.Origin, Size: co.Size, Checkpoint: "—", Silence: "—"}
		if !co.Contact.IsZero() {
			s.Checkpoint = co.Contact.UTC().Format("2006-01-02 15:04:05Z")
			s.Silence = n.now().Sub(co.Contact).Round(time.Second).String()
		}
		orders, err := n.db.Orders(ctx, co.ID)
		if err != nil {
			return nil, err
		}
		s.InForce, s.Lifted = inForce(orders)
		if n.sup != nil {
			recs, err := listDocs[complaintRecord](ctx, n.sup.docs, docComplaint, co.ID)
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				if r.Status != ComplaintClosed {
					s.OpenComplaints++
				}
			}
			reps, err := n.Reports(ctx, co.ID)
			if err != nil {
				return nil, err
			}
			if len(reps) > 0 {
				last := reps[len(reps)-1].Report
				for _, c := range last.Alerts {
					s.Alerts += c
				}
				nz := last.Noise
				s.Noise = fmt.Sprintf("%s, ε = %g, Δ = %d, |noise| ≤ %d, δ = %.1e", nz.Mechanism, nz.Epsilon, nz.Sensitivity, nz.Bound, nz.Delta)
			}
			if withReports {
				s.Series = charts(Chart(reps))
			}
		}
		var f struct {
			Public []struct {
				UseCase, Principle, Mechanism string
			} `json:"public_description"`
		}
		if len(co.Algorithms) > 0 && json.Unmarshal(co.Algorithms, &f) == nil {
			for _, d := range f.Public {
				s.Algorithms = append(s.Algorithms, d.UseCase+"："+d.Principle+" "+d.Mechanism)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

const sessionCookie = "regulator_session"

// sessionTTL bounds a console session: a working day.
const sessionTTL = 8 * time.Hour

// sessions is the console's session codec, the one the engine's console
// uses (keys.StaffSessions): the cookie names the staff key by its
// SHA-256 under an expiry and a MAC, never the key itself. Without the
// node's keyring (Supervise not called) there is no console.
func (n *Node) sessions() (keys.StaffSessions, bool) {
	if n.sup == nil {
		return keys.StaffSessions{}, false
	}
	return n.sup.keys.StaffSessions(), true
}

// staffSession returns the signed-in staff member and the session, if
// any: the MAC and expiry verify, the key it names is still a regulator
// staff key, and the session was not signed out.
func (n *Node) staffSession(r *http.Request) (policy.Caller, string, bool) {
	c, err := r.Cookie(sessionCookie)
	ss, ok := n.sessions()
	if err != nil || c.Value == "" || !ok {
		return policy.Caller{}, "", false
	}
	h, err := ss.Check(c.Value, n.now())
	if err != nil {
		return policy.Caller{}, "", false
	}
	caller, err := n.staffByHash(r.Context(), h)
	if err != nil {
		return policy.Caller{}, "", false
	}
	if ended, err := n.db.SessionEnded(r.Context(), time.Unix(0, 0), keys.SessionID(c.Value)); err != nil || ended {
		return policy.Caller{}, "", false
	}
	return caller, c.Value, true
}

// screenRoutes serves the console and the public portal.
func (n *Node) screenRoutes(mux *http.ServeMux, logger *slog.Logger) {
	fail := func(w http.ResponseWriter, r *http.Request, p page, content string, err error) {
		code := portrait.ErrorCode(err)
		status, ok := statuses[code]
		if !ok {
			logger.Error("regulator screens: internal error", "err", err)
			status = 500
		}
		w.WriteHeader(status)
		p.Error = portrait.ErrorMessage(err)
		n.render(w, r, p, content)
	}
	// console wraps a staff screen: signed in, and on POST the CSRF token
	// checked.
	console := func(h func(w http.ResponseWriter, r *http.Request, p page) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			caller, key, ok := n.staffSession(r)
			if !ok {
				http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
				return
			}
			ss, _ := n.sessions()
			p := page{Console: true, Signed: true, Caller: caller, CSRF: ss.CSRF(key), Base: "/console"}
			if r.Method == http.MethodPost && !hmac.Equal([]byte(r.FormValue("csrf")), []byte(p.CSRF)) {
				w.WriteHeader(http.StatusForbidden)
				p.Error = "CSRF"
				n.render(w, r, p, "signin")
				return
			}
			if err := h(w, r, p); err != nil {
				fail(w, r, p, "blank", err)
			}
		}
	}
	mux.HandleFunc("GET /console/signin", func(w http.ResponseWriter, r *http.Request) {
		n.render(w, r, page{Console: true}, "signin")
	})
	mux.HandleFunc("POST /console/signin", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		key := strings.TrimSpace(r.FormValue("key"))
		c, err := n.Staff(r.Context(), key)
		ss, ok := n.sessions()
		if err != nil || !ok {
			w.WriteHeader(http.StatusUnauthorized)
			n.render(w, r, page{Console: true, Error: texts[screenLang(w, r)]["staff_key"] + " ✗"}, "signin")
			return
		}
		if _, err := n.record(r.Context(), audit.Record{Kind: "console", Time: n.now(), Actor: actor(c), Action: "signin"}, nil); err != nil {
			fail(w, r, page{Console: true}, "signin", err)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: ss.New(hash(key), n.now().Add(sessionTTL)), Path: "/console", HttpOnly: true, Secure: r.TLS != nil,
			SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	// Signing out ends the session on every node sharing the store, not
	// only in this browser, with a record of it in the same transaction.
	mux.HandleFunc("POST /console/signout", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		ck, _ := r.Cookie(sessionCookie) // console has checked it
		exp := n.now().Add(sessionTTL)
		_, err := n.record(r.Context(), audit.Record{Kind: "console", Time: n.now(), Actor: actor(p.Caller), Action: "signout"}, func(ctx context.Context, tx portrait.Tx) error {
			return tx.EndSessions(r.Context(), keys.SessionID(ck.Value), exp, exp)
		})
		if err != nil {
			return err
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/console", HttpOnly: true, MaxAge: -1})
		http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET /console/{$}", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		list, err := n.statuses(r.Context(), false)
		if err != nil {
			return err
		}
		p.Data = map[string]any{"Companies": list}
		return n.render(w, r, p, "companies")
	}))
	mux.HandleFunc("GET /console/companies/{id}", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		return n.companyPage(w, r, p, "")
	}))
	mux.HandleFunc("POST /console/companies/{id}/orders", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		secs, _ := strconv.ParseInt(r.FormValue("max_silence"), 10, 64)
		o := Order{Company: r.PathValue("id"), Kind: r.FormValue("kind"), Target: Target{Kind: r.FormValue("target_kind"), ID: strings.TrimSpace(r.FormValue("target_id"))},
			Reason: r.FormValue("reason"), MaxSilenceSeconds: secs}
		if o.Kind != MaxSilence {
			o.MaxSilenceSeconds = 0
		}
		rec, err := n.Issue(r.Context(), p.Caller, o)
		if err != nil {
			p.Error = portrait.ErrorMessage(err)
			return n.companyPage(w, r, p, "")
		}
		flash := rec.ID + " · " + rec.Status
		if rec.ReceiverKey != "" {
			flash += " · receiver key (shown once): " + rec.ReceiverKey
		}
		return n.companyPage(w, r, p, flash)
	}))
	mux.HandleFunc("POST /console/orders/{id}/approve", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		rec, err := n.Approve(r.Context(), p.Caller, r.PathValue("id"))
		if err != nil {
			o, oerr := n.db.Order(r.Context(), r.PathValue("id"))
			if oerr != nil {
				return err
			}
			w.WriteHeader(statusOf(err))
			p.Error = portrait.ErrorMessage(err)
			r.SetPathValue("id", o.Company)
			return n.companyPage(w, r, p, "")
		}
		r.SetPathValue("id", rec.Company)
		return n.companyPage(w, r, p, rec.ID+" · "+rec.Status)
	}))
	mux.HandleFunc("POST /console/complaints/{id}/close", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		cm, err := n.Close(r.Context(), p.Caller, r.PathValue("id"), r.FormValue("note"))
		if err != nil {
			cm, cerr := n.complaint(r.Context(), r.PathValue("id"))
			if cerr != nil {
				return err
			}
			w.WriteHeader(statusOf(err))
			p.Error = portrait.ErrorMessage(err)
			r.SetPathValue("id", cm.Company)
			return n.companyPage(w, r, p, "")
		}
		r.SetPathValue("id", cm.Company)
		return n.companyPage(w, r, p, cm.ID+" · "+cm.Status)
	}))
	mux.HandleFunc("GET /console/countersignatures", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		return n.countersignPage(w, r, p, "")
	}))
	mux.HandleFunc("POST /console/countersignatures/{id}", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		rv, err := n.DecideCountersignature(r.Context(), p.Caller, r.PathValue("id"), r.FormValue("decision") == "refuse", r.FormValue("note"))
		if err != nil {
			w.WriteHeader(statusOf(err))
			p.Error = portrait.ErrorMessage(err)
			return n.countersignPage(w, r, p, "")
		}
		return n.countersignPage(w, r, p, rv.ID+" · "+texts[screenLang(w, r)]["cs_"+rv.Status])
	}))
	packs := func(w http.ResponseWriter, r *http.Request, p page, sim []Outcome) error {
		list, err := n.Drafts(r.Context())
		if err != nil {
			return err
		}
		p.Data = map[string]any{"Packs": list, "Simulation": sim}
		return n.render(w, r, p, "packs")
	}
	mux.HandleFunc("GET /console/packs", console(func(w http.ResponseWriter, r *http.Request, p page) error { return packs(w, r, p, nil) }))
	mux.HandleFunc("POST /console/packs", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		d, err := n.DraftPack(r.Context(), p.Caller, r.FormValue("title"), json.RawMessage(r.FormValue("pack")))
		if err != nil {
			p.Error = portrait.ErrorMessage(err)
		} else {
			p.Flash = d.ID
		}
		return packs(w, r, p, nil)
	}))
	packStep := func(step func(ctx context.Context, p page, id string, r *http.Request) error) http.HandlerFunc {
		return console(func(w http.ResponseWriter, r *http.Request, p page) error {
			if err := step(r.Context(), p, r.PathValue("id"), r); err != nil {
				p.Error = portrait.ErrorMessage(err)
			} else {
				p.Flash = "✓"
			}
			return packs(w, r, p, nil)
		})
	}
	mux.HandleFunc("POST /console/packs/{id}/open", packStep(func(ctx context.Context, p page, id string, _ *http.Request) error {
		_, err := n.OpenConsultation(ctx, p.Caller, id)
		return err
	}))
	mux.HandleFunc("POST /console/packs/{id}/signoffs", packStep(func(ctx context.Context, p page, id string, r *http.Request) error {
		_, err := n.SignOffPack(ctx, p.Caller, id, SignOff{Expert: r.FormValue("expert"), Discipline: r.FormValue("discipline"), Statement: r.FormValue("statement")})
		return err
	}))
	mux.HandleFunc("POST /console/packs/{id}/publish", packStep(func(ctx context.Context, p page, id string, _ *http.Request) error {
		_, err := n.Publish(ctx, p.Caller, id)
		return err
	}))
	mux.HandleFunc("POST /console/packs/{id}/simulate", console(func(w http.ResponseWriter, r *http.Request, p page) error {
		out, err := n.Simulate(r.Context(), p.Caller, r.PathValue("id"))
		if err != nil {
			p.Error = portrait.ErrorMessage(err)
		}
		return packs(w, r, p, out)
	}))

	// The public portal.
	public := func(h func(w http.ResponseWriter, r *http.Request, p page) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, maxPublicBody)
			p := page{Base: "/public"}
			if err := h(w, r, p); err != nil {
				fail(w, r, p, "blank", err)
			}
		}
	}
	mux.HandleFunc("GET /public/{$}", public(func(w http.ResponseWriter, r *http.Request, p page) error {
		list, err := n.statuses(r.Context(), true)
		if err != nil {
			return err
		}
		p.Data = map[string]any{"Public": list}
		p.Title = texts[screenLang(w, r)]["portal"]
		return n.render(w, r, p, "public")
	}))
	mux.HandleFunc("GET /public/packs", public(func(w http.ResponseWriter, r *http.Request, p page) error {
		list, err := n.Drafts(r.Context())
		if err != nil {
			return err
		}
		p.Data = map[string]any{"Packs": list}
		return n.render(w, r, p, "packs")
	}))
	mux.HandleFunc("POST /public/packs/{id}/comments", public(func(w http.ResponseWriter, r *http.Request, p page) error {
		_, err := n.CommentOn(r.Context(), clientAddr(r), r.PathValue("id"), r.FormValue("name"), r.FormValue("text"))
		if err != nil {
			p.Error = portrait.ErrorMessage(err)
			w.WriteHeader(statusOf(err))
		} else {
			p.Flash = texts[screenLang(w, r)]["sent"]
		}
		list, lerr := n.Drafts(r.Context())
		if lerr != nil {
			return lerr
		}
		p.Data = map[string]any{"Packs": list}
		return n.render(w, r, p, "packs")
	}))
	complainPage := func(w http.ResponseWriter, r *http.Request, p page, data map[string]any) error {
		cos, err := n.Companies(r.Context())
		if err != nil {
			return err
		}
		data["Companies"] = cos
		p.Data = data
		return n.render(w, r, p, "complain")
	}
	mux.HandleFunc("GET /public/complain", public(func(w http.ResponseWriter, r *http.Request, p page) error {
		return complainPage(w, r, p, map[string]any{})
	}))
	mux.HandleFunc("POST /public/complain", public(func(w http.ResponseWriter, r *http.Request, p page) error {
		rc, err := n.Complain(r.Context(), clientAddr(r), r.FormValue("company"), r.FormValue("text"), "regulator")
		data := map[string]any{}
		if err != nil {
			p.Error = portrait.ErrorMessage(err)
			w.WriteHeader(statusOf(err))
		} else {
			data["Receipt"] = rc
		}
		return complainPage(w, r, p, data)
	}))
	mux.HandleFunc("GET /public/complaints", public(func(w http.ResponseWriter, r *http.Request, p page) error {
		cm, err := n.Follow(r.Context(), strings.TrimSpace(r.FormValue("id")), strings.TrimSpace(r.FormValue("secret")))
		data := map[string]any{}
		if err != nil {
			p.Error = portrait.ErrorMessage(err)
			w.WriteHeader(statusOf(err))
		} else {
			data["Followed"] = cm
		}
		return complainPage(w, r, p, data)
	}))
}

func statusOf(err error) int {
	if errors.Is(err, ErrRateLimited) {
		return http.StatusTooManyRequests
	}
	if s, ok := statuses[portrait.ErrorCode(err)]; ok {
		return s
	}
	return 500
}

// companyPage renders one company for the console.
func (n *Node) companyPage(w http.ResponseWriter, r *http.Request, p page, flash string) error {
	ctx := r.Context()
	co, err := n.Company(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	orders, err := n.db.Orders(ctx, co.ID)
	if err != nil {
		return err
	}
	data := map[string]any{"Company": co, "Orders": orders}
	if n.sup != nil {
		reps, err := n.Reports(ctx, co.ID)
		if err != nil {
			return err
		}
		data["Series"] = charts(Chart(reps))
		if len(reps) > 0 {
			nz := reps[len(reps)-1].Report.Noise
			data["Noise"] = fmt.Sprintf("%s, ε = %g, Δ = %d, |noise| ≤ %d", nz.Mechanism, nz.Epsilon, nz.Sensitivity, nz.Bound)
		}
		if data["Complaints"], err = n.Complaints(ctx, co.ID); err != nil {
			return err
		}
		if data["Catalogs"], err = n.catalogVersions(ctx, co.ID); err != nil {
			return err
		}
	}
	p.Title, p.Flash = co.Name, flash
	p.Data = data
	return n.render(w, r, p, "company")
}

// reviewView is a countersignature request as the console shows it: the
// change lines in the page's language, names from the company's filed
// catalog.
type reviewView struct {
	Review
	Lines    []string
	UseCases []string
	Assessed []namedAnswers
}

type namedAnswers struct {
	Name string
	Art56
}

// countersignPage lists the countersignature requests, pending first.
func (n *Node) countersignPage(w http.ResponseWriter, r *http.Request, p page, flash string) error {
	ctx := r.Context()
	list, err := n.Reviews(ctx, "")
	if err != nil {
		return err
	}
	lang := screenLang(w, r)
	cats := map[string]*catalog.Catalog{}
	out := make([]reviewView, 0, len(list))
	for _, rv := range list {
		c, ok := cats[rv.Company]
		if !ok {
			if src, err := n.latestCatalog(ctx, rv.Company); err == nil && src != nil {
				c, _ = catalog.Parse("catalog.yaml", src, label.Check)
			}
			cats[rv.Company] = c
		}
		v := reviewView{Review: rv}
		for _, ch := range rv.Changes {
			v.Lines = append(v.Lines, ch.Words(lang, c))
		}
		for _, k := range rv.Countersign {
			id := strings.TrimPrefix(k, "use_case:")
			name := id
			if c != nil {
				name = c.DisplayName(id, lang)
			}
			v.UseCases = append(v.UseCases, name)
			if a, ok := rv.Answers[id]; ok {
				v.Assessed = append(v.Assessed, namedAnswers{name, a})
			}
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b reviewView) int {
		return cmp.Compare(boolInt(a.Status != CSPending), boolInt(b.Status != CSPending))
	})
	p.Flash = flash
	p.Data = map[string]any{"Reviews": out}
	return n.render(w, r, p, "countersigns")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
