package rules

import (
	"embed"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

//go:embed opencc/*.txt
var openccFS embed.FS

// t2s maps a traditional or variant character to its simplified form.
var t2s struct {
	once sync.Once
	m    map[rune]rune
}

func loadT2S() {
	t2s.m = map[rune]rune{}
	read := func(name string, into map[rune]rune) {
		data, err := openccFS.ReadFile("opencc/" + name)
		if err != nil {
			panic("rules: embedded OpenCC table: " + err.Error())
		}
		for _, line := range strings.Split(string(data), "\n") {
			from, to, ok := strings.Cut(line, "\t")
			if !ok {
				continue
			}
			to, _, _ = strings.Cut(to, " ") // the first candidate is the usual one
			f, nf := utf8.DecodeRuneInString(from)
			t, nt := utf8.DecodeRuneInString(to)
			if nf != len(from) || nt == 0 || f == t {
				continue
			}
			into[f] = t
		}
	}
	variants := map[rune]rune{}
	read("TWVariantsRev.txt", variants)
	read("HKVariantsRev.txt", variants)
	read("TSCharacters.txt", t2s.m)
	for v, trad := range variants {
		if s, ok := t2s.m[trad]; ok {
			trad = s
		}
		if _, ok := t2s.m[v]; !ok {
			t2s.m[v] = trad
		}
	}
}

// Simplify folds traditional and Taiwan/Hong Kong variant characters into
// simplified ones, character by character (OpenCC's tables).
func Simplify(s string) string {
	t2s.once.Do(loadT2S)
	return strings.Map(func(r rune) rune {
		if s, ok := t2s.m[r]; ok {
			return s
		}
		return r
	}, s)
}

// Fold is the first half of normalisation: Unicode NFKC (full-width letters
// and digits become ASCII, compatibility ideographs their unified forms),
// traditional → simplified, case folding, and tone marks removed (NFD, drop
// combining marks, so "tóng" and "tong" agree and "ü" becomes "u").
// Separators are kept, as single spaces, so that English words keep their
// boundaries.
func Fold(s string) string {
	if ascii(s) {
		return foldASCII(s)
	}
	return foldUnicode(s)
}

// AppendFold appends Fold(s) to dst. For ASCII text, which most values
// are, it allocates nothing once dst has room.
func AppendFold(dst []byte, s string) []byte {
	if ascii(s) {
		return appendFoldASCII(dst, s)
	}
	return append(dst, foldUnicode(s)...)
}

// foldASCII is Fold for ASCII text, where NFKC, NFD and NFC change
// nothing, no character is traditional and none is a combining mark: only
// case folding and separators are left. Most values an event carries
// (ids, categories) are ASCII, and the Unicode passes were most of a
// match.
func foldASCII(s string) string { return string(appendFoldASCII(make([]byte, 0, len(s)), s)) }

func appendFoldASCII(b []byte, s string) []byte {
	start := len(b)
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			if space && len(b) > start {
				b = append(b, ' ')
			}
			space = false
			b = append(b, c)
		} else {
			space = true
		}
	}
	return b
}

func foldUnicode(s string) string {
	s = norm.NFKC.String(s)
	s = Simplify(s)
	s = strings.ToLower(s)
	var b strings.Builder
	space := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		default:
			// Spaces, dots, dashes, underscores, middle dots, zero-width
			// characters, emoji: all separate and nothing else.
			space = true
		}
	}
	return norm.NFC.String(b.String())
}

// Compact is the folded text with every separator removed and pinyin tone
// digits dropped ("tong2 xing4 lian4" → "tongxinglian"), for matching
// Chinese and pinyin terms that a space, a dot or a tone number would
// otherwise break.
func Compact(folded string) string {
	return string(appendCompact(make([]byte, 0, len(folded)), folded))
}

// appendCompact appends Compact(folded) to dst. It works a byte at a
// time: a space and a tone number are single bytes, and the character
// before a tone number is a pinyin letter only if its last byte is one.
func appendCompact[S ~string | ~[]byte](dst []byte, folded S) []byte {
	var prev byte
	for i := 0; i < len(folded); i++ {
		c := folded[i]
		switch {
		case c == ' ':
			continue
		case c >= '1' && c <= '5' && isLatin(prev):
			continue // a tone number after a pinyin syllable
		}
		dst = append(dst, c)
		prev = c
	}
	return dst
}

// Normalize returns the compact normal form of s: Compact(Fold(s)).
func Normalize(s string) string { return Compact(Fold(s)) }

func isLatin(r byte) bool { return r >= 'a' && r <= 'z' }

// words splits folded text into its words.
func words(folded string) []string { return strings.Fields(folded) }

// wordHit reports whether the English term (folded, its spaces removed)
// appears in ws as whole words, however the text splits it: the
// concatenation of consecutive words must equal the term with its spaces
// removed, optionally plus a plural "s" or "es". So "re.li.gion" and
// "sexual orientation" match, "Gaylord" does not match "gay", nor "archive"
// "hiv".
func wordHit(ws []string, term string) bool {
	want := term
	if want == "" {
		return false
	}
	for i := range ws {
		rest := want
		for _, w := range ws[i:] {
			if strings.HasPrefix(rest, w) {
				if rest = rest[len(w):]; rest == "" {
					return true
				}
				continue
			}
			if strings.HasPrefix(w, rest) {
				if suffix := w[len(rest):]; suffix == "s" || suffix == "es" {
					return true
				}
			}
			break
		}
	}
	return false
}

// ascii reports whether s is all ASCII, as English and pinyin terms are.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
