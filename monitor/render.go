package monitor

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/portrait-dev/portrait/fairness"
)

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write monitor report: %w", err)
	}
	return nil
}

// maxScopes bounds the diversity scopes drawn in HTML; the JSON has all.
const maxScopes = 50

// bar is one horizontal bar of a chart: a value in [0, 1] scaled to width.
type bar struct {
	Label      string
	Text       string
	Y, TextY   int
	W          float64
	Alert      bool
	Background bool
}

type chart struct {
	Title          string
	Bars           []bar
	Height         int
	LineX          float64 // threshold line, 0 for none
	HasLine        bool
	LabelW, BarMax int
}

func newChart(title string, threshold float64, hasLine bool) chart {
	c := chart{Title: title, LabelW: 280, BarMax: 320, HasLine: hasLine}
	c.LineX = float64(c.LabelW) + threshold*float64(c.BarMax)
	return c
}

func (c *chart) add(label string, v float64, text string, alert bool) {
	y := 24 + len(c.Bars)*22
	c.Bars = append(c.Bars, bar{Label: label, Text: text, Y: y, TextY: y + 14, W: math.Round(clamp01(v)*float64(c.BarMax)*10) / 10, Alert: alert})
	c.Height = y + 30
}

func clamp01(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return min(x, 1)
}

type spark struct {
	Scope  string
	Points string
	Latest string
	Slope  string
	Alert  bool
	FloorY float64
	Trend  string
}

// texts are the report's words: [zh-CN, en].
var texts = map[string][2]string{
	"title": {"监测报告", "Monitor report"}, "subjects": {"名数据主体", "subjects"}, "restricted": {"名已限制处理，未纳入", "restricted, left out"},
	"with_values": {"名记录了受保护属性", "with protected attributes recorded"},
	"alerts":      {"告警", "Alerts"}, "no_alerts": {"本次没有告警。", "No alerts in this run."},
	"k_fairness": {"公平性", "fairness"}, "k_proxy": {"代理变量", "proxy"}, "k_price": {"价格歧视", "price"}, "k_diversity": {"信息茧房", "filter bubble"},
	"charts": {"图表", "Charts"}, "alert_rows": {"需要处理的告警（每条一行）", "Alerts to act on (one row each)"},
	"monitor": {"监测项", "monitor"}, "requirement": {"要求", "requirement"}, "metric": {"指标", "metric"}, "value": {"数值", "value"},
	"threshold": {"阈值", "threshold"}, "scope": {"范围", "scope"}, "message": {"说明", "message"},
	"bubble_subjects": {"个人内容多样性（按人汇总）", "Per-person variety of content (summarised)"},
	"bubble_alerts":   {"个人信息茧房告警共 %d 条（不逐条列出）。", "%d per-person filter-bubble alerts (not listed one by one)."},
	"bubble_seen":     {"按浏览记录：%d 人，%d 人低于下限。", "From what people viewed: %d people, %d below the floor."},
	"bubble_counts":   {"按实际展示的推荐：跟踪 %d 人，%d 人低于下限。", "From recommendations as shown: %d people tracked, %d below their floor."},
	"bubble_dist":     {"最新类别熵的分布（0 = 只看到一类内容，1 = 各类均匀）", "Spread of the latest category entropy (0 = one kind of content only, 1 = all kinds evenly)"},
	"range":           {"区间", "range"}, "people": {"人数", "people"},
	"fair_h":      {"决定的公平性（FP-3、FP-4）", "Fairness of decisions (FP-3, FP-4)"},
	"decisions_n": {"个决定，其中 %d 个没有受保护属性。", "decisions, %d without protected attributes."},
	"excluded":    {"已排除（FP-3）", "excluded (FP-3)"}, "outcomes": {"已知结果的决定：%d 个；来源：%s。", "Outcomes known for %d decisions; source: %s."},
	"changed": {"改变的属性", "changed"}, "kind": {"类型", "kind"}, "groups_of": {"分组依据", "groups of"}, "runs": {"运行次数", "runs"},
	"flips": {"结果翻转", "flips"}, "flip_rate": {"翻转率", "flip rate"}, "method": {"方法", "method"}, "not_run": {"未运行", "not run"},
	"proxy_h":    {"代理变量检测（FP-6）", "Proxy detection (FP-6)"},
	"proxy_rule": {"关联度高于 %s 且至少 %d 人时标记；被标记的特征按敏感信息处理，直到复核员解除。", "Flag above %s with at least %d subjects; a flagged feature is treated as sensitive until a reviewer clears it."},
	"feature":    {"特征", "feature"}, "protected": {"受保护属性", "protected"}, "measure": {"度量", "measure"}, "flagged": {"已标记", "flagged"},
	"note": {"备注", "note"}, "cleared": {"已解除", "cleared"}, "yes": {"是", "yes"}, "no": {"否", "no"},
	"price_h":     {"价格歧视（FP-1）", "Price discrimination (FP-1)"},
	"price_scan":  {"%d 条价格事件，%d 个商品×时段×场景单元；%d 个单元各分群价格不同，%d 条告警。", "%d price events in %d item × window × context cells; %d with different prices across segments, %d alerts."},
	"escalations": {"升级处理", "Escalations"}, "item": {"商品", "item"}, "context": {"场景", "context"}, "consecutive": {"连续次数", "consecutive runs"}, "usecases": {"应用场景", "use-cases"},
	"div_h":    {"信息茧房：内容类别多样性（FB-1、FB-2）", "Filter bubble: variety of content (FB-1, FB-2)"},
	"div_rule": {"每个周期 %s 事件的归一化类别熵（周期 %d 秒，至少 %d 条事件）；下限 %s（虚线）。", "Normalised category entropy of %s events per period (%d s, at least %d events); floor %s (dashed)."},
	"trend":    {"随时间变化", "over time"}, "latest": {"最新", "latest"}, "slope": {"斜率", "slope"}, "last_period": {"最近周期", "last period"},
	"more":       {"另有 %d 个范围见 JSON 报告。", "%d more scopes in the JSON report."},
	"rec_h":      {"实际展示的推荐（FB-1、FB-2）", "Recommendations as shown (FB-1, FB-2)"},
	"rec_counts": {"%d 个推荐器；跟踪 %d 人，%d 人低于下限，%d 人因内存上限未跟踪，%d 个回答未计入。", "%d recommenders; %d subjects tracked, %d below their floor, %d dropped to bound memory, %d answers not counted."},
	"impact":     {"各组的影响比 — %s", "impact ratio by group — %s"}, "association": {"与受保护属性的关联", "association with protected attributes"},
	"price_chart": {"商品“%s”%s，自 %s 起：各分群平均价格（相对最高者）", "item %q%s, from %s: mean price by segment (relative to the highest)"},
	"n_a":         {"不适用", "n/a"}, "excl": {"已排除", "excluded"}, "entropy_trend": {"熵的趋势", "entropy trend"},
	"coverage": {"覆盖率 %.3f，基尼系数 %.3f", "coverage %.3f, Gini %.3f"}, "ild": {"，列表内多样性 %.3f", ", intra-list diversity %.3f"},
	"nothing": {"暂无数据。", "No data yet."}, "colon": {"：", ": "},
	"w_decision": {"自动化决策", "decision"}, "w_recommendation": {"推荐", "recommendation"}, "w_audience": {"人群圈选", "audience"},
	"w_field": {"字段", "field"}, "w_label": {"标签", "label"}, "w_profile": {"画像字段", "profile field"},
	"w_protected": {"受保护属性本身", "the protected attribute"}, "w_proxy": {"代理变量", "proxy"},
}

// noteWords are the Chinese of the notes the monitor writes in English
// into the report (the JSON keeps them as written): a pattern of the
// English and its Chinese, $1… the parts the pattern captures. A note not
// listed shows as written.
var noteWords = []fairness.Phrase{
	{Re: regexp.MustCompile(`^no recommendation answers observed since this node started`), Zh: "本节点启动以来尚未观测到推荐结果：推荐在返回给用户时计量，不从审计日志读取（日志只保存商品列表的摘要）"},
	{Re: regexp.MustCompile(`^no item catalog is stored: coverage and entropy`), Zh: "未保存商品目录：覆盖率和熵按实际展示的商品和类别计算"},
	{Re: regexp.MustCompile(`^no item catalog is stored: coverage is relative`), Zh: "未保存商品目录：覆盖率按看到的商品和类别计算"},
	{Re: regexp.MustCompile(`^no period has (\d+) impressions yet: no trend$`), Zh: "还没有哪个周期达到 $1 次展示：暂无趋势"},
	{Re: regexp.MustCompile(`^no decisions are stored yet`), Zh: "尚无已保存的自动化决定，无可审计内容"},
	{Re: regexp.MustCompile(`^no protected attributes are recorded: record them`), Zh: "尚未记录受保护属性：为被决定的人记录后才能审计决定的公平性（FP-2）"},
	{Re: regexp.MustCompile(`^no protected attributes are recorded: no proxy`), Zh: "尚未记录受保护属性：无法检测代理变量"},
	{Re: regexp.MustCompile(`^the catalog declares no event type "([^"]*)" with fields item and price`), Zh: "目录未声明带有商品和价格字段的事件类型“$1”：声明后（字段：商品、价格、场景）才能监测展示的价格（FP-1）"},
	{Re: regexp.MustCompile(`^no price-shown events in the look-back window$`), Zh: "回看窗口内没有价格展示事件"},
	{Re: regexp.MustCompile(`^no "([^"]*)" events with item and category in the look-back window$`), Zh: "回看窗口内没有带商品和类别的“$1”事件"},
	{Re: regexp.MustCompile(`^use-case no longer declared in the catalog; audited from its stored decisions$`), Zh: "该应用场景已不在目录中，按已保存的决定审计"},
	{Re: regexp.MustCompile(`^no decision has a subject with every protected attribute recorded$`), Zh: "没有哪个决定的主体记录了全部受保护属性"},
	{Re: regexp.MustCompile("^" + regexp.QuoteMeta(OutcomeNone) + "$"), Zh: "无：没有任何决定记录了真实结果"},
	{Re: regexp.MustCompile(`^association ([0-9.]+) from only (\d+) subjects \(fewer than (\d+)\): not flagged$`), Zh: "关联度 $1，但只来自 $2 人（少于 $3）：不标记"},
	{Re: regexp.MustCompile(`^no halter is wired: the fairness halt of (\S+) is only recommended$`), Zh: "未接入叫停功能：只建议叫停“$1”", Keys: []int{1}},
	{Re: regexp.MustCompile(`^automatic halt of (\S+) failed: (.*)$`), Zh: "自动叫停“$1”失败：$2", Keys: []int{1}},
	{Re: regexp.MustCompile(`^price event left out: (.*)$`), Zh: "一条价格事件未计入：$1"},
	{Re: regexp.MustCompile(`^no flip test: model "([^"]*)" is not a declared score label with a model$`), Zh: "未做翻转测试：“$1”不是目录中声明了模型的评分标签", Keys: []int{1}},
	{Re: regexp.MustCompile(`^(\d+) subjects left out of the flip tests: their profile lacks a feature of model "([^"]*)"$`), Zh: "$1 人未纳入翻转测试：其画像缺少模型“$2”的特征", Keys: []int{2}},
	{Re: regexp.MustCompile(`^flagged proxies the model does not read, so cannot flip: (.*)$`), Zh: "模型不读取的已标记代理变量不会造成翻转：$1"},
	{Re: regexp.MustCompile("^" + regexp.QuoteMeta(OutcomeReview) + "$"), Zh: "人工复核的结论（维持、推翻），仅限经过复核的决定"},
}

// note says a note of the report in lang, keys by names.
func note(lang, s string, names Names) string {
	return fairness.Say(lang, s, names, noteWords, fairness.Phrases)
}

func tr(lang, key string) string {
	if lang == "en" {
		return texts[key][1]
	}
	return texts[key][0]
}

// Names says a key of the catalog (a use-case, field, label) in words in
// the report's language, e.g. (*catalog.Catalog).DisplayName bound to it;
// nil shows the keys.
type Names func(key string) string

// WriteHTML writes rep as one page with inline SVG charts, no script and no
// external resource, in lang (zh-CN unless "en"), the catalog's keys said
// by names; html/template escapes every value for its context.
func WriteHTML(w io.Writer, rep *Report, lang string, names Names) error {
	return write(w, rep, lang, names, "page")
}

// WriteFragment writes the body of the report page, for a page that has
// its own head and navigation (the staff console).
func WriteFragment(w io.Writer, rep *Report, lang string, names Names) error {
	return write(w, rep, lang, names, "body")
}

type kindCount struct {
	Kind string
	N    int
}

type bucket struct {
	Label string
	N     int
	Width float64
}

func write(w io.Writer, rep *Report, lang string, names Names, name string) error {
	if lang != "en" {
		lang = "zh-CN"
	}
	t := func(key string) string { return tr(lang, key) }
	if names == nil {
		names = func(key string) string { return key }
	}
	// A use-case kind or a protected-attribute kind is a word too.
	word := func(key string) string {
		if _, ok := texts["w_"+key]; ok {
			return tr(lang, "w_"+key)
		}
		return names(key)
	}
	var fair []chart
	for _, u := range rep.Fairness.UseCases {
		if u.Audit == nil {
			continue
		}
		alerted := map[string]bool{}
		for _, a := range u.Audit.Alerts {
			alerted[a.Group] = true
		}
		c := newChart(fmt.Sprintf(t("impact"), word(u.UseCase)), u.Audit.Threshold, true)
		for _, g := range u.Audit.Groups {
			v, text := 0.0, t("excl")
			if g.ImpactRatio != nil {
				v, text = *g.ImpactRatio, strconv.FormatFloat(*g.ImpactRatio, 'f', 3, 64)
			} else if !g.Excluded {
				text = t("n_a")
			}
			c.add(sayValue(lang, g.Name)+" (n="+strconv.Itoa(g.N)+")", v, text, alerted[g.Name])
		}
		fair = append(fair, c)
	}
	proxy := newChart(t("association"), rep.Proxies.Threshold, true)
	for i, f := range rep.Proxies.Findings {
		if i == 40 {
			break
		}
		proxy.add(word(f.Feature)+" ~ "+word(f.Protected), f.Value, strconv.FormatFloat(f.Value, 'f', 3, 64), f.Flagged && !f.Cleared)
	}
	var price []chart
	if rep.Price.Scan != nil {
		for i, f := range rep.Price.Scan.Findings {
			if i == 10 {
				break
			}
			c := newChart(fmt.Sprintf(t("price_chart"), word(f.Item), sayContext(lang, f.Context), f.WindowStart.Format("2006-01-02 15:04")), 0, false)
			top := f.Segments[0].Mean
			for _, s := range f.Segments {
				v := 0.0
				if top > 0 {
					v = s.Mean / top
				}
				c.add(saySegment(lang, s.Segment, names)+" (n="+strconv.FormatInt(s.Events, 10)+")", v, strconv.FormatFloat(s.Mean, 'f', 2, 64), f.Alert && s.Mean == top)
			}
			price = append(price, c)
		}
	}
	// People are summarised (count, spread); only the whole stream's
	// scopes get a row each.
	var scopes []fairness.ScopeDiversity
	var seen []float64
	seenBelow := 0
	for _, s := range rep.Diversity.Scopes {
		if strings.HasPrefix(s.Scope, "subject:") {
			if len(s.Periods) > 0 {
				seen = append(seen, s.Trend.Latest)
			}
			if s.Trend.BelowFloor {
				seenBelow++
			}
			continue
		}
		scopes = append(scopes, s)
	}
	slices.SortStableFunc(scopes, func(a, b fairness.ScopeDiversity) int {
		if a.Trend.BelowFloor != b.Trend.BelowFloor {
			if a.Trend.BelowFloor {
				return -1
			}
			return 1
		}
		return 0
	})
	var sparks []spark
	for i, s := range scopes {
		if i == maxScopes {
			break
		}
		sp := spark{Scope: s.Scope, Latest: strconv.FormatFloat(s.Trend.Latest, 'f', 3, 64), Alert: s.Trend.BelowFloor,
			FloorY: math.Round((40-rep.Diversity.Floor*36)*10) / 10, Slope: t("n_a")}
		if s.Trend.Slope != nil {
			sp.Slope = strconv.FormatFloat(*s.Trend.Slope, 'f', 3, 64)
		}
		n := len(s.Periods)
		for j, p := range s.Periods {
			x := 4.0
			if n > 1 {
				x = 4 + float64(j)*152/float64(n-1)
			}
			y := 40 - clamp01(p.Entropy)*36
			sp.Points += fmt.Sprintf("%.1f,%.1f ", x, y)
		}
		sparks = append(sparks, sp)
	}
	// Recommenders get a row each; people are summarised, so that
	// thousands of per-person rows never bury a fairness alert (FB-1).
	var recSparks []spark
	for i, s := range rep.Recommenders.Recommenders {
		if i == maxScopes {
			break
		}
		recSparks = append(recSparks, bubbleSpark(s, t))
	}
	counts := map[string]int{}
	var rows []Alert
	subjectAlerts := 0
	for _, a := range rep.Alerts {
		counts[a.Kind]++
		if a.Pseudonym != "" {
			subjectAlerts++
			continue
		}
		rows = append(rows, a)
	}
	var byKind []kindCount
	for _, k := range []string{"fairness", "proxy", "price", "diversity"} {
		if counts[k] > 0 {
			byKind = append(byKind, kindCount{t("k_" + k), counts[k]})
		}
	}
	var shown []float64
	for _, sc := range rep.Recommenders.Subjects {
		if len(sc.Periods) > 0 {
			shown = append(shown, sc.Trend.Latest)
		}
	}
	tm, err := pageTmpl.Clone()
	if err != nil {
		return fmt.Errorf("monitor report: %w", err)
	}
	tm.Funcs(template.FuncMap{"t": t, "w": word, "note": func(s string) string { return note(lang, s, names) }, "tf": func(key string, args ...any) string { return fmt.Sprintf(t(key), args...) },
		"say":    func(a Alert) string { return a.Say(lang, names) },
		"esc":    func(e Escalation) string { return e.Say(lang, names) },
		"scope":  func(s string) string { return sayScope(lang, s, names) },
		"metric": func(m string) string { return sayMetric(lang, m) },
		"value":  func(v string) string { return sayValue(lang, v) },
		"action": func(a string) string { return SayAction(lang, a) },
		"method": func(f FlipCheck) string { return f.say(lang, names) },
	})
	err = tm.ExecuteTemplate(w, name, struct {
		*Report
		Lang          string
		Fair          []chart
		Proxy         chart
		Prices        []chart
		Sparks        []spark
		More          int
		RecSparks     []spark
		RecMore       int
		ByKind        []kindCount
		Rows          []Alert
		SubjectAlerts int
		Seen, Shown   people
	}{rep, lang, fair, proxy, price, sparks, max(0, len(scopes)-maxScopes), recSparks, max(0, len(rep.Recommenders.Recommenders)-maxScopes),
		byKind, rows, subjectAlerts, summarise(seen, seenBelow), summarise(shown, rep.Recommenders.SubjectsBelow)})
	if err != nil {
		return fmt.Errorf("monitor report: %w", err)
	}
	return nil
}

// people is a summary of per-person diversity: how many, how many below
// their floor, and the spread of their latest category entropy.
type people struct {
	N, Below int
	Buckets  []bucket
}

// summarise counts people by their latest category entropy.
func summarise(latest []float64, below int) people {
	names := []string{"0–0.2", "0.2–0.4", "0.4–0.6", "0.6–0.8", "0.8–1"}
	n := make([]int, len(names))
	for _, v := range latest {
		n[min(len(names)-1, int(clamp01(v)*5))]++
	}
	out := people{N: len(latest), Below: below, Buckets: make([]bucket, len(names))}
	for i := range names {
		w := 0.0
		if len(latest) > 0 {
			w = math.Round(float64(n[i])/float64(len(latest))*3000) / 10
		}
		out.Buckets[i] = bucket{names[i], n[i], w}
	}
	return out
}

// bubbleSpark draws one recommender's or subject's entropy over time.
func bubbleSpark(s BubbleScope, t func(string) string) spark {
	sp := spark{Scope: s.Scope, Latest: t("n_a"), Alert: s.Trend.BelowFloor, FloorY: math.Round((40-s.Floor*36)*10) / 10, Slope: t("n_a")}
	if len(s.Periods) > 0 {
		sp.Latest = strconv.FormatFloat(s.Trend.Latest, 'f', 3, 64)
		last := s.Periods[len(s.Periods)-1]
		sp.Trend = fmt.Sprintf(t("coverage"), last.Coverage, last.Gini)
		if last.ILD != nil {
			sp.Trend += fmt.Sprintf(t("ild"), *last.ILD)
		}
	}
	if s.Trend.Slope != nil {
		sp.Slope = strconv.FormatFloat(*s.Trend.Slope, 'f', 3, 64)
	}
	n := len(s.Periods)
	for j, p := range s.Periods {
		x := 4.0
		if n > 1 {
			x = 4 + float64(j)*152/float64(n-1)
		}
		sp.Points += fmt.Sprintf("%.1f,%.1f ", x, 40-clamp01(p.Entropy)*36)
	}
	return sp
}

var pageTmpl = template.Must(template.New("monitor").Funcs(template.FuncMap{
	"w":      func(string) string { return "" },
	"note":   func(string) string { return "" },
	"f3":     func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) },
	"t":      func(string) string { return "" },
	"tf":     func(string, ...any) string { return "" },
	"say":    func(Alert) string { return "" },
	"esc":    func(Escalation) string { return "" },
	"scope":  func(string) string { return "" },
	"metric": func(string) string { return "" },
	"value":  func(string) string { return "" },
	"action": func(string) string { return "" },
	"method": func(FlipCheck) string { return "" },
}).Parse(`{{define "page"}}<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Portrait {{t "title"}}</title>
<style>
body { font-family: system-ui, "PingFang SC", "Noto Sans CJK SC", sans-serif; margin: 2em auto; padding: 0 1em; color: #222; max-width: 70em; }
</style>
</head>
<body>
<h1>{{t "title"}} {{.ID}}</h1>
{{template "body" .}}
</body>
</html>{{end}}
{{define "body"}}<style>
.monitor table { border-collapse: collapse; margin: 0.5em 0 1em; }
.monitor th, .monitor td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
.monitor tr.alert td { background: #fde8e8; }
.monitor .note { color: #555; }
.monitor td.num { white-space: nowrap; }
@media (max-width: 40rem) {
  .monitor table.cards, .monitor table.cards tbody, .monitor table.cards tr, .monitor table.cards td { display: block; }
  .monitor table.cards thead { position: absolute; left: -9999px; }
  .monitor table.cards tr { border: 1px solid #ccc; border-radius: 8px; margin: .5rem 0; padding: .25rem .5rem; }
  .monitor table.cards td { border: 0; padding: .2rem 0; white-space: normal; overflow-wrap: anywhere; }
  .monitor table.cards td[data-label]::before { content: attr(data-label) "："; font-weight: 600; color: #555; }
}
.monitor svg { max-width: 100%; height: auto; }
.monitor svg text { font-size: 12px; }
.monitor .scroll { overflow-x: auto; }
</style>
<div class="monitor">
<p id="monitor-summary">{{.Time.Format "2006-01-02 15:04:05 UTC"}} · {{.Subjects}} {{t "subjects"}}（{{.Restricted}} {{t "restricted"}}）· {{.WithValues}} {{t "with_values"}}{{if .Protected}}（{{range $i, $a := .Protected}}{{if $i}}, {{end}}{{w $a}}{{end}}）{{end}}。</p>
{{range .Notes}}<p class="note">{{note .}}</p>{{end}}

<h2 id="alerts">{{t "alerts"}}: {{len .Alerts}}</h2>
{{if .ByKind}}<ul id="alert-kinds">{{range .ByKind}}<li>{{.Kind}}: <strong>{{.N}}</strong></li>{{end}}</ul>{{else}}<p>{{t "no_alerts"}}</p>{{end}}

{{if or .Fair .Proxy.Bars .Prices}}<h2>{{t "charts"}}</h2>
{{range .Fair}}{{template "chart" .}}{{end}}
{{if .Proxy.Bars}}{{template "chart" .Proxy}}{{end}}
{{range .Prices}}{{template "chart" .}}{{end}}{{end}}

{{if .Rows}}<h2>{{t "alert_rows"}}</h2>
<table id="alert-rows" class="cards stack"><thead><tr><th>{{t "monitor"}}</th><th>{{t "requirement"}}</th><th>{{t "metric"}}</th><th>{{t "value"}}</th><th>{{t "threshold"}}</th><th>{{t "scope"}}</th><th>{{t "message"}}</th></tr></thead>
{{range .Rows}}<tr class="alert"><td class="num" data-label="{{t "monitor"}}">{{t (print "k_" .Kind)}}</td><td class="num" data-label="{{t "requirement"}}">{{.Requirement}}</td><td data-label="{{t "metric"}}">{{metric .Metric}}</td><td class="num" data-label="{{t "value"}}">{{f3 .Value}}</td><td class="num" data-label="{{t "threshold"}}">{{f3 .Threshold}}</td><td data-label="{{t "scope"}}">{{scope .Scope}}</td><td data-label="{{t "message"}}">{{say .}}</td></tr>
{{end}}</table>{{end}}

<h2 id="bubble-people">{{t "bubble_subjects"}}</h2>
<p id="bubble-alerts">{{tf "bubble_alerts" .SubjectAlerts}}</p>
<p id="bubble-seen">{{tf "bubble_seen" .Seen.N .Seen.Below}}</p>
{{if .Seen.N}}{{template "dist" .Seen}}{{end}}
<p id="bubble-counts">{{tf "bubble_counts" .Recommenders.SubjectsTracked .Recommenders.SubjectsBelow}}</p>
{{if .Shown.N}}{{template "dist" .Shown}}{{end}}

<h2>{{t "fair_h"}}</h2>
{{with .Fairness.Note}}<p class="note">{{note .}}</p>{{end}}
{{range .Fairness.UseCases}}<p><b>{{w .UseCase}}</b>: {{.Decisions}} {{tf "decisions_n" .LeftOut}} {{note .Note}}</p>
{{with .Audit}}{{if .Excluded}}<ul>{{range .Excluded}}<li>{{t "excluded"}}: {{value .Group}} — {{note .Reason}}</li>{{end}}</ul>{{end}}{{end}}
<p class="note">{{tf "outcomes" .OutcomesKnown (note .OutcomeSource)}}</p>
{{if .Flips}}<div class="scroll"><table><tr><th>{{t "changed"}}</th><th>{{t "kind"}}</th><th>{{t "groups_of"}}</th><th>{{t "runs"}}</th><th>{{t "flips"}}</th><th>{{t "flip_rate"}}</th><th>{{t "method"}}</th></tr>
{{range .Flips}}<tr{{with .Result}}{{if .Flips}} class="alert"{{end}}{{end}}><td>{{w .Changed}}</td><td>{{w .Kind}}</td><td>{{w .Protected}}</td>{{with .Result}}<td>{{.Evaluations}}</td><td>{{.Flips}}</td><td>{{f3 .FlipRate}}</td>{{else}}<td colspan="3">{{t "not_run"}}</td>{{end}}<td>{{method .}} {{note .Note}}</td></tr>
{{end}}</table></div>{{end}}{{with .FlipNote}}<p class="note">{{note .}}</p>{{end}}
{{end}}

<h2>{{t "proxy_h"}}</h2>
{{with .Proxies.Note}}<p class="note">{{note .}}</p>{{end}}
<p>{{tf "proxy_rule" (f3 .Proxies.Threshold) .Proxies.MinSubjects}}</p>
{{if .Proxies.Findings}}<div class="scroll"><table><tr><th>{{t "feature"}}</th><th>{{t "kind"}}</th><th>{{t "protected"}}</th><th>{{t "measure"}}</th><th>{{t "value"}}</th><th>{{t "people"}}</th><th>{{t "flagged"}}</th><th>{{t "note"}}</th></tr>
{{range .Proxies.Findings}}<tr{{if and .Flagged (not .Cleared)}} class="alert"{{end}}><td>{{w .Feature}}</td><td>{{w .Kind}}</td><td>{{w .Protected}}</td><td>{{metric .Measure}}</td><td>{{f3 .Value}}</td><td>{{.Subjects}}</td><td>{{if .Cleared}}{{t "cleared"}}{{else if .Flagged}}{{t "yes"}}{{else}}{{t "no"}}{{end}}</td><td>{{note .Note}}</td></tr>
{{end}}</table></div>{{end}}

<h2>{{t "price_h"}}</h2>
{{with .Price.Note}}<p class="note">{{note .}}</p>{{end}}
{{with .Price.Scan}}<p>{{tf "price_scan" .Events .Cells (len .Findings) (len .Alerts)}}</p>{{end}}
{{if .Escalations}}<h3>{{t "escalations"}}</h3><div class="scroll"><table><tr><th>{{t "item"}}</th><th>{{t "context"}}</th><th>{{t "consecutive"}}</th><th>{{t "usecases"}}</th><th>{{t "message"}}</th></tr>
{{range .Escalations}}<tr class="alert"><td>{{w .Item}}</td><td>{{.Context}}</td><td>{{.Runs}}</td><td>{{range $uc, $a := .Actions}}{{w $uc}}{{t "colon"}}{{action $a}} {{end}}</td><td>{{esc .}}</td></tr>
{{end}}</table></div>{{end}}

<h2>{{t "div_h"}}</h2>
{{with .Diversity.Note}}<p class="note">{{note .}}</p>{{end}}
<p>{{tf "div_rule" (w .Diversity.EventType) .Diversity.PeriodSeconds .Diversity.MinImpressions (f3 .Diversity.Floor)}}</p>
{{if .Sparks}}<div class="scroll"><table><tr><th>{{t "scope"}}</th><th>{{t "trend"}}</th><th>{{t "latest"}}</th><th>{{t "slope"}}</th></tr>
{{range .Sparks}}<tr{{if .Alert}} class="alert"{{end}}><td>{{scope .Scope}}</td><td>{{template "spark" .}}</td><td>{{.Latest}}</td><td>{{.Slope}}</td></tr>
{{end}}</table></div>{{if .More}}<p class="note">{{tf "more" .More}}</p>{{end}}{{end}}

<h2>{{t "rec_h"}}</h2>
{{with .Recommenders.Note}}<p class="note">{{note .}}</p>{{end}}
<p>{{tf "rec_counts" (len .Recommenders.Recommenders) .Recommenders.SubjectsTracked .Recommenders.SubjectsBelow .Recommenders.SubjectsEvicted .Recommenders.AnswersRejected}}</p>
{{if .RecSparks}}<div class="scroll"><table><tr><th>{{t "scope"}}</th><th>{{t "trend"}}</th><th>{{t "latest"}}</th><th>{{t "slope"}}</th><th>{{t "last_period"}}</th></tr>
{{range .RecSparks}}<tr{{if .Alert}} class="alert"{{end}}><td>{{scope .Scope}}</td><td>{{template "spark" .}}</td><td>{{.Latest}}</td><td>{{.Slope}}</td><td>{{.Trend}}</td></tr>
{{end}}</table></div>{{if .RecMore}}<p class="note">{{tf "more" .RecMore}}</p>{{end}}{{end}}
</div>{{end}}
{{define "dist"}}<table class="bubble-dist"><caption class="note">{{t "bubble_dist"}}</caption><tr><th>{{t "range"}}</th><th>{{t "people"}}</th><th></th></tr>
{{range .Buckets}}<tr><td>{{.Label}}</td><td>{{.N}}</td><td><svg xmlns="http://www.w3.org/2000/svg" width="200" height="12" viewBox="0 0 300 12" role="img" aria-label="{{.N}}"><rect width="{{.Width}}" height="12" fill="#47a"/></svg></td></tr>
{{end}}</table>{{end}}
{{define "spark"}}<svg xmlns="http://www.w3.org/2000/svg" width="160" height="44" role="img" aria-label="{{t "entropy_trend"}}">
<line x1="0" y1="{{.FloorY}}" x2="160" y2="{{.FloorY}}" stroke="#c00" stroke-dasharray="3,3"/>
<polyline fill="none" stroke="#246" stroke-width="2" points="{{.Points}}"/></svg>{{end}}
{{define "chart"}}<figure><figcaption>{{.Title}}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 700 {{.Height}}" width="700" height="{{.Height}}" role="img" aria-label="{{.Title}}">
{{range .Bars}}<text x="0" y="{{.TextY}}">{{.Label}}</text>
<rect x="{{$.LabelW}}" y="{{.Y}}" width="{{.W}}" height="16" fill="{{if .Alert}}#c33{{else}}#47a{{end}}"/>
<text x="{{$.LabelW}}" dx="{{.W}}" dy="0" y="{{.TextY}}"> {{.Text}}</text>
{{end}}{{if .HasLine}}<line x1="{{.LineX}}" y1="18" x2="{{.LineX}}" y2="{{.Height}}" stroke="#c00" stroke-dasharray="4,3"/>{{end}}
</svg></figure>{{end}}`))
