package detect

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/portrait-dev/portrait/rules"
)

// scanRef is Scan as it was before the Scanner kept its memory: a string
// for every fold and run. It is kept, verbatim but for the names, as the
// reference the Scanner is held to.
func scanRef(pack *rules.Pack, text string) []Finding {
	var out []Finding
	seen := map[string]bool{}
	add := func(kind string) {
		if !seen[kind] {
			seen[kind] = true
			out = append(out, Finding{Kind: kind})
		}
	}
	ascii := isASCII(text)
	var runs []string
	if !ascii || strings.IndexAny(text, "0123456789") >= 0 {
		runs = digitRunsRef(rules.Fold(text))
	}
	for _, run := range runs {
		switch n := len(run); {
		case n == 18 && validID([]byte(run)):
			add(ResidentID)
		case n >= 13 && n <= 19 && !strings.HasSuffix(run, "x") && luhn([]byte(run)):
			add(BankCard)
		case n == 11 && !strings.HasSuffix(run, "x") && run[0] == '1' && run[1] >= '3' && run[1] <= '9':
			add(Mobile)
		}
	}
	nfkc := text
	if !ascii {
		nfkc = norm.NFKC.String(text)
	}
	if strings.IndexByte(nfkc, '@') >= 0 && emailRE.MatchString(nfkc) {
		add(Email)
	}
	if strings.IndexByte(nfkc, '.') >= 0 {
		for _, m := range coordRE.FindAllStringSubmatch(nfkc, -1) {
			lat, err1 := strconv.ParseFloat(m[1], 64)
			lon, err2 := strconv.ParseFloat(m[2], 64)
			if err1 == nil && err2 == nil && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 {
				add(Coordinates)
				break
			}
		}
	}
	if pack != nil {
		for _, h := range pack.Match(text) {
			out = append(out, Finding{Kind: Lexicon, Entry: h.Entry.ID})
		}
	}
	sorted := out[:0:0]
	for _, k := range Kinds {
		for _, f := range out {
			if f.Kind == k {
				sorted = append(sorted, f)
			}
		}
	}
	return sorted
}

func digitRunsRef(folded string) []string {
	var runs []string
	var groups []string
	flush := func() {
		if len(groups) > 1 {
			ok := true
			for _, g := range groups {
				if len(g) < 3 || len(g) > 6 {
					ok = false
				}
			}
			if ok {
				runs = append(runs, strings.Join(groups, ""))
			}
		}
		groups = groups[:0]
	}
	i := 0
	for i < len(folded) {
		c := folded[i]
		if c < '0' || c > '9' {
			if c != ' ' {
				flush()
			}
			i++
			continue
		}
		j := i
		for j < len(folded) && folded[j] >= '0' && folded[j] <= '9' {
			j++
		}
		run := folded[i:j]
		if j < len(folded) && folded[j] == 'x' {
			run = folded[i : j+1]
			j++
		}
		runs = append(runs, run)
		if i > 0 && folded[i-1] != ' ' {
			flush()
		}
		groups = append(groups, run)
		if j < len(folded) && folded[j] != ' ' {
			flush()
		}
		i = j
	}
	flush()
	return runs
}

// One Scanner, kept across values as a request's goroutine keeps it,
// finds what the reference finds in each: on the table's texts and on
// random mixtures of digits, groups, separators, full-width forms, e-mail
// and coordinate pieces and lexicon terms.
func TestScannerMatchesReference(t *testing.T) {
	pack := rules.Default()
	var sc Scanner
	texts := []string{"11010519491231002X", "客户身份证11010519491231002X，请核对", "卡号 6222 0212 3456 7894",
		"4111-1111-1111-1111", "138 1234 5678", "zhang＠example．com", "39.9087，116.3975", "4111111111111111 13812345678",
		"item-20931", "sports", "同性恋 religion 13812345678", ""}
	pieces := []string{"4111", "1111", "138", "1234", "5678", "6222", "0212", "3456", "7894", "110105", "19491231", "002", "x", "X",
		" ", "-", ".", ",", "，", "１", "３", "８", "@", "＠", "example.com", "39.9087", "116.3975", "a", "同性恋", "religion", "清真", "\xff"}
	rng := rand.New(rand.NewPCG(14, 1))
	found := 0
	for range 5000 {
		var b strings.Builder
		for range 1 + rng.IntN(10) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		texts = append(texts, b.String())
	}
	for _, s := range texts {
		got, want := sc.Scan(pack, s), scanRef(pack, s)
		if !slices.Equal(got, want) {
			t.Fatalf("Scanner.Scan(%q) = %v, reference %v", s, got, want)
		}
		if len(want) > 0 {
			found++
		}
	}
	if found < 1000 {
		t.Errorf("only %d of %d texts held anything: the comparison is too weak", found, len(texts))
	}
}

// A kept Scanner scans the ASCII values of an ordinary event (ids,
// categories, prices written as text) without allocating: ingest scans
// every string value of every event. Other text still allocates in the
// Unicode passes of rules.Fold. Clear leaves nothing of the last value in
// its memory.
func TestScannerAllocs(t *testing.T) {
	pack := rules.Default()
	var sc Scanner
	sc.Scan(pack, "卡号 6222 0212 3456 7894 and a longer warm-up value zhang@example.com 39.9087,116.3975")
	for _, v := range []string{"item-20931", "sports", "sku 2093 1234", "Sports & Outdoors", "www.example.com"} {
		if n := testing.AllocsPerRun(100, func() { sc.Scan(pack, v) }); n > 0 {
			t.Errorf("Scan(%q): %v allocations, want none", v, n)
		}
	}
	sc.Scan(pack, "13812345678")
	sc.Clear()
	for _, b := range [][]byte{sc.folded[:cap(sc.folded)], sc.nfkc[:cap(sc.nfkc)], sc.joined[:cap(sc.joined)]} {
		if slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
			t.Errorf("Clear left bytes of the last value: %q", b)
		}
	}
}
