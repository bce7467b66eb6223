package oversight

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"strings"

	"github.com/portrait-dev/portrait/catalog"
)

//go:embed templates/*.html
var templateFS embed.FS

// labels are the headings of the HTML documents: [zh-CN, en].
var labels = map[string][2]string{
	"generated": {"生成于", "Generated"}, "catalog": {"目录", "Catalog"},
	"controller": {"个人信息处理者", "Controller"}, "provider": {"算法推荐服务提供者", "Provider"},
	"name": {"名称", "Name"}, "contact": {"联系方式", "Contact"}, "officer": {"个人信息保护负责人", "Data protection officer"},
	"purposes": {"处理目的", "Purposes"}, "purpose": {"目的", "Purpose"}, "basis": {"法律依据", "Legal basis"},
	"categories": {"个人信息种类", "Data categories"}, "category": {"种类", "Category"}, "recipients": {"接收方", "Recipients"},
	"no_recipients": {"无：目录未声明向其他处理者提供", "None: the catalog declares no recipient"},
	"assessment":    {"影响评估", "Impact assessment"}, "subjects": {"个人信息主体类别", "Data subjects"},
	"field": {"字段", "Field"}, "retention": {"保存期限", "Retention"}, "sensitive": {"敏感", "sensitive"},
	"transfers": {"跨境提供", "Transfers to third countries"}, "security": {"安全保护措施", "Security measures"},
	"decisions": {"自动化决策", "Automated decisions"}, "usecase": {"应用场景", "Use-case"}, "tier": {"风险等级", "Risk tier"},
	"model": {"模型", "Model"}, "logic": {"逻辑", "Logic"},
	"service_forms": {"服务形式", "Service forms"}, "fields": {"应用领域", "Application fields"},
	"algorithms": {"算法", "Algorithms"}, "id": {"标识", "Id"}, "kind": {"类别", "Kind"}, "algorithm_type": {"算法类型", "Algorithm type"},
	"inputs": {"输入", "Inputs"}, "self_assessment": {"安全自评估", "Self-assessment"}, "summary": {"结论", "Summary"},
	"public":    {"公示说明（基本原理、目的意图和主要运行机制）", "Public description (principle, purpose and main mechanism)"},
	"mechanism": {"主要运行机制", "Main mechanism"}, "history": {"变更记录", "Change history"}, "date": {"日期", "Date"},
	"added": {"新增", "Added"}, "changed": {"变更", "Changed"}, "removed": {"删除", "Removed"},
}

// pages are parsed once; render binds "t" to the page's language on a clone.
var pages = template.Must(template.New("").Funcs(template.FuncMap{"t": func(string) string { return "" }, "w": func(string) string { return "" }}).ParseFS(templateFS, "templates/*.html"))

// words binds "t" (a heading) and "w" (a key in words: the catalog's
// display name, the taxonomy's name, or the word for a tier or kind) to
// language l, so that no page shows a raw key (CN-7).
func words(cat *catalog.Catalog, l string) template.FuncMap {
	return template.FuncMap{
		"t": func(key string) string { return tr(l, labels[key][0], labels[key][1]) },
		"w": func(key string) string {
			if w, ok := valueWords[key]; ok {
				return tr(l, w[0], w[1])
			}
			// A declaration in the filing's history: "field:city".
			if kind, id, ok := strings.Cut(key, ":"); ok && cat != nil {
				if w, ok := valueWords[kind]; ok {
					return tr(l, w[0], w[1]) + tr(l, "：", ": ") + cat.DisplayName(id, l)
				}
			}
			if cat != nil {
				return cat.DisplayName(key, l)
			}
			return key
		},
	}
}

// valueWords are the words for the enum values the documents show.
var valueWords = map[string][2]string{
	catalog.TierHigh: {"高", "high"}, catalog.TierLimited: {"有限", "limited"}, catalog.TierMinimal: {"低", "minimal"}, catalog.TierProhibited: {"禁止", "prohibited"},
	"use_case": {"应用场景", "use-case"}, "label": {"标签", "label"}, "purpose": {"目的", "purpose"}, "field": {"字段", "field"},
	"event_type": {"事件类型", "event type"}, "handler": {"处理者", "handler"},
	catalog.UseRecommendation: {"推荐", "recommendation"}, catalog.UseAudience: {"人群圈选", "audience"}, catalog.UseDecision: {"自动化决策", "automated decision"},
	catalog.KindRule: {"规则", "rule"}, catalog.KindSegment: {"聚类分群", "segment"}, catalog.KindScore: {"评分", "score"},
	// use-case tags (catalog.Tags), the filing's application fields
	"recruitment": {"招聘", "recruitment"}, "worker_management": {"员工管理", "worker management"}, "credit_scoring": {"信用评估", "credit scoring"},
	"insurance_pricing": {"保险定价", "insurance pricing"}, "education": {"教育", "education"}, "essential_services": {"基本服务", "essential services"},
	"pricing": {"定价", "pricing"}, "terms": {"交易条件", "terms"}, "marketing": {"营销", "marketing"}, "minors": {"未成年人", "minors"},
	catalog.KindRFM: {"RFM 分层", "RFM"}, catalog.KindBGNBD: {"购买预测（BG/NBD）", "purchase forecast (BG/NBD)"},
}

func render(w io.Writer, cat *catalog.Catalog, page, l, title string, doc any) error {
	t, err := pages.Clone()
	if err != nil {
		return fmt.Errorf("template %s: %w", page, err)
	}
	t.Funcs(words(cat, l))
	return t.ExecuteTemplate(w, page, map[string]any{"Lang": l, "Title": title, "Doc": doc})
}

// fragment renders page without its document head and foot, for a page
// that has its own (the staff console).
func fragment(w io.Writer, cat *catalog.Catalog, page, l string, doc any) error {
	t, err := pages.Clone()
	if err == nil {
		_, err = t.New("top").Parse(`<p class="meta">{{t "generated"}} {{.Doc.Generated.Format "2006-01-02 15:04 MST"}} · {{t "catalog"}} {{.Doc.Version}}</p>`)
	}
	if err == nil {
		_, err = t.New("bottom").Parse("")
	}
	if err != nil {
		return fmt.Errorf("template %s: %w", page, err)
	}
	t.Funcs(words(cat, l))
	return t.ExecuteTemplate(w, page, map[string]any{"Lang": l, "Doc": doc})
}

// Fragment writes the record's body, without a page around it.
func (p Processing) Fragment(w io.Writer) error {
	return fragment(w, p.cat, "processing.html", p.Lang, p)
}

// Fragment writes the filing's body, without a page around it.
func (f Filing) Fragment(w io.Writer) error { return fragment(w, f.cat, "filing.html", f.Lang, f) }

// HTML writes the record as a page in its language.
func (p Processing) HTML(w io.Writer) error {
	return render(w, p.cat, "processing.html", p.Lang, tr(p.Lang, "个人信息处理活动记录", "Record of processing activities"), p)
}

// HTML writes the filing as a page in its language.
func (f Filing) HTML(w io.Writer) error {
	return render(w, f.cat, "filing.html", f.Lang, tr(f.Lang, "算法备案信息", "Algorithm filing record"), f)
}
