package rules

import (
	"bytes"
	"slices"
	"strings"
)

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
	p.automata()
}

// automata builds the automata that find p.terms.
func (p *Pack) automata() {
	p.anywhereTerm, p.wordTerm = nil, nil
	var anywhere, words []string
	for i, t := range p.terms {
		if t.word {
			words = append(words, t.norm)
			p.wordTerm = append(p.wordTerm, int32(i))
		} else {
			anywhere = append(anywhere, t.norm)
			p.anywhereTerm = append(p.anywhereTerm, int32(i))
		}
	}
	p.anywhere, p.words = newAutomaton(anywhere), newAutomaton(words)
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
//
// The terms are found by two automata built when the pack is opened, one
// over the compact text for Chinese and pinyin terms and one over the
// words run together for English terms, so a text costs its length plus
// its hits whatever the size of the lexicon.
func (p *Pack) Match(text string) []Hit {
	var sc Scratch
	return p.MatchScratch(&sc, text)
}

// Scratch is the memory MatchScratch works in, kept between calls so that
// matching a value allocates nothing unless something is found (a request
// of a thousand events scans every string value). One goroutine uses it at
// a time; the zero value is ready. It holds the last text's folded forms:
// Clear it before handing it on or keeping it past the values it saw.
type Scratch struct {
	folded, compact, joined []byte
	bound                   []uint8
	found                   []int32
}

// Clear zeroes what the scratch holds of the last text, keeping its memory.
func (sc *Scratch) Clear() {
	clear(sc.folded[:cap(sc.folded)])
	clear(sc.compact[:cap(sc.compact)])
	clear(sc.joined[:cap(sc.joined)])
	clear(sc.bound[:cap(sc.bound)])
	sc.folded, sc.compact, sc.joined, sc.bound, sc.found = sc.folded[:0], sc.compact[:0], sc.joined[:0], sc.bound[:0], sc.found[:0]
}

// MatchScratch is Match working in sc's memory. Only the hits it returns
// are new; they do not refer to sc.
func (p *Pack) MatchScratch(sc *Scratch, text string) []Hit {
	sc.folded = AppendFold(sc.folded[:0], text)
	return p.match(sc)
}

// MatchFolded is MatchScratch for a text already folded (AppendFold), for
// a caller that folds the text for its own reasons too.
func (p *Pack) MatchFolded(sc *Scratch, folded []byte) []Hit {
	sc.folded = append(sc.folded[:0], folded...)
	return p.match(sc)
}

// match finds the terms in sc.folded.
func (p *Pack) match(sc *Scratch) []Hit {
	for _, a := range p.allow {
		if a != "" && bytes.Contains(sc.folded, []byte(a)) {
			sc.folded = bytes.ReplaceAll(sc.folded, []byte(a), []byte(" "))
		}
	}
	sc.compact = appendCompact(sc.compact[:0], sc.folded)
	for _, a := range p.allow {
		if a != "" && bytes.Contains(sc.compact, []byte(a)) {
			sc.compact = bytes.ReplaceAll(sc.compact, []byte(a), nil)
		}
	}
	if p.anywhere == nil {
		return nil // a pack not opened has no terms
	}
	found := sc.found[:0]
	p.anywhere.find(sc.compact, func(t int32, _ int) bool {
		found = append(found, p.anywhereTerm[t])
		return true
	})
	if p.wordTerm != nil {
		found = p.findWords(sc, found)
	}
	sc.found = found
	if len(found) == 0 {
		return nil
	}
	// Terms are in lexicon order, an entry's spellings together: the
	// first spelling found of each entry names it, as the search per term
	// did.
	slices.Sort(found)
	var hits []Hit
	var last *Entry
	for i, t := range found {
		if i > 0 && found[i-1] == t {
			continue
		}
		e := p.terms[t].entry
		if e == last || slices.ContainsFunc(hits, func(h Hit) bool { return h.Entry == e }) {
			continue
		}
		last = e
		hits = append(hits, Hit{Entry: e, Term: p.terms[t].text})
	}
	return hits
}

// findWords appends to found the English terms that appear in sc.folded
// as whole words (wordHit's rule): the term, its spaces removed, occurs in
// the words run together starting where a word starts, and ends where a
// word ends or is followed by "s" or "es" that end one. Words are what
// spaces separate: folding leaves no other separator.
func (p *Pack) findWords(sc *Scratch, found []int32) []int32 {
	joined := sc.joined[:0]
	// bound[i] says whether a word starts (1) or ends (2) at offset i.
	bound := append(sc.bound[:0], 0)
	in := false
	for _, c := range sc.folded {
		if c == ' ' {
			in = false
			continue
		}
		if !in {
			bound[len(joined)] |= 1
			in = true
		}
		joined = append(joined, c)
		bound = append(bound, 0)
	}
	sc.joined, sc.bound = joined, bound
	n := len(joined)
	if n == 0 {
		return found
	}
	// A word ends where the next starts, and at the end.
	for i := 1; i < n; i++ {
		if bound[i]&1 != 0 {
			bound[i] |= 2
		}
	}
	bound[n] |= 2
	j := joined
	p.words.find(j, func(t int32, start int) bool {
		if bound[start]&1 == 0 {
			return true
		}
		end := start + p.words.length[t]
		if bound[end]&2 != 0 ||
			end+1 <= n && j[end] == 's' && bound[end+1]&2 != 0 ||
			end+2 <= n && string(j[end:end+2]) == "es" && bound[end+2]&2 != 0 {
			found = append(found, p.wordTerm[t])
		}
		return true
	})
	return found
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
