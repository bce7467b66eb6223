package rights

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

// Notice is the privacy notice, generated from the catalog so that it
// cannot drift from what the system does (CN-7, CN-10, LP-6).
type Notice struct {
	// Version changes whenever anything the notice says changes.
	Version      string                `json:"version"`
	Lang         string                `json:"lang"`
	Handler      NoticeHandler         `json:"handler"`
	Purposes     []NoticePurpose       `json:"purposes"`
	Categories   []NoticeCategory      `json:"data_categories"`
	Recipients   []NoticeRecipient     `json:"recipients"`
	Decisions    []NoticeDetermination `json:"automated_decisions"`
	Recommenders []NoticeRecommender   `json:"recommenders"`
	Rights       []NoticeRight         `json:"rights"`
	// Objection is the right to object, stated apart from the other
	// rights (GDPR 21(4), CN-10).
	Objection string `json:"objection"`
	Deadline  string `json:"deadline"`
}

// NoticeHandler names the handler and the protection officer.
type NoticeHandler struct {
	Name    string `json:"name"`
	Contact string `json:"contact"`
	Officer string `json:"officer,omitempty"`
}

// NoticePurpose is one purpose with its basis and what it uses.
type NoticePurpose struct {
	ID string `json:"id"`
	// Title is the purpose's display name; CategoryNames are Categories
	// in words, both in the notice's language (what a page shows).
	Title         string   `json:"title"`
	Text          string   `json:"text"`
	Basis         string   `json:"basis"`
	BasisText     string   `json:"basis_text"`
	NoticeVersion string   `json:"notice_version"`
	Required      bool     `json:"required"`
	Separate      bool     `json:"separate_consent"`
	Categories    []string `json:"data_categories"`
	CategoryNames []string `json:"data_category_names"`
	Recipients    []string `json:"recipients"`
}

// NoticeCategory is one data category: the fields in it, their retention
// and purposes.
type NoticeCategory struct {
	Category string   `json:"category"`
	Name     string   `json:"name"` // the category in words, in the notice's language
	Fields   []string `json:"fields"`
	// FieldNames are Fields by their display names.
	FieldNames []string `json:"field_names"`
	Sensitive  bool     `json:"sensitive"`
	Retention  string   `json:"retention"`
	Purposes   []string `json:"purposes"`
}

// NoticeRecipient is another handler that receives data.
type NoticeRecipient struct {
	Recipient string   `json:"recipient"`
	Purposes  []string `json:"purposes"`
}

// NoticeDetermination is one automated decision: what, its logic and its
// consequences (CN-10).
type NoticeDetermination struct {
	UseCase      string   `json:"usecase"`
	Title        string   `json:"title"`
	Text         string   `json:"text"`
	Tier         string   `json:"tier"`
	Purposes     []string `json:"purposes"`
	Inputs       []string `json:"inputs"`
	Logic        string   `json:"logic"`
	Consequences string   `json:"consequences"`
}

// NoticeRecommender is one recommender or audience: principle, purpose
// and main mechanism in plain language (LP-6).
type NoticeRecommender struct {
	UseCase   string   `json:"usecase"`
	Title     string   `json:"title"`
	Kind      string   `json:"kind"`
	Text      string   `json:"text"`
	Purposes  []string `json:"purposes"`
	Labels    []string `json:"labels"`
	Mechanism string   `json:"mechanism"`
}

// NoticeRight is one right and how to exercise it.
type NoticeRight struct {
	Right       string `json:"right"`
	Text        string `json:"text"`
	How         string `json:"how"`
	API         string `json:"api"`
	Requirement string `json:"requirement"`
}

var basisText = map[catalog.Basis][2]string{
	catalog.BasisConsent:             {"您的同意", "your consent"},
	catalog.BasisContract:            {"履行与您的合同所必需", "necessary for the contract with you"},
	catalog.BasisLegalObligation:     {"履行法定义务所必需", "necessary to meet a legal obligation"},
	catalog.BasisVitalInterests:      {"保护生命健康和财产安全所必需", "necessary to protect vital interests"},
	catalog.BasisPublicTask:          {"履行公共职责所必需", "necessary for a task in the public interest"},
	catalog.BasisLegitimateInterests: {"我们的合法利益", "our legitimate interests"},
	catalog.BasisEmployment:          {"人力资源管理所必需", "necessary for human-resources management"},
}

func pick(zh bool, s [2]string) string {
	if zh {
		return s[0]
	}
	return s[1]
}

// BuildNotice generates the notice in lang ("zh-CN", the default, or
// "en") from the catalog; deadline is the deadline requests are answered by.
func BuildNotice(cat *catalog.Catalog, lang string, deadline Deadline) Notice {
	zh := lang != "en"
	if zh {
		lang = "zh-CN"
	}
	n := Notice{Lang: lang, Handler: NoticeHandler{Name: cat.Handler.Name.In(lang), Contact: cat.Handler.Contact, Officer: cat.Handler.Officer},
		Purposes: []NoticePurpose{}, Categories: []NoticeCategory{}, Recipients: []NoticeRecipient{}, Decisions: []NoticeDetermination{},
		Recommenders: []NoticeRecommender{}}
	recipients := map[string][]string{}
	for _, p := range cat.Purposes {
		np := NoticePurpose{ID: p.ID, Title: cat.PurposeName(p.ID, lang), Text: p.Notice.In(lang), Basis: string(p.Basis), BasisText: pick(zh, basisText[p.Basis]),
			NoticeVersion: p.NoticeVersion, Required: p.Required, Separate: p.Separate, Categories: []string{}, Recipients: []string{}}
		for _, f := range cat.Fields {
			if slices.Contains(f.Purposes, p.ID) && !slices.Contains(np.Categories, f.Category) {
				np.Categories = append(np.Categories, f.Category)
			}
		}
		sort.Strings(np.Categories)
		for _, c := range np.Categories {
			np.CategoryNames = append(np.CategoryNames, catalog.CategoryName(c, lang))
		}
		np.Recipients = append(np.Recipients, p.Recipients...)
		for _, r := range p.Recipients {
			recipients[r] = append(recipients[r], p.ID)
		}
		n.Purposes = append(n.Purposes, np)
	}
	cats := map[string]*NoticeCategory{}
	for _, f := range cat.Fields {
		c := cats[f.Category]
		if c == nil {
			c = &NoticeCategory{Category: f.Category, Name: catalog.CategoryName(f.Category, lang), Purposes: []string{}}
			cats[f.Category] = c
		}
		c.Fields = append(c.Fields, f.Name)
		c.FieldNames = append(c.FieldNames, cat.FieldName(f.Name, lang))
		c.Sensitive = c.Sensitive || f.Sensitive
		for _, p := range f.Purposes {
			if !slices.Contains(c.Purposes, p) {
				c.Purposes = append(c.Purposes, p)
			}
		}
	}
	for _, c := range cats {
		c.Retention = retention(longest(c, cat), zh)
		n.Categories = append(n.Categories, *c)
	}
	sort.Slice(n.Categories, func(i, j int) bool { return n.Categories[i].Category < n.Categories[j].Category })
	for r, ps := range recipients {
		n.Recipients = append(n.Recipients, NoticeRecipient{Recipient: r, Purposes: ps})
	}
	sort.Slice(n.Recipients, func(i, j int) bool { return n.Recipients[i].Recipient < n.Recipients[j].Recipient })
	for _, u := range cat.UseCases {
		if u.Tier == catalog.TierProhibited {
			continue
		}
		if u.Kind == "decision" {
			n.Decisions = append(n.Decisions, decision(cat, u, lang, zh))
			continue
		}
		n.Recommenders = append(n.Recommenders, recommender(cat, u, lang, zh))
	}
	n.Rights = rightsList(zh)
	n.Objection = pick(zh, [2]string{
		"您有权随时反对基于画像的个性化推荐和直接营销。反对直接营销后立即生效，且在所有渠道生效；也可将个性化程度调为0，获得非个性化的服务。",
		"You may object at any time to profiling and to direct marketing. An objection to direct marketing takes effect at once, everywhere; you can also set personalisation to 0 to get a non-personalised service."})
	n.Deadline = deadlineText(deadline, zh)
	n.Version = NoticeVersion(cat, deadline)
	return n
}

// longest returns the longest retention among the category's fields.
func longest(c *NoticeCategory, cat *catalog.Catalog) catalog.Duration {
	var max catalog.Duration
	for _, name := range c.Fields {
		if f := cat.Field(name); f != nil && f.Retention > max {
			max = f.Retention
		}
	}
	return max
}

func retention(d catalog.Duration, zh bool) string {
	td := time.Duration(d)
	day := 24 * time.Hour
	switch {
	case td >= 365*day && td%(365*day) == 0:
		return fmt.Sprintf(pick(zh, [2]string{"%d年", "%d years"}), td/(365*day))
	case td%day == 0:
		return fmt.Sprintf(pick(zh, [2]string{"%d天", "%d days"}), td/day)
	}
	return td.String()
}

func decision(cat *catalog.Catalog, u catalog.UseCase, lang string, zh bool) NoticeDetermination {
	d := NoticeDetermination{UseCase: u.ID, Title: cat.UseCaseName(u.ID, lang), Text: u.Description.In(lang), Tier: u.Tier, Purposes: u.Purposes, Inputs: []string{}}
	var parts []string
	if l := cat.Label(u.Model); l != nil {
		d.Inputs = append(d.Inputs, l.Fields()...)
		parts = append(parts, l.Description.In(lang))
		if m := l.Model; m != nil {
			var ws []string
			for _, f := range l.Fields() {
				if w, ok := m.Weights[f]; ok {
					ws = append(ws, fmt.Sprintf("%s × %g", cat.FieldName(f, lang), w))
				}
			}
			parts = append(parts, fmt.Sprintf(pick(zh, [2]string{"模型（%s，版本%d）：%s，阈值%g", "model (%s, version %d): %s, threshold %g"}),
				catalog.ModelKindName(m.Kind, lang), l.Version, strings.Join(ws, " + "), m.Threshold))
		}
	}
	for _, f := range u.Fields {
		if !slices.Contains(d.Inputs, f) {
			d.Inputs = append(d.Inputs, f)
		}
	}
	d.Logic = strings.Join(parts, pick(zh, [2]string{"；", "; "}))
	d.Consequences = pick(zh, [2]string{
		"结果会影响您获得的服务或条件。每项决定都附有解释，您可以要求人工复核、陈述意见并提出异议。",
		"The outcome affects the service or terms you get. Every decision comes with an explanation; you can ask for human review, state your view and contest it."})
	return d
}

func recommender(cat *catalog.Catalog, u catalog.UseCase, lang string, zh bool) NoticeRecommender {
	r := NoticeRecommender{UseCase: u.ID, Title: cat.UseCaseName(u.ID, lang), Kind: u.Kind, Text: u.Description.In(lang), Purposes: u.Purposes, Labels: []string{}}
	var used []string
	for _, id := range u.Labels {
		if l := cat.Label(id); l != nil {
			r.Labels = append(r.Labels, l.Name.In(lang))
			used = append(used, l.Name.In(lang)+pick(zh, [2]string{"（", " ("})+l.Description.In(lang)+pick(zh, [2]string{"）", ")"}))
		}
	}
	if u.Kind == "audience" {
		r.Mechanism = pick(zh, [2]string{"按以下标签圈选人群，默认只输出去标识化或汇总结果：", "Selects groups of people by these labels; output is de-identified or aggregated by default: "}) +
			strings.Join(used, pick(zh, [2]string{"；", "; "}))
	} else {
		r.Mechanism = pick(zh, [2]string{"根据以下标签对内容排序，个性化程度由您设定，0为非个性化：", "Ranks items by these labels, as far as your personalisation setting allows (0 is non-personalised): "}) +
			strings.Join(used, pick(zh, [2]string{"；", "; "}))
	}
	return r
}

func rightsList(zh bool) []NoticeRight {
	rows := []struct {
		right, api, req string
		text, how       [2]string
	}{
		{"access", "GET /v1/me/export", "SR-1", [2]string{"查阅您的全部数据、标签、评分和决定及其来源", "See all your data, labels, scores and decisions with where they came from"}, [2]string{"隐私中心 › 导出", "Privacy centre › Export"}},
		{"portability", "GET /v1/me/export?signed=1", "SR-2", [2]string{"以机器可读的签名 JSON 导出并转给其他处理者", "Export as signed machine-readable JSON for another handler"}, [2]string{"隐私中心 › 导出", "Privacy centre › Export"}},
		{"correction", "PUT /v1/me/fields/{field}", "CM-2", [2]string{"更正不准确的资料，依赖它的标签会重新计算", "Correct inaccurate data; labels built on it are recomputed"}, [2]string{"联系我们或通过接口更正", "Contact us or use the API"}},
		{"erasure", "POST /v1/me/erasure", "SR-3", [2]string{"删除您的全部数据，并获得签名回执", "Erase all your data and get a signed receipt"}, [2]string{"隐私中心 › 删除", "Privacy centre › Erasure"}},
		{"restriction", "POST /v1/me/restriction", "SR-7", [2]string{"限制处理：数据仅存储，不作其他使用", "Restrict processing: your data is only stored, not used"}, [2]string{"隐私中心 › 我的选择", "Privacy centre › My choices"}},
		{"labels", "DELETE /v1/me/labels/{label}", "LP-3", [2]string{"查看、停用或删除用于个性化的标签", "See, deselect or delete the labels used to personalise for you"}, [2]string{"隐私中心 › 标签", "Privacy centre › Labels"}},
		{"personalization", "PUT /v1/me/personalization", "LP-4", [2]string{"设定个性化程度，0为不个性化", "Set how much personalisation you get; 0 is none"}, [2]string{"隐私中心 › 个性化", "Privacy centre › Personalisation"}},
		{"consent", "PUT /v1/me/consents/{purpose}", "CN-4", [2]string{"随时同意或撤回同意，撤回与同意一样简单", "Grant or withdraw consent at any time, as easily as you gave it"}, [2]string{"隐私中心 › 同意", "Privacy centre › Consents"}},
	}
	out := make([]NoticeRight, len(rows))
	for i, r := range rows {
		out[i] = NoticeRight{Right: r.right, Text: pick(zh, r.text), How: pick(zh, r.how), API: r.api, Requirement: r.req}
	}
	return out
}

func deadlineText(d Deadline, zh bool) string {
	if d.Months > 0 {
		return fmt.Sprintf(pick(zh, [2]string{"我们在%d个月内答复您的请求，能自动完成的请求立即完成。", "We answer your request within %d month(s); requests that can be fulfilled automatically are fulfilled at once."}), d.Months)
	}
	return fmt.Sprintf(pick(zh, [2]string{"我们在%d个工作日内答复您的请求，能自动完成的请求立即完成。", "We answer your request within %d working days; requests that can be fulfilled automatically are fulfilled at once."}), d.WorkingDays)
}

// NoticeVersion is the catalog version and a hash of the catalog and the
// deadline, the same in every language: any change to what the notice is
// generated from gives a new version.
func NoticeVersion(cat *catalog.Catalog, deadline Deadline) string {
	sum := sha256.Sum256(append(mustJSON(cat), mustJSON(deadline)...))
	return cat.Version + "-" + hex.EncodeToString(sum[:4])
}

// Notice returns the notice in lang with this service's deadline.
func (s *Service) Notice(lang string) Notice { return BuildNotice(s.point.Catalog(), lang, s.dl) }
