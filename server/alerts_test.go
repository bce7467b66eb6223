package server_test

import (
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portrait-dev/portrait/monitor"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/server"
)

// alertingMonitor replaces the harness's monitor with one that reads
// prices from the demo's view events (the demo catalog declares no
// price_shown type) and flags a proxy from ten subjects, so a small
// harness can raise every kind of alert.
func alertingMonitor(cfg *server.Config) {
	mon, err := monitor.New(monitor.Deps{Store: cfg.Store, Point: cfg.Point, Keys: cfg.Keys, Log: cfg.Log},
		monitor.Options{PriceEventType: "view", ProxyMinSubjects: 10, Logger: cfg.Logger})
	if err != nil {
		panic(err)
	}
	cfg.Monitor = mon
}

// raiseAlerts makes the monitor raise a fairness alert (credit decisions
// split by gender through income, which is also flagged as a proxy and
// flips decisions), a price alert (sports fans shown a higher price for
// the same item) and filter-bubble alerts (people who only ever see
// sports), then runs it. It returns the log index of the first alert.
// The harness must be consoleHarness(t, alertingMonitor).
func raiseAlerts(h *harness) int64 {
	h.t.Helper()
	op := h.staff(policy.Operator)
	now := time.Now().UTC()
	for i := range 12 {
		subject := fmt.Sprintf("applicant-%02d", i)
		gender, income := "female", 1000.0
		if i%2 == 1 {
			gender, income = "male", 20000.0
		}
		h.consent(subject, "credit", "granted")
		h.consent(subject, "analytics", "granted")
		evs := fmt.Sprintf(`[{"subject":%q,"type":"profile","time":%q,"fields":{"age":35,"income":%v}}]`, subject, now.Add(-time.Hour).Format(time.RFC3339), income)
		if resp := h.do("POST", "/v1/events", op, "application/json", []byte(evs), nil); resp.StatusCode != 200 {
			h.t.Fatalf("profile of %s: %d", subject, resp.StatusCode)
		}
		if resp := h.json("PUT", "/v1/subjects/"+subject+"/protected", op, map[string]string{"gender": gender}, nil); resp.StatusCode != 204 {
			h.t.Fatalf("protected attributes of %s: %d", subject, resp.StatusCode)
		}
		if resp := h.json("POST", "/v1/me/usecases/credit_limit/notice", h.token(subject), nil, nil); resp.StatusCode != 201 {
			h.t.Fatalf("notice for %s: %d", subject, resp.StatusCode)
		}
		if resp := h.json("POST", "/v1/decisions", op, map[string]string{"usecase": "credit_limit", "subject": subject}, nil); resp.StatusCode != 201 {
			h.t.Fatalf("decision about %s: %d", subject, resp.StatusCode)
		}
	}
	// Six sports fans and six others see item P-1; the fans pay more. Each
	// sees only sports: a filter bubble for every one of them.
	for i := range 12 {
		subject := fmt.Sprintf("shopper-%02d", i)
		price := 100.0
		if i%2 == 0 {
			price = 180.0
		}
		h.consent(subject, "personalization", "granted")
		var body strings.Builder
		for j := range 6 {
			fmt.Fprintf(&body, `{"subject":%q,"type":"view","time":%q,"fields":{"item":"P-1","category":"sports","price":%v}}`+"\n",
				subject, now.Add(-time.Duration(j+1)*time.Minute).Format(time.RFC3339), price)
		}
		if resp := h.do("POST", "/v1/events", op, "application/x-ndjson", []byte(body.String()), nil); resp.StatusCode != 200 {
			h.t.Fatalf("views of %s: %d", subject, resp.StatusCode)
		}
		if i%2 == 0 {
			h.putLabel(h.keys.Pseudonym(subject), "sports_fan")
		}
	}
	var run struct {
		Alerts []monitor.Alert `json:"alerts"`
	}
	if resp := h.json("POST", "/v1/monitor/runs", h.staff(policy.Admin), nil, &run); resp.StatusCode != 201 {
		h.t.Fatalf("monitor run: %d", resp.StatusCode)
	}
	kinds := map[string]int{}
	first := int64(-1)
	for _, a := range run.Alerts {
		kinds[a.Kind+"/"+a.Metric]++
		if first < 0 || a.LogIndex < first {
			first = a.LogIndex
		}
	}
	for _, want := range []string{"fairness/impact_ratio", "price/segment_gap", "diversity/category_entropy", "proxy/correlation_ratio", "fairness/proxy_flip_rate"} {
		if kinds[want] == 0 {
			h.t.Errorf("the monitor raised no %s alert; it raised %v", want, kinds)
		}
	}
	return first
}

// pageText is a page's text as a reader sees it, roughly: no tags, no
// style, nothing inside an element marked data-raw.
func pageText(page string) string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?s)<style.*?</style>`), regexp.MustCompile(`(?s)<script.*?</script>`),
		regexp.MustCompile(`(?s)<(pre|code|span|div|td|p)[^>]*data-raw[^>]*>.*?</(pre|code|span|div|td|p)>`),
		regexp.MustCompile(`(?s)<[^>]*>`),
	} {
		page = re.ReplaceAllString(page, " ")
	}
	return html.UnescapeString(page)
}

// TestAlertsInWords makes the monitor raise fairness, proxy, price and
// filter-bubble alerts, then reads the monitor page and each alert's log
// entry as the privacy officer: in zh-CN no catalog key, taxonomy key or
// English-only message is shown; in English the same facts are said in
// English (FP-1, FP-4, FB-2).
func TestAlertsInWords(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds two dozen subjects")
	}
	h, base, _, _ := consoleHarness(t, alertingMonitor)
	first := raiseAlerts(h)
	c, _, _ := staffClient(t, base, h.staff(policy.Admin), "/console/monitor")
	english := regexp.MustCompile(`use-case|selection rate|is below the floor|is associated with|paid [0-9.]+ on average|recommendations:|\(no label\)`)
	for _, page := range []string{"monitor", "log", fmt.Sprintf("log/%d", first), "orders"} {
		text := pageText(fetchPage(t, c, base+"/console/"+page+"?lang=zh-CN"))
		checkNoRawKeys(t, "/console/"+page, text)
		if m := english.FindString(text); m != "" {
			i := strings.Index(text, m)
			t.Errorf("zh-CN /console/%s shows English %q in %q", page, m, text[max(0, i-60):min(len(text), i+60)])
		}
	}
	zh := pageText(fetchPage(t, c, base+"/console/monitor?lang=zh-CN"))
	// FB-1: the twelve people in a bubble are a count and a spread, not
	// twelve rows that push the fairness alert down the page.
	for _, want := range []string{"信用额度", "性别", "收入", "运动爱好者", "个人信息茧房告警共 12 条", "按浏览记录：12 人，12 人低于下限"} {
		if !strings.Contains(zh, want) {
			t.Errorf("zh-CN monitor page does not say %q", want)
		}
	}
	// A group is a value from the data, not a catalog key: the catalog
	// declares no words for values, so it is shown quoted as a value
	// (值“female”), never bare as if it were a word of the page.
	if !strings.Contains(zh, "值“female”") {
		t.Errorf("zh-CN monitor page does not mark the group value as data (值“female”)")
	}
	for _, m := range regexp.MustCompile(`\b(?:fe)?male\b`).FindAllStringIndex(zh, -1) {
		if !strings.HasSuffix(zh[:m[0]], "“") || !strings.HasPrefix(zh[m[1]:], "”") {
			t.Errorf("zh-CN monitor page shows a group value unquoted in %q", zh[max(0, m[0]-60):min(len(zh), m[1]+60)])
		}
	}
	if strings.Count(zh, "某人（假名") > 0 {
		t.Errorf("zh-CN monitor page lists people one by one")
	}
	en := pageText(fetchPage(t, c, base+"/console/monitor?lang=en"))
	for _, want := range []string{"Credit limit", "Gender", "Income"} {
		if !strings.Contains(en, want) {
			t.Errorf("English monitor page does not name %q", want)
		}
	}
}

// TestLogInWords reads every entry the audit-log browser lists, kind by
// kind, in zh-CN after the harness has decided, reviewed, reported,
// suspended and monitored: each entry's kind, action and actor are words,
// not the values the log stores (an action such as "sweep" or an actor
// such as "system:fairness").
func TestLogInWords(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds two dozen subjects")
	}
	h, base, _ := sectionsHarness(t)
	c, _, page := staffClient(t, base, h.staff(policy.Admin), "/console/log?lang=zh-CN")
	kinds := regexp.MustCompile(`<option value="([a-z_]+)"`).FindAllStringSubmatch(page, -1)
	if len(kinds) < 5 {
		t.Fatalf("the log offers %d kinds", len(kinds))
	}
	row := regexp.MustCompile(`(?s)<li><a href="/console/log/(\d+)"[^>]*>#\d+</a> · <strong>([^<]*)</strong>(?: · ([^<]*?))?\s*<span class="meta">· [^<]*?(?: · ([^<]*))?</span></li>`)
	ascii := regexp.MustCompile(`^[\x00-\x7f]*$`)
	rows := 0
	for _, k := range kinds {
		page := fetchPage(t, c, base+"/console/log?lang=zh-CN&kind="+k[1])
		for _, m := range row.FindAllStringSubmatch(page, -1) {
			rows++
			for i, what := range map[int]string{2: "kind", 3: "action", 4: "actor"} {
				if v := strings.TrimSpace(html.UnescapeString(m[i])); v != "" && ascii.MatchString(v) {
					t.Errorf("log entry #%s (%s): %s %q is not in words", m[1], k[1], what, v)
				}
			}
		}
	}
	if rows < 10 {
		t.Errorf("read %d log rows; the pattern may no longer match the page", rows)
	}
}
