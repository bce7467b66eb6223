package detect

import (
	"slices"
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/rules"
)

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

// SM-1: sensitive personal data hidden in a field declared ordinary is found.
func TestScan(t *testing.T) {
	for _, tt := range []struct {
		name string
		text string
		want []string
	}{
		{"id", "11010519491231002X", []string{ResidentID}},
		{"id lower x", "11010519491231002x", []string{ResidentID}},
		{"id in text", "客户身份证11010519491231002X，请核对", []string{ResidentID}},
		{"id full-width", "１１０１０５１９４９１２３１００２Ｘ", []string{ResidentID}},
		{"id bad check", "110105194912310021", nil},
		{"id bad date", "110105194902300028", nil}, // 30 February; check char right for the digits
		{"id in longer run", "911010519491231002X", nil},
		{"card visa", "4111111111111111", []string{BankCard}},
		{"card unionpay spaced", "卡号 6222 0212 3456 7894", []string{BankCard}},
		{"card unionpay bad luhn", "卡号 6222 0212 3456 7897", nil},
		{"card amex", "pay 378282246310005 now", []string{BankCard}},
		{"card full-width", "４１１１１１１１１１１１１１１１", []string{BankCard}},
		{"card grouped", "4111 1111 1111 1111", []string{BankCard}},
		{"card dashed", "4111-1111-1111-1111", []string{BankCard}},
		{"card bad luhn", "4111111111111112", nil},
		{"card inside longer run", "94111111111111111", nil},
		{"card inside 20 digits", "41111111111111111111", nil},
		{"mobile", "联系13812345678", []string{Mobile}},
		{"mobile full-width", "１３８１２３４５６７８", []string{Mobile}},
		{"mobile grouped", "138 1234 5678", []string{Mobile}},
		{"not mobile 12", "12812345678", nil},
		{"not mobile long", "138123456789", nil},
		{"email", "write to zhang.san@example.com.cn please", []string{Email}},
		{"email full-width at", "zhang＠example.com", []string{Email}},
		{"not email", "a @ b", nil},
		{"coords", "39.9087,116.3975", []string{Coordinates}},
		{"coords space", "at 31.2304 121.4737 today", []string{Coordinates}},
		{"coords full-width comma", "39.9087，116.3975", []string{Coordinates}},
		{"coords full-width points", "39．9087,116．3975", []string{Coordinates}},
		{"email full-width at and point", "zhang＠example．com", []string{Email}},
		{"coords imprecise", "39.91,116.40", nil},
		{"coords out of range", "99.9087,116.3975", nil},
		{"price", "¥12.50", nil},
		{"plain", "加入购物车", nil},
		{"two kinds", "4111111111111111 13812345678", []string{BankCard, Mobile}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := kinds(Scan(nil, tt.text))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Scan(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestScanLexicon(t *testing.T) {
	pack := rules.Default()
	fs := Scan(pack, "浏览了 HIV 检测页面")
	if len(fs) == 0 || fs[len(fs)-1].Kind != Lexicon || fs[len(fs)-1].Entry == "" {
		t.Fatalf("Scan with the default pack = %+v, want a lexicon finding", fs)
	}
	if f := Scan(pack, "加入购物车"); len(f) != 0 {
		t.Errorf("plain text: %+v", f)
	}
}

func TestFindingNoValue(t *testing.T) {
	for _, f := range Scan(rules.Default(), "11010519491231002X 4111111111111111 13812345678 a@b.cn 39.9087,116.3975") {
		if w := f.What(); strings.ContainsAny(w, "0123456789@") && f.Kind != Lexicon {
			t.Errorf("%s: message %q carries digits", f.Kind, w)
		}
	}
}

func TestChecksums(t *testing.T) {
	for _, s := range []string{"4111111111111111", "6011111111111117", "378282246310005", "79927398713"} {
		if !luhn([]byte(s)) {
			t.Errorf("luhn(%s) = false", s)
		}
	}
	for _, s := range []string{"4111111111111112", "79927398710"} {
		if luhn([]byte(s)) {
			t.Errorf("luhn(%s) = true", s)
		}
	}
	if !validID([]byte("11010519491231002x")) || validID([]byte("11010519491231002X")) {
		// validID sees folded (lower-case) text.
		t.Error("validID check character")
	}
}

func FuzzScan(f *testing.F) {
	for _, s := range []string{"11010519491231002X", "4111 1111 1111 1111", "１３８１２３４５６７８", "a@b.cn", "39.9087,116.3975", "同性恋", ""} {
		f.Add(s)
	}
	pack := rules.Default()
	f.Fuzz(func(t *testing.T, s string) {
		var sc Scanner
		sc.Scan(pack, "4111 1111 1111 1111 and 13812345678, before")
		if got, want := sc.Scan(pack, s), scanRef(pack, s); !slices.Equal(got, want) {
			t.Fatalf("Scanner.Scan(%q) = %v, reference %v", s, got, want)
		}
		for _, fd := range Scan(pack, s) {
			if !slices.Contains(Kinds, fd.Kind) {
				t.Fatalf("unknown kind %q", fd.Kind)
			}
		}
	})
}

// BenchmarkScan measures the detector cost per event: "event" scans the
// string values of a demo view event (item, category, city), "text" one
// free-text value of about 80 characters.
//
//	go test ./detect -run '^$' -bench Scan -benchmem
func BenchmarkScan(b *testing.B) {
	pack := rules.Default()
	for _, bc := range []struct {
		name   string
		values []string
	}{
		{"event", []string{"sku-20931", "sports", "杭州市西湖区"}},
		{"text", []string{"用户在首页点击了推荐商品 sku-20931，来源 campaign spring_sale，备注：加入购物车后 30 分钟内下单"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sc Scanner // kept, as ingest keeps one per goroutine
			for b.Loop() {
				for _, v := range bc.values {
					sc.Scan(pack, v)
				}
			}
		})
	}
}
