package server

// messages are the privacy centre's texts, zh-CN first. Keys missing in a
// language fall back to zh-CN (see texts).
var messages = map[string]map[string]string{
	"zh-CN": {
		"centre": "隐私中心", "skip": "跳到正文", "nav": "主导航", "home": "概览", "consents": "同意", "labels": "标签",
		"personalization": "个性化", "export": "导出", "erasure": "删除", "requests": "我的请求", "notice": "隐私政策",
		"signin": "登录", "signout": "退出", "signin_intro": "请输入我们发给您的用户令牌以登录。", "token": "用户令牌",
		"demo": "演示用户", "demo_intro": "演示模式：选择一个演示用户直接登录。",
		"home_intro": "在这里查看并掌控我们关于您的数据：每项更改立即生效。",
		"granted_n":  "项已同意", "labels_n": "个标签", "open_n": "个处理中",
		"version": "版本", "handler": "个人信息处理者", "contact": "联系方式", "officer": "个人信息保护负责人",
		"purposes": "处理目的", "purpose": "目的", "basis": "法律依据", "categories": "数据类别", "category": "类别", "fields": "字段",
		"recipients": "接收方", "retention": "保存期限", "sensitive": "敏感", "separate": "单独同意",
		"decisions": "自动化决策", "logic": "逻辑：", "consequences": "影响：", "no_decisions": "我们不做自动化决策。",
		"recommenders": "推荐与营销的原理", "rights": "您的权利及行使方式", "objection": "反对权",
		"consents_intro": "每个目的单独同意；撤回与同意一样只需一步。撤回不影响撤回前的处理。",
		"granted":        "已同意", "refused": "已拒绝", "withdrawn": "已撤回", "none": "未同意", "not_consent": "不以同意为依据",
		"grant": "同意", "withdraw": "撤回同意",
		"labels_intro": "这些是用于为您个性化的标签。停用后不再使用；删除后清除且不再生成，除非您恢复。",
		"why":          "为什么我有这个标签？", "active": "使用中", "deselected": "已停用", "deleted": "已删除",
		"deselect": "停用", "delete": "删除", "restore": "恢复", "no_labels": "您目前没有标签。",
		"dial_intro": "设定您希望获得多少个性化：0 为完全不个性化，100 为完全个性化。",
		"dial_label": "个性化程度（0–100）", "dial_help": "下一次请求即按新设置执行。", "save": "保存",
		"choices": "我的选择", "restriction": "限制处理（仅存储）", "object_profiling": "反对画像", "object_marketing": "反对直接营销",
		"on": "已开启", "off": "未开启", "restrict": "限制处理", "lift": "解除限制", "object": "提出反对", "withdraw_objection": "撤回反对",
		"export_intro": "下载我们关于您的全部数据：资料、事件、同意记录、标签及其来源和解释、决定和接收方，为机器可读、带签名的 JSON。",
		"download":     "下载导出文件", "export_help": "文件带有我们的数字签名，其他处理者可离线验证其完整性。",
		"erasure_intro": "删除后无法恢复。我们会销毁您的数据密钥并删除以下全部内容：", "will_remove": "将被删除的内容",
		"rm_key": "您的数据密钥（所有加密副本随之不可读）", "rm_events": "条行为事件", "rm_fields": "项资料",
		"rm_labels": "个标签", "rm_consents": "条同意记录", "rm_decisions": "项自动化决定", "rm_choices": "项标签选择",
		"rm_caches":    "缓存的推荐和待发送的营销名单",
		"erasure_keep": "审计日志仅保留不含个人信息的删除记录，请求记录保留以便您查询。", "confirm_erasure": "确认删除我的全部数据",
		"erased": "已删除", "erased_intro": "您的数据已删除。这是签名回执，请保存：", "case": "请求编号", "time": "时间",
		"log_index": "审计日志条目", "outcome": "结果", "receipt_json": "回执（JSON）",
		"requests_intro": "您的每个请求及其期限。能自动完成的请求会立即完成。",
		"type":           "类型", "status": "状态", "created": "提交时间", "deadline": "期限", "no_requests": "暂无请求。",
		"open": "处理中", "fulfilled": "已完成",
		"type_access": "查阅", "type_export": "导出", "type_correction": "更正", "type_erasure": "删除", "type_restriction": "限制处理",
		"type_objection": "反对", "type_label": "标签", "type_personalization": "个性化", "type_explanation": "解释说明", "type_withdrawal": "撤回",
		"done_consent": "已更新同意：", "done_label": "已更新标签：", "done_level": "个性化程度已设为 ", "done_choice": "已更新您的选择。",
		"bad_csrf": "表单已过期或来源不明，未做任何更改。请重试。", "bad_token": "令牌无效或已过期，请重新登录。",
		"signed_out": "您已退出。",
	},
	"en": {
		"centre": "Privacy centre", "skip": "Skip to content", "nav": "Main", "home": "Overview", "consents": "Consents", "labels": "Labels",
		"personalization": "Personalisation", "export": "Export", "erasure": "Erasure", "requests": "My requests", "notice": "Privacy notice",
		"signin": "Sign in", "signout": "Sign out", "signin_intro": "Enter the subject token we sent you to sign in.", "token": "Subject token",
		"demo": "Demo subjects", "demo_intro": "Demo mode: pick a demo subject to sign in as.",
		"home_intro": "See and control the data we hold about you; every change takes effect at once.",
		"granted_n":  "granted", "labels_n": "labels", "open_n": "open",
		"version": "Version", "handler": "Who handles your data", "contact": "contact", "officer": "protection officer",
		"purposes": "Purposes", "purpose": "Purpose", "basis": "Legal basis", "categories": "Data categories", "category": "Category", "fields": "Fields",
		"recipients": "Recipients", "retention": "Kept for", "sensitive": "sensitive", "separate": "separate consent",
		"decisions": "Automated decisions", "logic": "Logic:", "consequences": "Consequences:", "no_decisions": "We make no automated decisions.",
		"recommenders": "How recommendations and marketing work", "rights": "Your rights and how to use them", "objection": "Your right to object",
		"consents_intro": "Each purpose has its own consent; withdrawing is one step, as granting is. Withdrawal does not affect processing before it.",
		"granted":        "granted", "refused": "refused", "withdrawn": "withdrawn", "none": "not given", "not_consent": "not based on consent",
		"grant": "Grant", "withdraw": "Withdraw consent",
		"labels_intro": "These labels are used to personalise for you. Deselected labels are no longer used; deleted ones are removed and not derived again unless you restore them.",
		"why":          "Why do I have this label?", "active": "in use", "deselected": "deselected", "deleted": "deleted",
		"deselect": "Deselect", "delete": "Delete", "restore": "Restore", "no_labels": "You have no labels.",
		"dial_intro": "Set how much personalisation you want: 0 is none, 100 is full.",
		"dial_label": "Personalisation level (0–100)", "dial_help": "Your next request uses the new setting.", "save": "Save",
		"choices": "My choices", "restriction": "Restrict processing (storage only)", "object_profiling": "Object to profiling", "object_marketing": "Object to direct marketing",
		"on": "on", "off": "off", "restrict": "Restrict", "lift": "Lift restriction", "object": "Object", "withdraw_objection": "Withdraw objection",
		"export_intro": "Download everything we hold about you — profile, events, consent records, labels with their provenance and explanation, decisions and recipients — as signed, machine-readable JSON.",
		"download":     "Download my export", "export_help": "The file carries our digital signature, so another handler can check it offline.",
		"erasure_intro": "Erasure cannot be undone. We destroy your data key and delete all of the following:", "will_remove": "What will be removed",
		"rm_key": "your data key (every encrypted copy becomes unreadable)", "rm_events": "behaviour events", "rm_fields": "profile fields",
		"rm_labels": "labels", "rm_consents": "consent records", "rm_decisions": "automated decisions", "rm_choices": "label choices",
		"rm_caches":    "cached recommendations and queued marketing audiences",
		"erasure_keep": "The audit log keeps only a record of the erasure with no personal data; your requests stay listed so you can follow them.", "confirm_erasure": "Yes, erase all my data",
		"erased": "Erased", "erased_intro": "Your data has been erased. Keep this signed receipt:", "case": "Request", "time": "Time",
		"log_index": "Audit-log entry", "outcome": "Outcome", "receipt_json": "Receipt (JSON)",
		"requests_intro": "Each of your requests with its deadline. Requests that can be fulfilled automatically are fulfilled at once.",
		"type":           "Type", "status": "Status", "created": "Received", "deadline": "Deadline", "no_requests": "No requests yet.",
		"open": "open", "fulfilled": "fulfilled",
		"type_access": "access", "type_export": "export", "type_correction": "correction", "type_erasure": "erasure", "type_restriction": "restriction",
		"type_objection": "objection", "type_label": "label", "type_personalization": "personalisation", "type_explanation": "explanation", "type_withdrawal": "withdrawal",
		"done_consent": "Consent updated: ", "done_label": "Label updated: ", "done_level": "Personalisation set to ", "done_choice": "Your choice was saved.",
		"bad_csrf": "The form expired or came from elsewhere; nothing was changed. Please try again.", "bad_token": "The token is not valid or has expired; sign in again.",
		"signed_out": "You are signed out.",
	},
}

// texts returns the messages of lang with zh-CN filling any gap.
func texts(lang string) map[string]string {
	if lang == "zh-CN" {
		return messages["zh-CN"]
	}
	out := make(map[string]string, len(messages["zh-CN"]))
	for k, v := range messages["zh-CN"] {
		out[k] = v
	}
	for k, v := range messages[lang] {
		out[k] = v
	}
	return out
}
