package rules

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// matchRef is Match as it was before the automata: a substring search per
// term. It is kept, verbatim, as the reference the automata are held to.
func (p *Pack) matchRef(text string) []Hit {
	folded := Fold(text)
	for _, a := range p.allow {
		if a != "" {
			folded = strings.ReplaceAll(folded, a, " ")
		}
	}
	compact := Compact(folded)
	for _, a := range p.allow {
		if a != "" {
			compact = strings.ReplaceAll(compact, a, "")
		}
	}
	ws := words(folded)
	var hits []Hit
	seen := map[*Entry]bool{}
	for _, t := range p.terms {
		if seen[t.entry] {
			continue
		}
		found := false
		if t.word {
			found = wordHit(ws, t.norm)
		} else {
			found = strings.Contains(compact, t.norm)
		}
		if found {
			seen[t.entry] = true
			hits = append(hits, Hit{Entry: t.entry, Term: t.text})
		}
	}
	return hits
}

// compactRef is Compact as it was, a rune at a time, kept as the
// reference the byte-wise Compact is held to.
func compactRef(folded string) string {
	var b strings.Builder
	var prev rune
	for _, r := range folded {
		switch {
		case r == ' ':
			continue
		case r >= '1' && r <= '5' && prev >= 'a' && prev <= 'z':
			continue
		}
		b.WriteRune(r)
		prev = r
	}
	return b.String()
}

// Matching an ASCII value in a kept scratch allocates nothing when
// nothing is found, and only the hits when something is: ingest matches
// every string value of every event.
func TestMatchScratchAllocs(t *testing.T) {
	p := Default()
	var sc Scratch
	p.MatchScratch(&sc, "warm the scratch up with a long enough value 1234567890")
	for _, tc := range []struct {
		text string
		max  float64
	}{{"item-20931", 0}, {"Sports & Outdoors", 0}, {"religion fans", 1}} {
		if n := testing.AllocsPerRun(100, func() { p.MatchScratch(&sc, tc.text) }); n > tc.max {
			t.Errorf("MatchScratch(%q): %v allocations, want at most %v", tc.text, n, tc.max)
		}
	}
	sc.Clear()
	if len(sc.folded) != 0 || slices.ContainsFunc(sc.folded[:cap(sc.folded)], func(c byte) bool { return c != 0 }) {
		t.Errorf("Clear left the last text's folded bytes: %q", sc.folded[:cap(sc.folded)])
	}
}

func sameHits(a, b []Hit) bool {
	return slices.EqualFunc(a, b, func(x, y Hit) bool { return x.Entry == y.Entry && x.Term == y.Term })
}

// matchTexts are real inputs: the pack's own spellings and allowed words,
// the label and item texts of the tests, in both scripts.
func matchTexts(p *Pack) []string {
	texts := []string{
		"近30天浏览運動類商品至少5次 Viewed sports items at least 5 times in the last 30 days",
		"低学历人群", "农村户口用户", "清真饮食人群", "同性戀", "少数民 族", "宗.教爱好者", "ＲＥＬＩＧＩＯＮ fans",
		"re.li.gion", "zong jiao xin tu", "tóng xìng liàn", "Gay-friendly", "Gaylord hotels", "archive readers",
		"民族风服饰", "ethnic wear", "Casinos", "potential   offender", "面向14岁以下玩家", "对高消费老用户上浮报价",
		"halal 乌鲁木齐", "sports fan", "religions religiones religiouses", "gays gayes gay", "",
	}
	for _, t := range p.terms {
		texts = append(texts, t.text, "x"+t.text+"s", t.text+"es "+t.text, strings.ToUpper(t.text))
	}
	texts = append(texts, p.Allow...)
	return texts
}

// The automata find what the search per term found: the same entries, in
// the same order, named by the same spelling — on the pack's own terms,
// on texts made of them, and on random mixtures of terms, fragments,
// separators and noise.
func TestMatchAutomatonMatchesReference(t *testing.T) {
	p := Default()
	texts := matchTexts(p)
	for _, s := range texts {
		if got, want := p.Match(s), p.matchRef(s); !sameHits(got, want) {
			t.Errorf("Match(%q) = %v, reference %v", s, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(14, 4))
	pieces := []string{" ", ".", "-", "s", "es", "1", "3", "Ａ", "運", "动", "gay", "lord", "re", "li", "gion", "zong", "jiao", "ü", "ó", "\u200b", "😀", "\xff"}
	for _, t := range p.terms {
		pieces = append(pieces, t.text)
		if r := []rune(t.text); len(r) > 1 {
			pieces = append(pieces, string(r[:len(r)/2]), string(r[len(r)/2:]))
		}
	}
	hit := 0
	var sc Scratch
	for range 3000 {
		var b strings.Builder
		for range 1 + rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
			if rng.IntN(3) == 0 {
				b.WriteString(pieces[rng.IntN(12)])
			}
		}
		s := b.String()
		got, want := p.Match(s), p.matchRef(s)
		if !sameHits(got, want) {
			t.Fatalf("Match(%q) = %v, reference %v", s, got, want)
		}
		// One scratch for every text, as a request's goroutine keeps it:
		// nothing of the texts before may change what this one finds.
		if got := p.MatchScratch(&sc, s); !sameHits(got, want) {
			t.Fatalf("MatchScratch(%q) after other texts = %v, reference %v", s, got, want)
		}
		if got := p.MatchFolded(&sc, AppendFold(nil, s)); !sameHits(got, want) {
			t.Fatalf("MatchFolded(%q) = %v, reference %v", s, got, want)
		}
		if got, want := Compact(Fold(s)), compactRef(Fold(s)); got != want {
			t.Fatalf("Compact(Fold(%q)) = %q, by runes %q", s, got, want)
		}
		if len(want) > 0 {
			hit++
		}
	}
	if hit < 1000 {
		t.Errorf("only %d of 3000 random texts hit the lexicon: the comparison is too weak", hit)
	}
}

// Any text gets the reference's hits.
func FuzzMatchAutomaton(f *testing.F) {
	p := Default()
	for _, s := range matchTexts(p)[:40] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := p.Match(s), p.matchRef(s); !sameHits(got, want) {
			t.Errorf("Match(%q) = %v, reference %v", s, got, want)
		}
	})
}

// The cost of a match does not grow with the lexicon: 30 times the terms
// (each entry's spellings repeated with a suffix) against the default.
func BenchmarkMatchTerms(b *testing.B) {
	const text = "近30天浏览運動類商品至少5次 Viewed sports items at least 5 times in the last 30 days"
	big := *Default()
	big.terms = nil
	for k := range 30 {
		for _, t := range Default().terms {
			t.norm += strings.Repeat("q", k)
			big.terms = append(big.terms, t)
		}
	}
	big.automata()
	for _, c := range []struct {
		name string
		p    *Pack
		ref  bool
	}{{"default", Default(), false}, {"x30", &big, false}, {"default-reference", Default(), true}, {"x30-reference", &big, true}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportMetric(float64(len(c.p.terms)), "terms")
			for b.Loop() {
				if c.ref {
					c.p.matchRef(text)
				} else {
					c.p.Match(text)
				}
			}
		})
	}
}

// Fold's ASCII path gives what the Unicode passes give.
func TestFoldASCII(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(128))
		}
		if got, want := foldASCII(string(b)), foldUnicode(string(b)); got != want {
			t.Fatalf("foldASCII(%q) = %q, Unicode passes %q", b, got, want)
		}
	}
}

func FuzzFoldASCII(f *testing.F) {
	f.Add("Re.Li-GION 42 fans")
	f.Fuzz(func(t *testing.T, s string) {
		if !ascii(s) {
			return
		}
		if got, want := foldASCII(s), foldUnicode(s); got != want {
			t.Errorf("foldASCII(%q) = %q, Unicode passes %q", s, got, want)
		}
	})
}
