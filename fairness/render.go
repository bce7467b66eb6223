package fairness

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteText writes rep as aligned plain-text tables, one per attribute and
// intersection.
func WriteText(w io.Writer, rep *Report) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Fairness audit of %d decisions\n", rep.N)
	if s := rep.Source; s != nil {
		fmt.Fprintf(ew, "file: %s\nselected: %s in {%s}\n", s.File, s.Predicted, strings.Join(s.Positive, ", "))
		if s.Outcome != "" {
			fmt.Fprintf(ew, "outcome: %s = %s\n", s.Outcome, s.OutcomePositive)
		}
		if s.Score != "" {
			fmt.Fprintf(ew, "score: %s\n", s.Score)
		}
	}
	fmt.Fprintf(ew, "protected attributes: %s; minimum share %s (FP-3); alert below impact ratio %.2f (FP-4)\n",
		strings.Join(rep.Attributes, ", "), pct(rep.MinShare), rep.Threshold)
	byName := map[string][]Group{}
	for _, g := range rep.Groups {
		k := strings.Join(g.Attributes, Sep)
		byName[k] = append(byName[k], g)
	}
	for _, sec := range rep.Sections {
		fmt.Fprintf(ew, "\n== %s ==\n", sec.Name)
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		withOutcome := false
		head := "group\tn\tshare\tselected\trate\t95% CI\timpact\ttest\tp"
		if gs := byName[sec.Name]; len(gs) > 0 && gs[0].ErrorRates != nil {
			withOutcome = true
			head += "\tFPR\tFNR\tTPR"
		}
		fmt.Fprintln(tw, head)
		for _, g := range byName[sec.Name] {
			impact := fmtRate(g.ImpactRatio)
			switch {
			case g.Excluded:
				impact = "excluded"
			case g.Reference:
				impact += " (ref)"
			}
			p := ""
			if g.PValue != nil {
				p = fmtP(*g.PValue)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.3f\t%.3f–%.3f\t%s\t%s\t%s",
				g.Name, g.N, pct(g.Share), g.Selected, g.SelectionRate, g.SelectionCI.Low, g.SelectionCI.High,
				impact, shortTest(g.Test), p)
			if withOutcome {
				fmt.Fprintf(tw, "\t%s\t%s\t%s", fmtRate(g.FalsePositiveRate), fmtRate(g.FalseNegativeRate), fmtRate(g.TruePositiveRate))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		fmt.Fprintf(ew, "demographic-parity difference: %s\n", fmtRate(sec.DemographicParityDifference))
		if withOutcome {
			fmt.Fprintf(ew, "equal-opportunity difference: %s\n", fmtRate(sec.EqualOpportunityDifference))
		}
		for _, n := range sec.Notes {
			fmt.Fprintf(ew, "note: %s\n", n)
		}
	}
	fmt.Fprintf(ew, "\nALERTS (FP-4): %d\n", len(rep.Alerts))
	for _, a := range rep.Alerts {
		fmt.Fprintf(ew, "  %s\n", a.Message)
	}
	fmt.Fprintf(ew, "\nEXCLUDED (FP-3): %d\n", len(rep.Excluded))
	for _, e := range rep.Excluded {
		fmt.Fprintf(ew, "  %s: %s\n", e.Group, e.Reason)
	}
	if len(rep.Calibration) > 0 {
		fmt.Fprintf(ew, "\nCALIBRATION by score band (all groups)\n")
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "band\tn\tmean score\tpredicted positive\tobserved positive")
		for _, b := range rep.Calibration {
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\n", b.Label, b.N, b.MeanScore, b.PredictedPositiveRate, b.ObservedOutcomeRate)
		}
		tw.Flush()
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintf(ew, "\nNOTES\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(ew, "  %s\n", n)
		}
	}
	return ew.err
}

func shortTest(t string) string {
	switch t {
	case TestFisher:
		return "fisher"
	case TestZ:
		return "z"
	}
	return ""
}

// errWriter keeps the first write error so rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// Chart geometry, in SVG user units.
const (
	chartLabelW = 260
	chartBarW   = 300
	chartGap    = 40
	chartRowH   = 22
	chartTop    = 34
)

type chartRow struct {
	Group
	Name, SelText, IRText      string
	Y, TextY                   int
	SelW, IRW, CILow, CIHigh   float64
	Excluded, Alert, Reference bool
}

type chartSection struct {
	Section
	Rows              []chartRow
	Height            int
	SelX, IRX, LineX  float64
	Width, AxisBottom int
	WithOutcome       bool
}

// htmlTexts are the HTML page's words: [zh-CN, en].
var htmlTexts = map[string][2]string{
	"title":     {"公平性审计：%d 个决定", "Fairness audit of %d decisions"},
	"file":      {"文件 %s；“被选中”指 %s 取值为 %s", "File %s; selected: %s in %s"},
	"outcome":   {"；真实结果：%s = %s", "; outcome: %s = %s"},
	"score":     {"；得分列：%s", "; score: %s"},
	"intro":     {"受保护属性：%s。占决定不足 %s 的分组不计算影响比，并在下方列出（FP-3）。影响比低于 %s 时告警（FP-4）。比率以 0 到 1 的小数表示。", "Protected attributes: %s. Groups under %s of decisions are excluded from impact ratios and disclosed (FP-3). An alert is raised when an impact ratio is below %s (FP-4). Rates are fractions."},
	"alerts":    {"告警（FP-4）：%d", "Alerts (FP-4): %d"},
	"no_alerts": {"没有分组的影响比低于阈值。", "No group's impact ratio is below the threshold."},
	"excluded":  {"未计入的分组（FP-3）：%d", "Excluded groups (FP-3): %d"},
	"none_excl": {"所有分组都足够大，均已计入。", "Every group is large enough and counted."},
	"chart":     {"各分组的选中率和影响比", "selection rate and impact ratio by group"},
	"sel_axis":  {"选中率（0–1，含 95% 置信区间）", "selection rate (0–1, with 95 % CI)"},
	"ir_axis":   {"影响比（虚线为阈值）", "impact ratio (line at threshold)"},
	"group":     {"分组", "group"}, "n": {"人数", "n"}, "share": {"占比", "share"}, "selected": {"选中", "selected"},
	"sel_rate": {"选中率", "selection rate"}, "ci": {"95% 置信区间", "95 % CI"}, "ir": {"影响比", "impact ratio"}, "test": {"检验", "test"},
	"reference": {"（参照组）", " (reference)"}, "excl": {"未计入", "excluded"}, "n_a": {"不适用", "n/a"},
	"dpd":         {"人口均等差异：%s", "Demographic-parity difference: %s"},
	"eod":         {"；机会均等差异：%s", "; equal-opportunity difference: %s"},
	"calibration": {"按得分区间的校准", "Calibration by score band"}, "band": {"区间", "band"}, "mean_score": {"平均得分", "mean score"},
	"pred_pos": {"预测为正的比例", "predicted positive"}, "obs_pos": {"实际为正的比例", "observed positive"}, "notes": {"说明", "Notes"},
}

// WriteHTMLIn writes rep as one self-contained HTML page in lang (zh-CN
// unless "en"): tables and an SVG bar chart per section, with no script
// and no external resource. Every value goes through html/template, which
// escapes it for its context.
func WriteHTMLIn(w io.Writer, rep *Report, lang string) error {
	if lang != "en" {
		lang = "zh-CN"
	}
	i := 0
	if lang == "en" {
		i = 1
	}
	t := func(key string) string { return htmlTexts[key][i] }
	alerted := map[string]bool{}
	for _, a := range rep.Alerts {
		alerted[strings.Join(a.Attributes, Sep)+"\x00"+a.Group] = true
	}
	var secs []chartSection
	for _, sec := range rep.Sections {
		cs := chartSection{Section: sec, SelX: chartLabelW, IRX: chartLabelW + chartBarW + chartGap}
		cs.LineX = cs.IRX + rep.Threshold*chartBarW
		cs.Width = int(cs.IRX) + chartBarW + 60
		for _, g := range rep.Groups {
			if strings.Join(g.Attributes, Sep) != sec.Name {
				continue
			}
			cs.WithOutcome = g.ErrorRates != nil
			y := chartTop + len(cs.Rows)*chartRowH
			r := chartRow{Group: g, Name: g.Name, Y: y + 3, TextY: y + 15, SelW: svgNum(g.SelectionRate * chartBarW),
				CILow: svgNum(cs.SelX + g.SelectionCI.Low*chartBarW), CIHigh: svgNum(cs.SelX + g.SelectionCI.High*chartBarW),
				SelText: strconv.FormatFloat(g.SelectionRate, 'f', 3, 64), IRText: t("excl"),
				Excluded: g.Excluded, Reference: g.Reference, Alert: alerted[sec.Name+"\x00"+g.Name]}
			if g.ImpactRatio != nil {
				r.IRW = svgNum(*g.ImpactRatio * chartBarW)
				r.IRText = strconv.FormatFloat(*g.ImpactRatio, 'f', 3, 64)
			} else if !g.Excluded {
				r.IRText = t("n_a")
			}
			cs.Rows = append(cs.Rows, r)
		}
		cs.AxisBottom = chartTop + len(cs.Rows)*chartRowH
		cs.Height = cs.AxisBottom + 10
		secs = append(secs, cs)
	}
	tm, err := pageTmpl.Clone()
	if err != nil {
		return err
	}
	tm.Funcs(template.FuncMap{"t": t, "tf": func(key string, args ...any) string { return fmt.Sprintf(t(key), args...) },
		"say":  func(a Alert) string { return a.Say(lang, nil) },
		"note": func(s string) string { return Say(lang, s, nil, Phrases) },
	})
	return tm.Execute(w, struct {
		*Report
		Lang     string
		Sections []chartSection
	}{rep, lang, secs})
}

// svgNum rounds a coordinate to a tenth of a unit, finer than a pixel.
func svgNum(x float64) float64 { return math.Round(x*10) / 10 }

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"rate": fmtRate,
	"f3":   func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) },
	"pct":  pct,
	"p":    fmtP,
	"join": strings.Join,
	"test": shortTest,
	"t":    func(string) string { return "" },
	"tf":   func(string, ...any) string { return "" },
	"say":  func(Alert) string { return "" },
	"note": func(string) string { return "" },
}).Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{tf "title" .N}}</title>
<style>
body { font-family: system-ui, "PingFang SC", "Noto Sans CJK SC", sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.alert td { background: #fde8e8; }
tr.excluded td { color: #888; }
.note { color: #555; font-size: 0.9em; }
svg { max-width: 100%; height: auto; }
svg text { font-size: 12px; }
.scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>{{tf "title" .N}}</h1>
{{with .Source}}<p>{{tf "file" .File .Predicted (join .Positive ", ")}}{{if .Outcome}}{{tf "outcome" .Outcome .OutcomePositive}}{{end}}{{if .Score}}{{tf "score" .Score}}{{end}}。</p>{{end}}
<p>{{tf "intro" (join .Attributes ", ") (pct .MinShare) (f3 .Threshold)}}</p>

<h2>{{tf "alerts" (len .Alerts)}}</h2>
{{if .Alerts}}<ul>{{range .Alerts}}<li>{{say .}}</li>{{end}}</ul>{{else}}<p>{{t "no_alerts"}}</p>{{end}}
<h2>{{tf "excluded" (len .Excluded)}}</h2>
{{if .Excluded}}<ul>{{range .Excluded}}<li>{{.Group}}: {{note .Reason}}</li>{{end}}</ul>{{else}}<p>{{t "none_excl"}}</p>{{end}}

{{range .Sections}}
<h2>{{.Name}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {{.Width}} {{.Height}}" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="{{t "chart"}}">
<text x="{{.SelX}}" y="14">{{t "sel_axis"}}</text>
<text x="{{.IRX}}" y="14">{{t "ir_axis"}}</text>
{{$s := .}}{{range .Rows}}
<text x="4" y="{{.TextY}}">{{.Name}}</text>
<rect x="{{$s.SelX}}" y="{{.Y}}" width="{{.SelW}}" height="16" fill="{{if .Excluded}}#bbb{{else}}#4a78b5{{end}}"/>
<line x1="{{.CILow}}" x2="{{.CIHigh}}" y1="{{.TextY}}" y2="{{.TextY}}" stroke="#222"/>
<text x="{{$s.IRX}}" dx="-38" y="{{.TextY}}">{{.SelText}}</text>
{{if not .Excluded}}<rect x="{{$s.IRX}}" y="{{.Y}}" width="{{.IRW}}" height="16" fill="{{if .Alert}}#c0392b{{else}}#e0913a{{end}}"/>{{end}}
<text x="{{$s.IRX}}" dx="305" y="{{.TextY}}">{{.IRText}}</text>
{{end}}
<line x1="{{.LineX}}" x2="{{.LineX}}" y1="20" y2="{{.AxisBottom}}" stroke="#c0392b" stroke-dasharray="4 3"/>
</svg>
<div class="scroll"><table>
<tr><th>{{t "group"}}</th><th>{{t "n"}}</th><th>{{t "share"}}</th><th>{{t "selected"}}</th><th>{{t "sel_rate"}}</th><th>{{t "ci"}}</th><th>{{t "ir"}}</th><th>{{t "test"}}</th><th>p</th>{{if .WithOutcome}}<th>FPR</th><th>FNR</th><th>TPR</th>{{end}}</tr>
{{range .Rows}}<tr class="{{if .Excluded}}excluded{{else if .Alert}}alert{{end}}"><td>{{.Name}}{{if .Reference}}{{t "reference"}}{{end}}</td><td>{{.N}}</td><td>{{pct .Share}}</td><td>{{.Selected}}</td><td>{{f3 .SelectionRate}}</td><td>{{f3 .SelectionCI.Low}}–{{f3 .SelectionCI.High}}</td><td>{{if .Excluded}}{{t "excl"}}{{else}}{{rate .ImpactRatio}}{{end}}</td><td>{{test .Test}}</td><td>{{with .PValue}}{{p .}}{{end}}</td>{{if .ErrorRates}}<td>{{rate .FalsePositiveRate}}</td><td>{{rate .FalseNegativeRate}}</td><td>{{rate .TruePositiveRate}}</td>{{end}}</tr>
{{end}}</table></div>
<p>{{tf "dpd" (rate .DemographicParityDifference)}}{{if .WithOutcome}}{{tf "eod" (rate .EqualOpportunityDifference)}}{{end}}</p>
{{range .Notes}}<p class="note">{{note .}}</p>{{end}}
{{end}}

{{if .Calibration}}<h2>{{t "calibration"}}</h2>
<div class="scroll"><table><tr><th>{{t "band"}}</th><th>{{t "n"}}</th><th>{{t "mean_score"}}</th><th>{{t "pred_pos"}}</th><th>{{t "obs_pos"}}</th></tr>
{{range .Calibration}}<tr><td>{{.Label}}</td><td>{{.N}}</td><td>{{f3 .MeanScore}}</td><td>{{f3 .PredictedPositiveRate}}</td><td>{{f3 .ObservedOutcomeRate}}</td></tr>
{{end}}</table></div>{{end}}
{{if .Notes}}<h2>{{t "notes"}}</h2>{{range .Notes}}<p class="note">{{note .}}</p>{{end}}{{end}}
</body>
</html>
`))

// WriteJSON writes rep as indented JSON.
func WriteJSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func fmtRate(p *float64) string {
	if p == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*p, 'f', 3, 64)
}
