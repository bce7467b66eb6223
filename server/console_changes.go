package server

import (
	"html/template"
	"maps"
	"net/http"
	"slices"
	"strings"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/policy"
)

// The console's catalog-changes section (SG-7): change requests with
// their diff, and a form on which a named admin or reviewer other than
// the author approves with a judgement of the data and the algorithm.
// Kept in its own file, with its texts, to stay clear of the other
// sections.
func init() {
	consoleSections = append(consoleSections, section{"/console/changes", "changes", staff})
	consolePages["changes"] = template.Must(template.New("").Funcs(consoleFuncs).ParseFS(templateFS, "templates/console_layout.html", "templates/console_changes.html"))
	for lang, t := range changesTexts {
		maps.Copy(consoleMessages[lang], t)
	}
}

var changesTexts = map[string]map[string]string{
	"zh-CN": {
		"changes":        "目录变更审批",
		"changes_intro":  "新增或修改的标签与应用场景，须由作者以外的具名人员审批后才生效；高风险场景在接入监管方时还须监管方会签。",
		"change_request": "变更申请", "author": "作者", "approved_by": "审批人", "approve": "批准",
		"judge_data":        "对所选数据的判断（为何必要、适当）",
		"judge_algorithm":   "对算法的判断（为何适合此用途）",
		"needs_countersign": "须监管方会签", "no_changes": "暂无变更申请。",
		"cstatus_pending": "待审批", "cstatus_awaiting_countersignature": "待监管方会签", "cstatus_approved": "已批准", "cstatus_refused_by_regulator": "监管方拒绝会签", "cstatus_superseded": "已被后续申请取代",
		"done_change": "已批准变更申请。",
	},
	"en": {
		"changes":        "Catalog changes",
		"changes_intro":  "New or changed labels and use-cases go live only once a named person other than their author approves them; high-tier use-cases also need the regulator's countersignature when joined.",
		"change_request": "Change request", "author": "Author", "approved_by": "Approved by", "approve": "Approve",
		"judge_data":        "Your judgement of the data chosen (why it is necessary and adequate)",
		"judge_algorithm":   "Your judgement of the algorithm (why it fits the use)",
		"needs_countersign": "Needs the regulator's countersignature", "no_changes": "No change requests.",
		"cstatus_pending": "pending", "cstatus_awaiting_countersignature": "awaiting the regulator", "cstatus_approved": "approved", "cstatus_refused_by_regulator": "refused by the regulator", "cstatus_superseded": "superseded",
		"done_change": "Change request approved.",
	},
}

type changesData struct {
	Rows       []oversight.ChangeRequest
	CanApprove bool
}

func (s *Server) consoleChangesRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /console/changes", s.section("changes", s.consoleChanges))
	m.HandleFunc("POST /console/changes/{index}", s.section("changes", s.consoleApprove))
}

func (s *Server) changesView(r *http.Request, c policy.Caller, v *consoleView) error {
	if s.cfg.Oversight == nil {
		return portrait.Errorf(portrait.EUNAVAILABLE, "oversight is not configured on this server")
	}
	list, err := s.cfg.Oversight.ChangeRequests(r.Context())
	if err != nil {
		return err
	}
	v.Data = &changesData{Rows: list, CanApprove: slices.Contains(approvers, c.Role)}
	return nil
}

func (s *Server) consoleChanges(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	if err := s.changesView(r, c, v); err != nil {
		s.consoleFail(w, v, err)
		return
	}
	s.renderConsole(w, http.StatusOK, v)
}

func (s *Server) consoleApprove(w http.ResponseWriter, r *http.Request, c policy.Caller, v *consoleView) {
	err := s.changesView(r, c, v)
	if err == nil {
		var n int64
		if n, err = changeIndex(r); err == nil {
			if !slices.Contains(approvers, c.Role) {
				err = &portrait.Error{Code: portrait.EFORBIDDEN, Requirement: "SG-7", Message: "only an admin or reviewer may approve catalog changes"}
			} else {
				_, err = s.cfg.Oversight.Approve(r.Context(), c, n, oversight.Judgement{Data: strings.TrimSpace(r.PostFormValue("data")), Algorithm: strings.TrimSpace(r.PostFormValue("algorithm"))})
			}
		}
	}
	if err != nil {
		s.consoleFail(w, v, err)
		return
	}
	http.Redirect(w, r, "/console/changes?done=change", http.StatusSeeOther)
}
