package monitor_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/monitor"
)

// The Chinese report says the catalog's keys and the monitor's notes in
// Chinese; the English one keeps the notes as the JSON has them.
func TestWriteHTMLWords(t *testing.T) {
	rep := &monitor.Report{}
	rep.Fairness.UseCases = []monitor.UseCaseFairness{{UseCase: "credit_limit", Note: "no decision has a subject with every protected attribute recorded"}}
	rep.Price.Note = `the catalog declares no event type "price_shown" with fields item and price: declare one (fields item, price, context) to monitor prices shown (FP-1)`
	names := func(key string) string {
		if key == "credit_limit" {
			return "信用额度"
		}
		return key
	}
	tests := []struct {
		lang      string
		want, not []string
	}{
		{"zh-CN", []string{"信用额度", "没有哪个决定的主体记录了全部受保护属性", "目录未声明带有商品和价格字段的事件类型“price_shown”"}, []string{"credit_limit", "fields item and price"}},
		{"en", []string{"fields item and price", "no decision has a subject"}, nil},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := monitor.WriteFragment(&buf, rep, tt.lang, names); err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: no %q", tt.lang, w)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(buf.String(), w) {
				t.Errorf("%s: shows %q", tt.lang, w)
			}
		}
	}
}
