package rules

import "strings"

// term is one spelling of a lexicon entry in normal form.
type term struct {
	entry *Entry
	// text is the spelling as the pack writes it, for messages.
	text string
	// norm is the compact form for Chinese and pinyin, the folded form
	// (words separated by single spaces) for English.
	norm string
	word bool
}

func (p *Pack) compile() {
	add := func(e *Entry, list []string, word bool) {
		for _, s := range list {
			t := term{entry: e, text: s, word: word}
			if word {
				t.norm = strings.ReplaceAll(Fold(s), " ", "")
			} else {
				t.norm = Normalize(s)
			}
			if t.norm != "" {
				p.terms = append(p.terms, t)
			}
		}
	}
	for i := range p.Lexicon {
		e := &p.Lexicon[i]
		add(e, e.ZH, false)
		add(e, e.ZHHant, false)
		add(e, e.Pinyin, false)
		for _, s := range e.EN {
			// An English term with non-ASCII letters matches like Chinese.
			add(e, []string{s}, ascii(s))
		}
	}
	for _, a := range p.Allow {
		p.allow = append(p.allow, Fold(a), Normalize(a))
	}
}

// Hit is a lexicon entry found in a text.
type Hit struct {
	Entry *Entry
	// Term is the spelling of the pack that matched.
	Term string
}

// Match returns the lexicon entries found in text after normalisation
// (NFKC, traditional → simplified, case folding, tone marks and numbers
// dropped, separators removed), each entry once, in lexicon order. Chinese
// and pinyin terms match anywhere; English terms match whole words, however
// separators split them.
func (p *Pack) Match(text string) []Hit {
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

// Has reports whether any of hits is the entry id.
func Has(hits []Hit, id string) bool {
	for _, h := range hits {
		if h.Entry.ID == id {
			return true
		}
	}
	return false
}

// Contains reports whether text contains term under the same normalisation
// as Match: whole words for an ASCII term, anywhere for any other.
func Contains(text, term string) bool {
	if ascii(term) {
		t := Fold(term)
		return t != "" && wordHit(words(Fold(text)), strings.ReplaceAll(t, " ", ""))
	}
	t := Normalize(term)
	return t != "" && strings.Contains(Normalize(text), t)
}
