package server

import (
	"strings"

	"github.com/portrait-dev/portrait/catalog"
)

// consoleWords are the words the console shows for raw values stored in
// records (states, kinds, actions), so that a Chinese page never shows an
// enum value; merged into consoleMessages, zh-CN first.
var consoleWords = map[string]map[string]string{
	"zh-CN": {
		"w_automated": "自动决定", "w_pending_review": "待人工复核", "w_upheld": "复核维持", "w_overturned": "复核推翻", "w_modified": "复核修正",
		"w_granted": "同意", "w_withdrawn": "撤回", "w_refused": "拒绝", "w_open": "受理", "w_closed": "结案", "w_fulfilled": "已完成",
		"w_appeal": "申诉", "w_refusal": "拒绝自动决定", "w_access": "查阅", "w_export": "导出", "w_correction": "更正", "w_erasure": "删除",
		"w_restriction": "限制处理", "w_objection": "反对", "w_label": "标签", "w_personalization": "个性化", "w_explanation": "解释说明",
		"w_withdrawal": "撤回", "w_decision": "自动化决策", "w_recommendation": "推荐", "w_audience": "人群圈选",
		"w_high": "高", "w_limited": "有限", "w_minimal": "低", "w_prohibited": "禁止",
		"w_consent": "同意", "w_contract": "合同", "w_legal_obligation": "法定义务", "w_vital_interests": "重大利益",
		"w_public_task": "公共职责", "w_legitimate_interests": "合法利益", "w_employment": "人力资源管理",
		"w_system": "系统", "w_collect": "收集", "w_field": "字段", "w_purpose": "目的", "w_usecase": "应用场景", "w_use_case": "应用场景",
		"w_violation_report": "违法举报",
		// Audit-log actions.
		"w_signin": "登录", "w_signout": "退出登录", "w_issue": "签发", "w_create": "创建", "w_close": "结案", "w_answer": "答复",
		"w_sweep": "到期清理", "w_read": "读取", "w_joined": "加入", "w_flag": "标记", "w_file": "备案", "w_view": "查看",
		"w_verify": "验证", "w_unfair_decisions": "不公平的决定", "w_suspend": "暂停", "w_simulate": "模拟", "w_set": "设定",
		"w_send": "发送", "w_route": "转交", "w_revoke": "吊销", "w_resume": "恢复", "w_restore": "恢复数据", "w_report": "报告",
		"w_record": "记录", "w_reapply": "重新适用", "w_read_consents": "读取同意记录", "w_put": "写入", "w_propose": "提出变更",
		"w_price_discrimination": "价格歧视", "w_notify": "通知", "w_minor": "未成年人", "w_lift": "解除", "w_left": "退出",
		"w_integrity": "完整性", "w_halt": "叫停", "w_fit": "拟合模型", "w_erase": "删除", "w_enrol": "登记", "w_draft": "起草",
		"w_decide": "作出决定", "w_countersign": "会签", "w_correct": "更正", "w_clear": "解除标记", "w_approve": "批准",
		"w_apply": "应用", "w_recommend": "推荐", "w_derive": "计算标签", "w_forget": "遗忘", "w_use": "使用", "w_refuse": "拒绝",
		"w_portrait": "画像",
		// Who did it: roles and the engine's own parts.
		"r_admin": "管理员", "r_operator": "运营人员", "r_reviewer": "复核员", "r_auditor": "审计员", "r_regulator": "监管机构",
		"r_subject": "数据主体", "r_system": "系统", "r_regulator-admin": "监管机构管理员", "r_inspector": "监管检查员",
		"r_company": "企业", "r_public": "公众", "r_service": "服务", "r_staff": "员工", "r_demo": "演示",
		"e_fairness": "公平性监测", "e_delivery": "数据交付", "e_derive": "标签计算", "e_restore": "恢复", "e_supervise": "监督报告",
		"e_sweeper": "保留期清理", "e_import": "导入", "e_cli": "命令行",
	},
	"en": {
		"w_automated": "automated", "w_pending_review": "awaiting review", "w_upheld": "upheld", "w_overturned": "overturned", "w_modified": "corrected",
		"w_granted": "granted", "w_withdrawn": "withdrawn", "w_refused": "refused", "w_open": "opened", "w_closed": "closed", "w_fulfilled": "fulfilled",
		"w_appeal": "appeal", "w_refusal": "refusal of automation", "w_access": "access", "w_export": "export", "w_correction": "correction", "w_erasure": "erasure",
		"w_restriction": "restriction", "w_objection": "objection", "w_label": "label", "w_personalization": "personalisation", "w_explanation": "explanation",
		"w_withdrawal": "withdrawal", "w_decision": "automated decision", "w_recommendation": "recommendation", "w_audience": "audience",
		"w_high": "high", "w_limited": "limited", "w_minimal": "minimal", "w_prohibited": "prohibited",
		"w_consent": "consent", "w_contract": "contract", "w_legal_obligation": "legal obligation", "w_vital_interests": "vital interests",
		"w_public_task": "public task", "w_legitimate_interests": "legitimate interests", "w_employment": "employment",
		"w_system": "system", "w_collect": "collect", "w_field": "field", "w_purpose": "purpose", "w_usecase": "use-case", "w_use_case": "use-case",
		"w_violation_report": "violation report",
		"w_signin":           "sign in", "w_signout": "sign out", "w_issue": "issue", "w_create": "create", "w_close": "close", "w_answer": "answer",
		"w_sweep": "retention sweep", "w_read": "read", "w_joined": "joined", "w_flag": "flag", "w_file": "file", "w_view": "view",
		"w_verify": "verify", "w_unfair_decisions": "unfair decisions", "w_suspend": "suspend", "w_simulate": "simulate", "w_set": "set",
		"w_send": "send", "w_route": "route", "w_revoke": "revoke", "w_resume": "resume", "w_restore": "restore", "w_report": "report",
		"w_record": "record", "w_reapply": "re-apply", "w_read_consents": "read consents", "w_put": "write", "w_propose": "propose a change",
		"w_price_discrimination": "price discrimination", "w_notify": "notify", "w_minor": "minor", "w_lift": "lift", "w_left": "left",
		"w_integrity": "integrity", "w_halt": "halt", "w_fit": "fit a model", "w_erase": "erase", "w_enrol": "enrol", "w_draft": "draft",
		"w_decide": "decide", "w_countersign": "countersign", "w_correct": "correct", "w_clear": "clear a flag", "w_approve": "approve",
		"w_apply": "apply", "w_recommend": "recommend", "w_derive": "derive labels", "w_forget": "forget", "w_use": "use", "w_refuse": "refuse",
		"w_portrait": "profile",
		"r_admin":    "administrator", "r_operator": "operator", "r_reviewer": "reviewer", "r_auditor": "auditor", "r_regulator": "regulator",
		"r_subject": "data subject", "r_system": "system", "r_regulator-admin": "regulator administrator", "r_inspector": "inspector",
		"r_company": "company", "r_public": "public", "r_service": "service", "r_staff": "staff", "r_demo": "demo",
		"e_fairness": "fairness monitor", "e_delivery": "delivery", "e_derive": "label derivation", "e_restore": "restore", "e_supervise": "supervision report",
		"e_sweeper": "retention sweeper", "e_import": "import", "e_cli": "command line",
	},
}

func init() {
	for lang, words := range consoleWords {
		for k, w := range words {
			consoleMessages[lang][k] = w
		}
	}
}

// Word is what the page shows for a raw value: the display name of a
// use-case, label, purpose or field of the catalog, the console's word for
// a state, kind or action, the name of a fideslang key, or the value
// itself when none of these knows it.
func (v *consoleView) Word(raw string) string {
	if v.cat != nil && v.cat.DisplayName(raw, v.Lang) != raw {
		return v.cat.DisplayName(raw, v.Lang)
	}
	if w, ok := v.T["w_"+raw]; ok {
		return w
	}
	if catalog.KnownCategory(raw) {
		return catalog.CategoryName(raw, v.Lang)
	}
	if catalog.KnownDataUse(raw) {
		return catalog.DataUseName(raw, v.Lang)
	}
	return raw
}

// Actor says who wrote a log entry: "role:id" as the role's word and the
// id (a staff key's name, a company's id), the engine's part by name for
// the system, a bare role as its word.
func (v *consoleView) Actor(a string) string {
	role, id, _ := strings.Cut(a, ":")
	r, ok := v.T["r_"+role]
	if !ok {
		return v.Word(a)
	}
	if id == "" {
		return r
	}
	if e, ok := v.T["e_"+id]; ok && role == "system" {
		return r + "（" + e + "）"
	}
	return r + " " + id
}

// Change says a catalog change in the page's language, declarations and
// keys by name (catalog.Change.Words).
func (v *consoleView) Change(ch catalog.Change) string { return ch.Words(v.Lang, v.cat) }
