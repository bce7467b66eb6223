package monitor

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"

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

// WriteHTML writes rep as one page with inline SVG charts, no script and no
// external resource; html/template escapes every value for its context.
func WriteHTML(w io.Writer, rep *Report) error {
	var fair []chart
	for _, u := range rep.Fairness.UseCases {
		if u.Audit == nil {
			continue
		}
		alerted := map[string]bool{}
		for _, a := range u.Audit.Alerts {
			alerted[a.Group] = true
		}
		c := newChart("impact ratio by group — "+u.UseCase, u.Audit.Threshold, true)
		for _, g := range u.Audit.Groups {
			v, text := 0.0, "excluded"
			if g.ImpactRatio != nil {
				v, text = *g.ImpactRatio, strconv.FormatFloat(*g.ImpactRatio, 'f', 3, 64)
			} else if !g.Excluded {
				text = "n/a"
			}
			c.add(g.Name+" (n="+strconv.Itoa(g.N)+")", v, text, alerted[g.Name])
		}
		fair = append(fair, c)
	}
	proxy := newChart("association with protected attributes", rep.Proxies.Threshold, true)
	for i, f := range rep.Proxies.Findings {
		if i == 40 {
			break
		}
		proxy.add(f.Feature+" ~ "+f.Protected, f.Value, strconv.FormatFloat(f.Value, 'f', 3, 64), f.Flagged && !f.Cleared)
	}
	var price []chart
	if rep.Price.Scan != nil {
		for i, f := range rep.Price.Scan.Findings {
			if i == 10 {
				break
			}
			c := newChart(fmt.Sprintf("item %s, context %q, from %s: mean price by segment (relative to the highest)", f.Item, f.Context, f.WindowStart.Format("2006-01-02 15:04")), 0, false)
			top := f.Segments[0].Mean
			for _, s := range f.Segments {
				v := 0.0
				if top > 0 {
					v = s.Mean / top
				}
				c.add(s.Segment+" (n="+strconv.FormatInt(s.Events, 10)+")", v, strconv.FormatFloat(s.Mean, 'f', 2, 64), f.Alert && s.Mean == top)
			}
			price = append(price, c)
		}
	}
	scopes := slices.Clone(rep.Diversity.Scopes)
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
			FloorY: math.Round((40-rep.Diversity.Floor*36)*10) / 10, Slope: "n/a"}
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
	var recSparks []spark
	bscopes := append(slices.Clone(rep.Recommenders.Recommenders), rep.Recommenders.Subjects...)
	for i, s := range bscopes {
		if i == maxScopes {
			break
		}
		recSparks = append(recSparks, bubbleSpark(s))
	}
	return pageTmpl.Execute(w, struct {
		*Report
		Fair      []chart
		Proxy     chart
		Prices    []chart
		Sparks    []spark
		More      int
		RecSparks []spark
		RecMore   int
	}{rep, fair, proxy, price, sparks, max(0, len(scopes)-maxScopes), recSparks, max(0, len(bscopes)-maxScopes)})
}

// bubbleSpark draws one recommender's or subject's entropy over time.
func bubbleSpark(s BubbleScope) spark {
	sp := spark{Scope: s.Scope, Latest: "n/a", Alert: s.Trend.BelowFloor, FloorY: math.Round((40-s.Floor*36)*10) / 10, Slope: "n/a"}
	if len(s.Periods) > 0 {
		sp.Latest = strconv.FormatFloat(s.Trend.Latest, 'f', 3, 64)
		last := s.Periods[len(s.Periods)-1]
		sp.Trend = fmt.Sprintf("coverage %.3f, Gini %.3f", last.Coverage, last.Gini)
		if last.ILD != nil {
			sp.Trend += fmt.Sprintf(", intra-list diversity %.3f", *last.ILD)
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
	"f3": func(x float64) string { return strconv.FormatFloat(x, 'f', 3, 64) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Portrait monitor report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
tr.alert td { background: #fde8e8; }
.note { color: #555; }
svg text { font-size: 12px; }
</style>
</head>
<body>
<h1>Monitor report {{.ID}}</h1>
<p>{{.Time.Format "2006-01-02 15:04:05 UTC"}} · {{.Subjects}} subjects ({{.Restricted}} restricted, left out) · {{.WithValues}} with protected attributes recorded ({{range $i, $a := .Protected}}{{if $i}}, {{end}}{{$a}}{{end}}).</p>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}

<h2>Alerts: {{len .Alerts}}</h2>
{{if .Alerts}}<table><tr><th>monitor</th><th>requirement</th><th>metric</th><th>value</th><th>threshold</th><th>scope</th><th>message</th></tr>
{{range .Alerts}}<tr class="alert"><td>{{.Kind}}</td><td>{{.Requirement}}</td><td>{{.Metric}}</td><td>{{f3 .Value}}</td><td>{{f3 .Threshold}}</td><td>{{.Scope}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{end}}

<h2>Fairness of decisions (FP-3, FP-4)</h2>
{{with .Fairness.Note}}<p class="note">{{.}}</p>{{end}}
{{range .Fairness.UseCases}}<p><b>{{.UseCase}}</b>: {{.Decisions}} decisions, {{.LeftOut}} without protected attributes. {{.Note}}</p>
{{with .Audit}}{{if .Excluded}}<ul>{{range .Excluded}}<li>excluded (FP-3): {{.Group}} — {{.Reason}}</li>{{end}}</ul>{{end}}{{end}}
<p class="note">Outcomes known for {{.OutcomesKnown}} decisions; source: {{.OutcomeSource}}.</p>
{{if .Flips}}<table><tr><th>changed</th><th>kind</th><th>groups of</th><th>runs</th><th>flips</th><th>flip rate</th><th>method</th></tr>
{{range .Flips}}<tr{{with .Result}}{{if .Flips}} class="alert"{{end}}{{end}}><td>{{.Changed}}</td><td>{{.Kind}}</td><td>{{.Protected}}</td>{{with .Result}}<td>{{.Evaluations}}</td><td>{{.Flips}}</td><td>{{f3 .FlipRate}}</td>{{else}}<td colspan="3">not run</td>{{end}}<td>{{.Method}} {{.Note}}</td></tr>
{{end}}</table>{{end}}{{with .FlipNote}}<p class="note">{{.}}</p>{{end}}
{{end}}
{{range .Fair}}{{template "chart" .}}{{end}}

<h2>Proxy detection (FP-6)</h2>
{{with .Proxies.Note}}<p class="note">{{.}}</p>{{end}}
<p>Flag above {{f3 .Proxies.Threshold}} with at least {{.Proxies.MinSubjects}} subjects; a flagged feature is treated as sensitive until a reviewer clears it.</p>
{{if .Proxy.Bars}}{{template "chart" .Proxy}}{{end}}
{{if .Proxies.Findings}}<table><tr><th>feature</th><th>kind</th><th>protected</th><th>measure</th><th>value</th><th>subjects</th><th>flagged</th><th>note</th></tr>
{{range .Proxies.Findings}}<tr{{if and .Flagged (not .Cleared)}} class="alert"{{end}}><td>{{.Feature}}</td><td>{{.Kind}}</td><td>{{.Protected}}</td><td>{{.Measure}}</td><td>{{f3 .Value}}</td><td>{{.Subjects}}</td><td>{{if .Cleared}}cleared{{else if .Flagged}}yes{{else}}no{{end}}</td><td>{{.Note}}</td></tr>
{{end}}</table>{{end}}

<h2>Price discrimination (FP-1)</h2>
{{with .Price.Note}}<p class="note">{{.}}</p>{{end}}
{{with .Price.Scan}}<p>{{.Events}} price events in {{.Cells}} item × window × context cells; {{len .Findings}} with different prices across segments, {{len .Alerts}} alerts.</p>{{end}}
{{range .Prices}}{{template "chart" .}}{{end}}
{{if .Escalations}}<h3>Escalations</h3><table><tr><th>item</th><th>context</th><th>consecutive runs</th><th>use-cases</th><th>message</th></tr>
{{range .Escalations}}<tr class="alert"><td>{{.Item}}</td><td>{{.Context}}</td><td>{{.Runs}}</td><td>{{range $uc, $a := .Actions}}{{$uc}}: {{$a}} {{end}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{end}}

<h2>Filter bubble (FB-1, FB-2)</h2>
{{with .Diversity.Note}}<p class="note">{{.}}</p>{{end}}
<p>Normalised category entropy of {{.Diversity.EventType}} events per period ({{.Diversity.PeriodSeconds}} s, at least {{.Diversity.MinImpressions}} events); floor {{f3 .Diversity.Floor}} (dashed).</p>
{{if .Sparks}}<table><tr><th>scope</th><th>entropy over time</th><th>latest</th><th>slope</th></tr>
{{range .Sparks}}<tr{{if .Alert}} class="alert"{{end}}><td>{{.Scope}}</td><td><svg xmlns="http://www.w3.org/2000/svg" width="160" height="44" role="img" aria-label="entropy trend">
<line x1="0" y1="{{.FloorY}}" x2="160" y2="{{.FloorY}}" stroke="#c00" stroke-dasharray="3,3"/>
<polyline fill="none" stroke="#246" stroke-width="2" points="{{.Points}}"/></svg></td><td>{{.Latest}}</td><td>{{.Slope}}</td></tr>
{{end}}</table>{{if .More}}<p class="note">{{.More}} more scopes in the JSON report.</p>{{end}}{{end}}

<h2>Recommendations as shown (FB-1, FB-2)</h2>
{{with .Recommenders.Note}}<p class="note">{{.}}</p>{{end}}
<p>{{len .Recommenders.Recommenders}} recommenders; {{.Recommenders.SubjectsTracked}} subjects tracked, {{.Recommenders.SubjectsBelow}} below their floor, {{.Recommenders.SubjectsEvicted}} dropped to bound memory, {{.Recommenders.AnswersRejected}} answers not counted.</p>
{{if .RecSparks}}<table><tr><th>scope</th><th>category entropy over time</th><th>latest</th><th>slope</th><th>last period</th></tr>
{{range .RecSparks}}<tr{{if .Alert}} class="alert"{{end}}><td>{{.Scope}}</td><td><svg xmlns="http://www.w3.org/2000/svg" width="160" height="44" role="img" aria-label="entropy trend">
<line x1="0" y1="{{.FloorY}}" x2="160" y2="{{.FloorY}}" stroke="#c00" stroke-dasharray="3,3"/>
<polyline fill="none" stroke="#246" stroke-width="2" points="{{.Points}}"/></svg></td><td>{{.Latest}}</td><td>{{.Slope}}</td><td>{{.Trend}}</td></tr>
{{end}}</table>{{if .RecMore}}<p class="note">{{.RecMore}} more scopes in the JSON report.</p>{{end}}{{end}}
</body>
</html>
{{define "chart"}}<figure><figcaption>{{.Title}}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" width="700" height="{{.Height}}" role="img" aria-label="{{.Title}}">
{{range .Bars}}<text x="0" y="{{.TextY}}">{{.Label}}</text>
<rect x="{{$.LabelW}}" y="{{.Y}}" width="{{.W}}" height="16" fill="{{if .Alert}}#c33{{else}}#47a{{end}}"/>
<text x="{{$.LabelW}}" dx="{{.W}}" dy="0" y="{{.TextY}}"> {{.Text}}</text>
{{end}}{{if .HasLine}}<line x1="{{.LineX}}" y1="18" x2="{{.LineX}}" y2="{{.Height}}" stroke="#c00" stroke-dasharray="4,3"/>{{end}}
</svg></figure>{{end}}`))
