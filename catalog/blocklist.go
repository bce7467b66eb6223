package catalog

import (
	_ "embed"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

//go:embed blocklist.txt
var blocklistTxt string

// Blocklist categories with a meaning of their own (see blocklist.txt).
const (
	blockProtected = "protected"
	blockCriminal  = "criminal_risk"
	blockEmotion   = "emotion"
	blockSetting   = "setting"
	blockTrait     = "trait"
	blockAllow     = "allow"
	// blockExtra marks a term the catalog's blocklist: key adds.
	blockExtra = "catalog blocklist"
)

type term struct {
	text     string // lower case
	category string
	word     bool // match whole words only
}

var embedded struct {
	once  sync.Once
	terms []term
	allow []string
}

// Blocklist returns the embedded blocklist as category → terms.
func Blocklist() map[string][]string {
	embedded.once.Do(loadBlocklist)
	out := map[string][]string{}
	for _, t := range embedded.terms {
		out[t.category] = append(out[t.category], t.text)
	}
	out[blockAllow] = append([]string(nil), embedded.allow...)
	return out
}

func loadBlocklist() {
	for _, line := range strings.Split(blocklistTxt, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cat, text, ok := strings.Cut(line, ":")
		if !ok {
			panic("catalog: embedded blocklist.txt: line without category: " + line)
		}
		cat, text = strings.TrimSpace(cat), strings.ToLower(strings.TrimSpace(text))
		if cat == blockAllow {
			embedded.allow = append(embedded.allow, text)
			continue
		}
		embedded.terms = append(embedded.terms, newTerm(text, cat))
	}
}

func newTerm(text, category string) term {
	text = strings.ToLower(strings.TrimSpace(text))
	word := true
	for _, r := range text {
		if r > unicode.MaxASCII {
			word = false
		}
	}
	return term{text: text, category: category, word: word}
}

// blockHits returns the blocklist terms found in text, the embedded ones and
// extra, in list order.
func blockHits(text string, extra []string) []term {
	embedded.once.Do(loadBlocklist)
	text = strings.ToLower(text)
	for _, a := range embedded.allow {
		text = strings.ReplaceAll(text, a, " ")
	}
	var hits []term
	for _, t := range embedded.terms {
		if t.text != "" && t.found(text) {
			hits = append(hits, t)
		}
	}
	for _, e := range extra {
		if t := newTerm(e, blockExtra); t.text != "" && t.found(text) {
			hits = append(hits, t)
		}
	}
	return hits
}

func (t term) found(text string) bool {
	if !t.word {
		return strings.Contains(text, t.text)
	}
	for from := 0; from < len(text); {
		i := strings.Index(text[from:], t.text)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(t.text)
		if boundaryBefore(text, start) && boundaryAfter(text, end) {
			return true
		}
		from = start + 1
	}
	return false
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func boundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !isWordRune(r) || r > unicode.MaxASCII
}

// boundaryAfter allows a plural "s" or "es" before the word ends.
func boundaryAfter(s string, i int) bool {
	rest := s[i:]
	for _, suffix := range []string{"", "s", "es"} {
		if strings.HasPrefix(rest, suffix) {
			r, n := utf8.DecodeRuneInString(rest[len(suffix):])
			if n == 0 || !isWordRune(r) || r > unicode.MaxASCII {
				return true
			}
		}
	}
	return false
}
