package server

import "github.com/portrait-dev/portrait/catalog"

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

// Change says a catalog change in the page's language, declarations and
// keys by name (catalog.Change.Words).
func (v *consoleView) Change(ch catalog.Change) string { return ch.Words(v.Lang, v.cat) }
