package label

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/catalog"
)

// Value is one derived label value for one subject, with the provenance
// that lets it explain itself (CM-2, SR-1, invariant 6).
type Value struct {
	Label      string    `json:"label"`
	Version    int       `json:"version"`
	Kind       string    `json:"kind"`
	Bool       bool      `json:"bool"`
	Score      float64   `json:"score,omitempty"`
	Segment    int       `json:"segment"`
	Confidence float64   `json:"confidence"`
	Inputs     []string  `json:"inputs"` // profile fields, then "event:TYPE" ("event:*": any type)
	EventCount int       `json:"event_count"`
	From       time.Time `json:"from,omitzero"`
	To         time.Time `json:"to,omitzero"`
	Computed   time.Time `json:"computed"`
	Expires    time.Time `json:"expires,omitzero"`
	Facts      []Fact    `json:"facts,omitempty"`
	// Forecast is a purchase forecast's inputs, model and outputs, so that
	// the subject's export and the portrait carry all of it (SR-2).
	Forecast *Forecast `json:"forecast,omitempty"`
}

// Fact is one thing that decided a value: an aggregate over events, a
// profile field read, a model contribution, a segment or an RFM class.
type Fact struct {
	// Func is count, frequency, sum, mean, min, max, distinct, recency,
	// monetary, field, contribution, segment or rfm.
	Func   string  `json:"func"`
	Type   string  `json:"type,omitempty"`   // event type
	Field  string  `json:"field,omitempty"`  // event field, profile field or feature
	Equals any     `json:"equals,omitempty"` // count's value, or the field's value
	Window string  `json:"window,omitempty"` // as written, e.g. "30d"
	Value  float64 `json:"value"`
	// Text describes a segment or names an RFM class.
	Text catalog.Text `json:"text,omitempty"`
}

// Explain renders one plain-language sentence, in zh-CN or en (anything
// else falls back to en), saying what the label is and which facts made it.
func (v Value) Explain(lang string, l *catalog.Label) string {
	zh := strings.HasPrefix(lang, "zh")
	name := v.Label
	if l != nil {
		if zh {
			name = l.Name.In("zh-CN")
		} else if s := l.Name["en"]; s != "" {
			name = s
		} else if s := l.Name.In("en"); s != "" {
			name = s
		}
		if name == "" {
			name = l.ID
		}
	}
	var parts []string
	for _, f := range v.Facts {
		if p := f.phrase(zh); p != "" {
			parts = append(parts, p)
		}
	}
	var head string
	switch {
	case v.Kind == catalog.KindScore && zh:
		head = fmt.Sprintf("「%s」得分%s（%s）", name, num(v.Score), yesNo(v.Bool, "达到阈值", "未达到阈值"))
	case v.Kind == catalog.KindScore:
		head = fmt.Sprintf("%s scored %s (%s)", name, num(v.Score), yesNo(v.Bool, "at or above the threshold", "below the threshold"))
	case v.Kind == catalog.KindBGNBD:
		// A forecast's one fact is its whole explanation.
		for _, f := range v.Facts {
			if f.Func == "forecast" {
				if zh {
					return "「" + name + "」：" + f.Text.In("zh-CN")
				}
				return name + ": " + f.Text.In("en")
			}
		}
		return name
	case (v.Kind == catalog.KindSegment || v.Kind == catalog.KindRFM) && zh:
		head = fmt.Sprintf("您在「%s」中被归入此类", name)
	case v.Kind == catalog.KindSegment || v.Kind == catalog.KindRFM:
		head = fmt.Sprintf("You are placed in this group of %s", name)
	case zh:
		head = fmt.Sprintf("%s「%s」", yesNo(v.Bool, "符合", "不符合"), name)
	default:
		head = fmt.Sprintf("%s %s", name, yesNo(v.Bool, "applies to you", "does not apply to you"))
	}
	if len(parts) == 0 {
		if zh {
			return head + "。"
		}
		return head + "."
	}
	if zh {
		return head + "，因为" + strings.Join(parts, "，") + "。"
	}
	return head + " because " + strings.Join(parts, ", and ") + "."
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func num(f float64) string {
	if f == float64(int64(f)) && f < 1e15 && f > -1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// verbs names common event types as actions; other types read as
// "had N “type” events".
var verbs = map[string][2]string{
	"view":     {"浏览", "viewed"},
	"click":    {"点击", "clicked"},
	"purchase": {"购买", "purchased"},
	"order":    {"下单", "ordered"},
	"search":   {"搜索", "searched"},
	"login":    {"登录", "logged in"},
	"cart":     {"加购", "added to cart"},
	"share":    {"分享", "shared"},
	"like":     {"点赞", "liked"},
}

func verb(t string, zh bool) string {
	if v, ok := verbs[t]; ok {
		if zh {
			return v[0]
		}
		return v[1]
	}
	if zh {
		return "发生“" + t + "”事件"
	}
	return "had “" + t + "” events"
}

// span renders a window: "30d" → "过去30天" / "the last 30 days".
func span(w string, zh bool) string {
	d, err := catalog.ParseDuration(w)
	if err != nil {
		return w
	}
	td := time.Duration(d)
	day := 24 * time.Hour
	n, zhu, enu := int64(0), "", ""
	switch {
	case td%(365*day) == 0:
		n, zhu, enu = int64(td/(365*day)), "年", "year"
	case td%day == 0:
		n, zhu, enu = int64(td/day), "天", "day"
	case td%time.Hour == 0:
		n, zhu, enu = int64(td/time.Hour), "小时", "hour"
	default:
		n, zhu, enu = int64(td/time.Minute), "分钟", "minute"
	}
	if zh {
		return fmt.Sprintf("过去%d%s", n, zhu)
	}
	if n == 1 {
		return "the last " + enu
	}
	return fmt.Sprintf("the last %d %ss", n, enu)
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case float64:
		return num(x)
	case time.Time:
		return x.Format("2006-01-02")
	}
	return fmt.Sprint(v)
}

func (f Fact) phrase(zh bool) string {
	w := span(f.Window, zh)
	switch f.Func {
	case "count", "frequency":
		if f.Equals != nil {
			if zh {
				return fmt.Sprintf("您在%s%s了%s次%s为“%s”的内容", w, verb(f.Type, true), num(f.Value), f.Field, show(f.Equals))
			}
			return fmt.Sprintf("you %s items with %s “%s” %s times in %s", verb(f.Type, false), f.Field, show(f.Equals), num(f.Value), w)
		}
		if zh {
			return fmt.Sprintf("您在%s%s了%s次", w, verb(f.Type, true), num(f.Value))
		}
		return fmt.Sprintf("you %s %s times in %s", verb(f.Type, false), num(f.Value), w)
	case "sum", "monetary", "mean", "min", "max":
		zhw := map[string]string{"sum": "合计", "monetary": "合计", "mean": "平均", "min": "最低", "max": "最高"}[f.Func]
		enw := map[string]string{"sum": "total", "monetary": "total", "mean": "average", "min": "smallest", "max": "largest"}[f.Func]
		if zh {
			return fmt.Sprintf("您在%s的“%s”事件中%s%s为%s", w, f.Type, f.Field, zhw, num(f.Value))
		}
		return fmt.Sprintf("the %s %s of your “%s” events in %s was %s", enw, f.Field, f.Type, w, num(f.Value))
	case "distinct":
		if zh {
			return fmt.Sprintf("您在%s的“%s”事件涉及%s种不同的%s", w, f.Type, num(f.Value), f.Field)
		}
		return fmt.Sprintf("your “%s” events in %s covered %s different %s values", f.Type, w, num(f.Value), f.Field)
	case "recency":
		if f.Value >= 1e9 {
			if zh {
				return "您从未" + verb(f.Type, true)
			}
			return "you have never " + verb(f.Type, false)
		}
		if zh {
			return fmt.Sprintf("您最近一次%s在%s天前", verb(f.Type, true), num(float64(int64(f.Value))))
		}
		return fmt.Sprintf("you last %s %s days ago", verb(f.Type, false), num(float64(int64(f.Value))))
	case "field":
		if zh {
			return fmt.Sprintf("您的%s为%s", f.Field, show(f.Equals))
		}
		return fmt.Sprintf("your %s is %s", f.Field, show(f.Equals))
	case "contribution":
		if zh {
			return fmt.Sprintf("%s（%s）贡献%s", f.Field, show(f.Equals), signed(f.Value))
		}
		return fmt.Sprintf("%s (%s) counted %s", f.Field, show(f.Equals), signed(f.Value))
	case "segment", "rfm":
		if zh {
			return "该类的特点是：" + f.Text.In("zh-CN")
		}
		return "this group " + f.Text.In("en")
	}
	return ""
}

func signed(f float64) string {
	return strconv.FormatFloat(f, 'f', 2, 64)
}
