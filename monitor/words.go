package monitor

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/portrait-dev/portrait/fairness"
)

// Facts are the parts an alert's message is made of, so that a page can
// say the alert in its reader's language with the catalog's names instead
// of keys. Message stays the English sentence, for the JSON, the logs and
// tools that grep them.
type Facts struct {
	UseCase    string   `json:"usecase,omitempty"`
	Attributes []string `json:"attributes,omitempty"`
	Group      string   `json:"group,omitempty"`
	Reference  string   `json:"reference,omitempty"`
	PValue     *float64 `json:"p_value,omitempty"`
	// Feature is a flagged proxy (a profile field or a label) and
	// Protected the attribute it stands in for.
	Feature     string `json:"feature,omitempty"`
	FeatureKind string `json:"feature_kind,omitempty"`
	Protected   string `json:"protected,omitempty"`
	Model       string `json:"model,omitempty"`
	Flips       int    `json:"flips,omitempty"`
	Evaluations int    `json:"evaluations,omitempty"`
	// Item, Context and the segments of a price alert, with their mean
	// prices.
	Item     string  `json:"item,omitempty"`
	Context  string  `json:"context,omitempty"`
	Highest  string  `json:"highest_segment,omitempty"`
	Lowest   string  `json:"lowest_segment,omitempty"`
	HighMean float64 `json:"highest_mean,omitempty"`
	LowMean  float64 `json:"lowest_mean,omitempty"`
	// Slope is the change of a diversity measure per period.
	Slope *float64 `json:"slope,omitempty"`
}

// words are the sentences of alerts, escalations and the names of scopes,
// metrics and actions: [zh-CN, en], fmt verbs in the order of the code that
// fills them.
var words = map[string][2]string{
	"a_impact": {"%s：%s为“%s”的人获得有利结果的比例只有“%s”的 %.0f%%（影响比 %.3f，低于 %.2f；p = %s）",
		"%s: people whose %s is %q are selected at %.0f%% of the rate of %q (impact ratio %.3f, below %.2f; p = %s)"},
	"a_impact_halt": {"%s：影响比 %.3f，低于规则包的 %.2f（%s）", "%s: impact ratio %.3f, below the rule pack's %.2f (%s)"},
	"a_flip": {"%s：只改变%s，%d 个决定中有 %d 个结果翻转（模型“%s”）——模型并不读取这一属性，说明它通过其他途径影响了结果",
		"%s: changing %s alone flips %d of %d decisions (model %q): the model does not read it, so it reaches the model some other way"},
	"a_proxy_flip": {"%s：把%s换到另一%s群体的同等水平，%d 个决定中有 %d 个结果翻转（%.1f%%，上限 %.1f%%；模型“%s”）",
		"%s: moving %s to another %s group's level flips %d of %d decisions (%.1f%% > %.1f%%; model %q)"},
	"a_proxy": {"%s“%s”与受保护属性“%s”高度相关（%s %.3f，高于 %.2f）：在复核员解除之前按敏感信息处理",
		"%s %q is associated with protected attribute %q (%s %.3f > %.2f): treated as sensitive until a reviewer clears it"},
	"a_price": {"商品“%s”%s：“%s”分群平均支付 %.2f，“%s”分群 %.2f（%s）",
		"item %q%s: segment %q paid %.2f on average, segment %q %.2f (%s)"},
	"a_price_ctx":  {"在场景“%s”中", " in context %q"},
	"a_price_gap":  {"高出 %.1f%%", "%.1f%% more"},
	"a_price_free": {"一方免费、一方付费", "a free offer against a paid one"},
	"a_div":        {"%s：内容类别多样性（归一化熵）%.3f，低于下限 %.3f%s", "%s: variety of content (normalised entropy) %.3f is below the floor %.3f%s"},
	"a_div_fall":   {"，且每个周期下降 %.3f", ", falling %.3f per period"},
	"a_div_rec":    {"推荐结果", "recommendations"},

	"f_protected": {"把受保护属性换成其他每个取值，其余特征不变：模型并不读取它（FP-2），若结果翻转，说明它通过其他途径影响了模型",
		"the protected attribute set to each other value, every feature kept: the model never reads it (FP-2), so any flip means it reaches the model some other way"},
	"f_proxy": {"把%s移到其他%s群体中的同等排名（分位数映射），其余不变", "%s moved to the same rank within each other %s group (quantile mapping), everything else kept"},
	"e_price": {"商品“%s”%s连续 %d 次监测都出现分群价差", "item %q%s was priced differently across segments in %d consecutive runs"},
	"e_price_none": {"，但目录中没有声明定价或条款类应用场景：请查明价格由谁设定",
		": no use-case tagged pricing or terms is declared; find what sets these prices"},
	"e_fair": {"%s：影响比连续 %d 次显著偏低（%s）", "%s: impact ratio significantly low in %d consecutive runs (%s)"},

	"x_recommend_halt": {"建议叫停", "halt recommended"}, "x_halted": {"已叫停，待复核", "halted pending review"},
	"x_already_halted": {"此前已叫停", "already halted"}, "x_halt_failed": {"叫停失败", "halt failed"}, "x_none": {"无可叫停的应用场景", "nothing to halt"},

	"m_impact_ratio": {"影响比", "impact ratio"}, "m_flip_rate": {"翻转率", "flip rate"}, "m_proxy_flip_rate": {"代理变量翻转率", "proxy flip rate"},
	"m_correlation_ratio": {"相关比", "correlation ratio"}, "m_cramers_v": {"克莱姆 V 系数", "Cramér's V"},
	"m_cramers_v_corrected": {"克莱姆 V 系数（校正）", "Cramér's V (corrected)"},
	"m_segment_gap":         {"分群价差", "segment price gap"}, "m_segment_gap_from_free": {"分群价差（对比免费）", "segment gap against a free price"},
	"m_category_entropy": {"类别熵", "category entropy"},

	"s_subject": {"某人（假名 %s…）", "one person (pseudonym %s…)"}, "s_rec_to": {"推荐给某人（假名 %s…）", "recommended to one person (pseudonym %s…)"},
	"s_all": {"全部“%s”事件", "all %s events"}, "s_item": {"商品“%s”%s，自 %s 起", "item %q%s from %s"},
	// A group is a value from the data; the catalog has no words for
	// values, so it is shown quoted, as data, never as a word of the page.
	"s_value": {"值“%s”", "value %q"},
	"s_flip":  {"%s：改变%s", "%s: changing %s"}, "s_no_label": {"（无标签）", "(no label)"},
	"k_profile": {"画像字段", "profile field"}, "k_label": {"标签", "label"}, "k_protected": {"受保护属性", "protected attribute"}, "k_proxy": {"代理变量", "proxy"},
}

func say(lang, key string) string {
	if lang == "en" {
		return words[key][1]
	}
	return words[key][0]
}

// sayP writes a p-value as the fairness package does.
func sayP(p *float64) string {
	if p == nil {
		return "?"
	}
	return strconv.FormatFloat(*p, 'g', 3, 64)
}

// Say is the alert in lang (zh-CN unless "en"), keys said by names (nil
// shows the keys). An alert without facts (a report written before they
// existed) is said as its English message.
func (a Alert) Say(lang string, names Names) string {
	if names == nil {
		names = func(k string) string { return k }
	}
	f := a.Facts
	if f == nil {
		return a.Message
	}
	attrs := make([]string, len(f.Attributes))
	for i, at := range f.Attributes {
		attrs[i] = names(at)
	}
	switch a.Metric {
	case "impact_ratio":
		if f.Reference == "" { // the rule pack's halt check names no reference
			return fmt.Sprintf(say(lang, "a_impact_halt"), names(f.UseCase), a.Value, a.Threshold, sayP(f.PValue))
		}
		return fmt.Sprintf(say(lang, "a_impact"), names(f.UseCase), strings.Join(attrs, fairness.Sep), f.Group, f.Reference,
			100*a.Value, a.Value, a.Threshold, sayP(f.PValue))
	case "flip_rate":
		return fmt.Sprintf(say(lang, "a_flip"), names(f.UseCase), names(f.Protected), f.Evaluations, f.Flips, names(f.Model))
	case "proxy_flip_rate":
		return fmt.Sprintf(say(lang, "a_proxy_flip"), names(f.UseCase), names(f.Feature), names(f.Protected), f.Evaluations, f.Flips,
			100*a.Value, 100*a.Threshold, names(f.Model))
	case "segment_gap", "segment_gap_from_free":
		gap := say(lang, "a_price_free")
		if a.Metric == "segment_gap" {
			gap = fmt.Sprintf(say(lang, "a_price_gap"), 100*a.Value)
		}
		return fmt.Sprintf(say(lang, "a_price"), names(f.Item), sayContext(lang, f.Context), sayScope(lang, "segment:"+f.Highest, names), f.HighMean,
			sayScope(lang, "segment:"+f.Lowest, names), f.LowMean, gap)
	case "category_entropy":
		fall := ""
		if f.Slope != nil && *f.Slope < 0 {
			fall = fmt.Sprintf(say(lang, "a_div_fall"), -*f.Slope)
		}
		return fmt.Sprintf(say(lang, "a_div"), sayScope(lang, a.Scope, names), a.Value, a.Threshold, fall)
	}
	if a.Kind == "proxy" {
		return fmt.Sprintf(say(lang, "a_proxy"), sayKind(lang, f.FeatureKind), names(f.Feature), names(f.Protected), sayMetric(lang, a.Metric), a.Value, a.Threshold)
	}
	return a.Message
}

// Say is the escalation in lang, keys said by names.
func (e Escalation) Say(lang string, names Names) string {
	if names == nil {
		names = func(k string) string { return k }
	}
	if e.Kind == "fairness" {
		uc := ""
		if len(e.UseCases) > 0 {
			uc = names(e.UseCases[0])
		}
		return fmt.Sprintf(say(lang, "e_fair"), uc, e.Runs, sayScope(lang, e.Context, names))
	}
	s := fmt.Sprintf(say(lang, "e_price"), names(e.Item), sayContext(lang, e.Context), e.Runs)
	if len(e.UseCases) == 0 {
		s += say(lang, "e_price_none")
	}
	return s
}

// SayAction is an escalation's action in lang.
func SayAction(lang, action string) string {
	if _, ok := words["x_"+action]; ok {
		return say(lang, "x_"+action)
	}
	return action
}

func sayContext(lang, c string) string {
	if c == "" {
		return ""
	}
	return fmt.Sprintf(say(lang, "a_price_ctx"), c)
}

func sayMetric(lang, m string) string {
	if _, ok := words["m_"+m]; ok {
		return say(lang, "m_"+m)
	}
	return m
}

func sayKind(lang, k string) string {
	if _, ok := words["k_"+k]; ok {
		return say(lang, "k_"+k)
	}
	return k
}

// short is the first characters of a pseudonym: enough to tell people
// apart on a page, not the whole identifier.
func short(ps string) string { return ps[:min(len(ps), 8)] }

// sayScope says an alert's scope: "subject:…", "recommender:…",
// "recommended-to:…", "all:<event type>", "item:…/<context>@<time>",
// "<use-case>/<attributes>=<group>", "<use-case>/flip:<attribute>",
// "<feature>~<protected>", or "segment:" and a price segment (label ids
// joined by "+", or label=segment pairs joined by ",").
func sayScope(lang, scope string, names Names) string {
	if names == nil {
		names = func(k string) string { return k }
	}
	kind, rest, ok := strings.Cut(scope, ":")
	if ok {
		switch kind {
		case "subject":
			return fmt.Sprintf(say(lang, "s_subject"), short(rest))
		case "recommended-to":
			return fmt.Sprintf(say(lang, "s_rec_to"), short(rest))
		case "recommender":
			return names(rest)
		case "all":
			return fmt.Sprintf(say(lang, "s_all"), names(rest))
		case "segment":
			return saySegment(lang, rest, names)
		case "item":
			item, at, _ := strings.Cut(rest, "@")
			item, ctx, _ := strings.Cut(item, "/")
			if len(at) >= 16 {
				at = strings.Replace(at[:16], "T", " ", 1)
			}
			return fmt.Sprintf(say(lang, "s_item"), names(item), sayContext(lang, ctx), at)
		}
	}
	if uc, rest, ok := strings.Cut(scope, "/"); ok {
		if changed, ok := strings.CutPrefix(rest, "flip:"); ok {
			f, a, _ := strings.Cut(changed, "~")
			what := names(f)
			if a != "" {
				what += "（" + names(a) + "）"
				if lang == "en" {
					what = names(f) + " (" + names(a) + ")"
				}
			}
			return fmt.Sprintf(say(lang, "s_flip"), names(uc), what)
		}
		attrs, group, _ := strings.Cut(rest, "=")
		var as []string
		for _, a := range strings.Split(attrs, fairness.Sep) {
			as = append(as, names(a))
		}
		if group == "" {
			return names(uc) + " · " + strings.Join(as, fairness.Sep)
		}
		return names(uc) + " · " + strings.Join(as, fairness.Sep) + " = " + sayValue(lang, group)
	}
	if f, a, ok := strings.Cut(scope, "~"); ok {
		return names(f) + " ~ " + names(a)
	}
	return names(scope)
}

// sayValue says a group value from the data as data: 值“female”.
func sayValue(lang, v string) string { return fmt.Sprintf(say(lang, "s_value"), v) }

// saySegment says a price segment: label names joined by "+", a
// segment label's name and number, or "no label".
func saySegment(lang, seg string, names Names) string {
	if seg == "(no label)" {
		return say(lang, "s_no_label")
	}
	if strings.Contains(seg, "=") {
		var out []string
		for _, p := range strings.Split(seg, ",") {
			l, n, _ := strings.Cut(p, "=")
			out = append(out, names(l)+" "+n)
		}
		return strings.Join(out, "，")
	}
	var out []string
	for _, l := range strings.Split(seg, "+") {
		out = append(out, names(l))
	}
	return strings.Join(out, " + ")
}

// say is how the flip test changed the inputs, in lang.
func (f FlipCheck) say(lang string, names Names) string {
	switch f.Kind {
	case "protected":
		return say(lang, "f_protected")
	case "proxy":
		return fmt.Sprintf(say(lang, "f_proxy"), names(f.Changed), names(f.Protected))
	}
	return f.Method
}
