package forecast

import (
	"fmt"
	"html/template"
	"io"
	"text/tabwriter"
	"time"
)

// Result is the machine-readable result of an evaluation, with exactly the
// keys `portrait predict --json` promises.
type Result struct {
	Model         string  `json:"model"`
	TimeUnit      string  `json:"time_unit"`
	Customers     int     `json:"customers"`
	Params        Params  `json:"params"`
	LogLikelihood float64 `json:"log_likelihood"`
	Calibration   struct {
		RepeatTransactions int `json:"repeat_transactions"`
	} `json:"calibration"`
	Holdout struct {
		Actual    int     `json:"actual"`
		Predicted float64 `json:"predicted"`
	} `json:"holdout"`
}

// Result returns the evaluation's headline figures.
func (e *Evaluation) Result() Result {
	r := Result{Model: e.Model.Name, TimeUnit: "week", Customers: e.Customers, Params: e.Model.Params, LogLikelihood: e.Model.LogLik}
	r.Calibration.RepeatTransactions = e.CalibrationRepeat
	r.Holdout.Actual, r.Holdout.Predicted = e.HoldoutActual, e.HoldoutPredicted
	return r
}

// Text writes the report as plain text: the fit, the holdout errors, the
// conditional expectations by calibration frequency and the weekly
// tracking of cumulative repeat transactions.
func (e *Evaluation) Text(w io.Writer) error {
	m := e.Model
	p := m.Params
	fmt.Fprintf(w, "model %s, time unit week; %d customers (first purchase by %s)\n", m.Name, e.Customers, day(e.CalibrationEnd))
	fmt.Fprintf(w, "calibration %s – %s (%.1f weeks), holdout to %s (%.1f weeks)\n",
		day(e.CalibrationStart), day(e.CalibrationEnd), Weeks(e.CalibrationEnd.Sub(e.CalibrationStart)), day(e.HoldoutEnd), Weeks(e.HoldoutEnd.Sub(e.CalibrationEnd)))
	fmt.Fprintf(w, "params r %.4f  alpha %.4f  a %.4f  b %.4f", p.R, p.Alpha, p.A, p.B)
	if m.Name == ModelTrend {
		fmt.Fprintf(w, "  trend %.5f a week (%+.1f%% a year)", m.Trend.Beta, 100*m.Trend.Yearly())
	}
	fmt.Fprintf(w, "\nlog-likelihood %.2f; fitted in %v (%d fit(s))\n", m.LogLik, m.Elapsed.Round(time.Millisecond), m.Fits)
	fmt.Fprintf(w, "calibration repeat transactions %d\n", e.CalibrationRepeat)
	fmt.Fprintf(w, "holdout transactions: actual %d, predicted %.1f (%+.1f%%)\n", e.HoldoutActual, e.HoldoutPredicted, 100*e.Errors.Total)
	fmt.Fprintf(w, "holdout error per customer: MAE %.4f, RMSE %.4f; per holdout week: MAE %.1f transactions\n\n",
		e.Errors.MAE, e.Errors.RMSE, e.Errors.WeeklyMAE)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "calibration x\tcustomers\tactual holdout mean\tpredicted mean\t")
	for _, g := range e.ByFrequency {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t\n", g.X, g.Customers, g.Actual, g.Predicted)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "week\tends\tactual cumulative\tforecast cumulative\t\t")
	for _, wk := range e.Weekly {
		mark := ""
		if wk.Holdout {
			mark = "holdout"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.1f\t%s\t\n", wk.N, day(wk.End), wk.Actual, wk.Predicted, mark)
	}
	return tw.Flush()
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

// HTML writes the report as a page, Chinese first: the figures of Text,
// with the tracking plot and the conditional expectations as SVG charts.
func (e *Evaluation) HTML(w io.Writer) error {
	const W, H, pad = 720.0, 300.0, 40.0
	maxY := 1.0
	for _, wk := range e.Weekly {
		maxY = max(maxY, float64(wk.Actual), wk.Predicted)
	}
	n := float64(max(1, len(e.Weekly)))
	x := func(i int) float64 { return pad + (W-2*pad)*float64(i+1)/n }
	y := func(v float64) float64 { return H - pad - (H-2*pad)*v/maxY }
	var act, pred string
	split := 0.0
	for i, wk := range e.Weekly {
		act += fmt.Sprintf("%.1f,%.1f ", x(i), y(float64(wk.Actual)))
		pred += fmt.Sprintf("%.1f,%.1f ", x(i), y(wk.Predicted))
		if !wk.Holdout {
			split = x(i)
		}
	}
	maxG := 0.1
	for _, g := range e.ByFrequency {
		maxG = max(maxG, g.Actual, g.Predicted)
	}
	type bar struct {
		X, Label               string
		XA, XP, HA, HP, YA, YP float64
	}
	var bars []bar
	for i, g := range e.ByFrequency {
		bw := (W - 2*pad) / float64(len(e.ByFrequency))
		left := pad + bw*float64(i)
		ha, hp := (H-2*pad)*g.Actual/maxG, (H-2*pad)*g.Predicted/maxG
		bars = append(bars, bar{X: g.X, XA: left + bw*0.15, XP: left + bw*0.5, HA: ha, HP: hp, YA: H - pad - ha, YP: H - pad - hp,
			Label: fmt.Sprintf("%.2f / %.2f", g.Actual, g.Predicted)})
	}
	return reportPage.Execute(w, map[string]any{
		"E": e, "P": e.Model.Params, "Trend": e.Model.Name == ModelTrend, "Yearly": 100 * e.Model.Trend.Yearly(),
		"W": W, "H": H, "Pad": pad, "Act": act, "Pred": pred, "Split": split, "MaxY": maxY, "Bars": bars,
		"Cal": day(e.CalibrationEnd), "Start": day(e.CalibrationStart), "Hold": day(e.HoldoutEnd),
		"TotalPct": 100 * e.Errors.Total,
	})
}

var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>购买预测评估 · Purchase forecast evaluation</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:800px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2em .6em;text-align:right}
.en{color:#555}svg text{font-size:11px}</style></head><body>
<h1>购买预测评估 <span class="en">Purchase forecast evaluation</span></h1>
<p>模型 <b>{{.E.Model.Name}}</b>，时间单位为周；{{.E.Customers}} 位顾客，在 {{.Start}} 至 {{.Cal}} 的校准期内拟合，在 {{.Cal}} 之后至 {{.Hold}} 的保留期内检验。同一天的多次购买计为一次。</p>
<p class="en">Model <b>{{.E.Model.Name}}</b>, time unit week; {{.E.Customers}} customers, fitted on the calibration period {{.Start}} – {{.Cal}} and checked on the holdout to {{.Hold}}. Purchases on the same day count as one transaction.</p>
<table><tr><th>r</th><th>α</th><th>a</th><th>b</th>{{if .Trend}}<th>趋势 trend / 年 year</th>{{end}}<th>对数似然 log-likelihood</th></tr>
<tr><td>{{printf "%.4f" .P.R}}</td><td>{{printf "%.4f" .P.Alpha}}</td><td>{{printf "%.4f" .P.A}}</td><td>{{printf "%.4f" .P.B}}</td>{{if .Trend}}<td>{{printf "%+.1f%%" .Yearly}}</td>{{end}}<td>{{printf "%.2f" .E.Model.LogLik}}</td></tr></table>
<h2>保留期误差 <span class="en">Holdout error</span></h2>
<table>
<tr><th>校准期重复购买 calibration repeat transactions</th><td>{{.E.CalibrationRepeat}}</td></tr>
<tr><th>保留期实际 holdout actual</th><td>{{.E.HoldoutActual}}</td></tr>
<tr><th>保留期预测 holdout predicted</th><td>{{printf "%.1f" .E.HoldoutPredicted}} ({{printf "%+.1f%%" .TotalPct}})</td></tr>
<tr><th>每位顾客平均绝对误差 MAE per customer</th><td>{{printf "%.4f" .E.Errors.MAE}}</td></tr>
<tr><th>每位顾客均方根误差 RMSE per customer</th><td>{{printf "%.4f" .E.Errors.RMSE}}</td></tr>
<tr><th>保留期每周平均绝对误差 weekly MAE (transactions)</th><td>{{printf "%.1f" .E.Errors.WeeklyMAE}}</td></tr>
</table>
<h2>累计重复购买（按周）<span class="en">Cumulative repeat transactions by week</span></h2>
<p>实线：实际；虚线：预测。竖线右侧为保留期。<span class="en">Solid: actual; dashed: forecast. Right of the vertical line: holdout.</span></p>
<svg width="{{.W}}" height="{{.H}}" role="img" aria-label="cumulative repeat transactions">
<line x1="{{.Pad}}" y1="{{.Pad}}" x2="{{.Pad}}" y2="260" stroke="#999"/><line x1="{{.Pad}}" y1="260" x2="680" y2="260" stroke="#999"/>
<line x1="{{.Split}}" y1="{{.Pad}}" x2="{{.Split}}" y2="260" stroke="#bbb" stroke-dasharray="2,2"/>
<text x="2" y="{{.Pad}}">{{printf "%.0f" .MaxY}}</text><text x="{{.Pad}}" y="280">week 1</text>
<polyline fill="none" stroke="#c00" stroke-width="2" points="{{.Act}}"/>
<polyline fill="none" stroke="#036" stroke-width="2" stroke-dasharray="6,3" points="{{.Pred}}"/>
</svg>
<h2>按校准期购买次数的条件期望 <span class="en">Conditional expectations by calibration frequency</span></h2>
<p>每组顾客在保留期内的平均购买次数：红色为实际，蓝色为预测。<span class="en">Mean holdout transactions per customer: red actual, blue predicted.</span></p>
<svg width="{{.W}}" height="{{.H}}" role="img" aria-label="conditional expectations">
{{range .Bars}}<rect x="{{.XA}}" y="{{.YA}}" width="20" height="{{.HA}}" fill="#c00"/><rect x="{{.XP}}" y="{{.YP}}" width="20" height="{{.HP}}" fill="#036"/>
<text x="{{.XA}}" y="275">x={{.X}}</text><text x="{{.XA}}" y="290">{{.Label}}</text>{{end}}
</svg>
<table><tr><th>x</th><th>顾客 customers</th><th>实际 actual</th><th>预测 predicted</th></tr>
{{range .E.ByFrequency}}<tr><td>{{.X}}</td><td>{{.Customers}}</td><td>{{printf "%.3f" .Actual}}</td><td>{{printf "%.3f" .Predicted}}</td></tr>{{end}}</table>
<h2>每周 <span class="en">By week</span></h2>
<table><tr><th>周 week</th><th>截至 ends</th><th>实际累计 actual</th><th>预测累计 forecast</th></tr>
{{range .E.Weekly}}<tr><td>{{.N}}{{if .Holdout}}*{{end}}</td><td>{{.End.Format "2006-01-02"}}</td><td>{{.Actual}}</td><td>{{printf "%.1f" .Predicted}}</td></tr>{{end}}</table>
<p>* 保留期 <span class="en">holdout</span></p>
</body></html>
`))
