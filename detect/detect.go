package detect

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/portrait-dev/portrait/rules"
)

// Kinds of finding.
const (
	ResidentID  = "resident_id"
	BankCard    = "bank_card"
	Mobile      = "mobile"
	Email       = "email"
	Coordinates = "coordinates"
	Lexicon     = "lexicon"
)

// Kinds lists every kind, for counters that start at zero.
var Kinds = []string{ResidentID, BankCard, Mobile, Email, Coordinates, Lexicon}

// Finding is one kind of personal data found in a value. It holds no part
// of the value.
type Finding struct {
	Kind string
	// Entry is the lexicon entry id, for Kind Lexicon.
	Entry string
}

// High reports whether the finding is certain enough to refuse on its own:
// a checksum passed (resident ID, bank card).
func (f Finding) High() bool { return f.Kind == ResidentID || f.Kind == BankCard }

// What names the finding for a message, without the value.
func (f Finding) What() string {
	switch f.Kind {
	case ResidentID:
		return "a resident ID number (居民身份证号码)"
	case BankCard:
		return "a bank card number (银行卡号)"
	case Mobile:
		return "a mobile number (手机号码)"
	case Email:
		return "an e-mail address (电子邮箱)"
	case Coordinates:
		return "precise coordinates (精确坐标)"
	case Lexicon:
		return "a sensitive term of the rule pack (lexicon entry " + f.Entry + ")"
	}
	return f.Kind
}

// Scan returns what text holds, each kind (each lexicon entry) once, in the
// order of Kinds. pack may be nil, and then no lexicon terms are looked for.
func Scan(pack *rules.Pack, text string) []Finding {
	var s Scanner
	return s.Scan(pack, text)
}

// Scanner is Scan with its working memory kept between calls, so that
// scanning a value allocates nothing unless something is found: ingest
// scans every string value of every event. One goroutine uses it at a
// time; the zero value is ready. It holds the last value's folded forms,
// personal data: Clear it before it outlives the values it scanned.
type Scanner struct {
	folded []byte
	nfkc   []byte
	joined []byte // digit groups joined ("6222 0212 …" → "62220212…")
	runs   [][]byte
	lex    rules.Scratch
}

// Clear zeroes what the scanner holds of the last value, keeping its
// memory.
func (s *Scanner) Clear() {
	clear(s.folded[:cap(s.folded)])
	clear(s.nfkc[:cap(s.nfkc)])
	clear(s.joined[:cap(s.joined)])
	clear(s.runs[:cap(s.runs)])
	s.folded, s.nfkc, s.joined, s.runs = s.folded[:0], s.nfkc[:0], s.joined[:0], s.runs[:0]
	s.lex.Clear()
}

// Scan is the package's Scan in s's memory. Only the findings it returns
// are new; they do not refer to s.
func (s *Scanner) Scan(pack *rules.Pack, text string) []Finding {
	var out []Finding
	has := func(kind string) bool {
		for _, f := range out {
			if f.Kind == kind {
				return true
			}
		}
		return false
	}
	add := func(kind string) {
		if !has(kind) {
			out = append(out, Finding{Kind: kind})
		}
	}
	ascii := isASCII(text)
	// Folding maps other digits (full-width, circled) to ASCII ones; ASCII
	// text without a digit has no run to look at.
	s.runs = s.runs[:0]
	folded := false
	if !ascii || strings.IndexAny(text, "0123456789") >= 0 {
		s.folded, folded = rules.AppendFold(s.folded[:0], text), true
		s.digitRuns()
	}
	for _, run := range s.runs {
		switch n := len(run); {
		case n == 18 && validID(run):
			add(ResidentID)
		case n >= 13 && n <= 19 && run[n-1] != 'x' && luhn(run):
			add(BankCard)
		case n == 11 && run[n-1] != 'x' && run[0] == '1' && run[1] >= '3' && run[1] <= '9':
			add(Mobile)
		}
	}
	// ASCII is its own NFKC form; an address needs an @ and coordinates
	// a decimal point (after NFKC, which maps full-width ＠ and ． to
	// them), so most values skip both expressions.
	var nfkc []byte
	if ascii {
		if strings.IndexByte(text, '@') >= 0 || strings.IndexByte(text, '.') >= 0 {
			s.nfkc = append(s.nfkc[:0], text...)
			nfkc = s.nfkc
		}
	} else {
		s.nfkc = norm.NFKC.AppendString(s.nfkc[:0], text)
		nfkc = s.nfkc
	}
	if bytes.IndexByte(nfkc, '@') >= 0 && emailRE.Match(nfkc) {
		add(Email)
	}
	if bytes.IndexByte(nfkc, '.') >= 0 {
		for _, m := range coordRE.FindAllSubmatch(nfkc, -1) {
			lat, err1 := strconv.ParseFloat(string(m[1]), 64)
			lon, err2 := strconv.ParseFloat(string(m[2]), 64)
			if err1 == nil && err2 == nil && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 {
				add(Coordinates)
				break
			}
		}
	}
	if pack != nil {
		var hits []rules.Hit
		if folded { // the lexicon is matched after the same fold
			hits = pack.MatchFolded(&s.lex, s.folded)
		} else {
			hits = pack.MatchScratch(&s.lex, text)
		}
		for _, h := range hits {
			out = append(out, Finding{Kind: Lexicon, Entry: h.Entry.ID})
		}
	}
	if len(out) < 2 {
		return out
	}
	// Sort by the order of Kinds, so messages and counts are stable.
	sorted := make([]Finding, 0, len(out))
	for _, k := range Kinds {
		for _, f := range out {
			if f.Kind == k {
				sorted = append(sorted, f)
			}
		}
	}
	return sorted
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`)
	// A latitude and a longitude, each with at least four decimals (about
	// 11 m), separated by a comma or spaces, not inside longer numbers.
	coordRE = regexp.MustCompile(`(?:^|[^0-9.])(-?\d{1,2}\.\d{4,})\s*[,;/ ]\s*(-?\d{1,3}\.\d{4,})(?:[^0-9.]|$)`)
)

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// digitRuns sets s.runs to the maximal runs of ASCII digits in s.folded,
// and the runs of groups of three to six digits split by single
// separators ("6222 0212 3456 7890", as cards are written), joined. A run
// of 17 digits followed by "x" keeps its x (the ID check character). A
// number inside a longer run is not a run of its own. The runs are slices
// of s.folded and of s.joined, which is sized up front so that appending
// a joined run never moves the ones before it.
func (s *Scanner) digitRuns() {
	folded := s.folded
	if cap(s.joined) < len(folded) {
		s.joined = make([]byte, 0, len(folded))
	}
	s.joined = s.joined[:0]
	runs := s.runs[:0]
	first, count := 0, 0 // the current group: runs[first:first+count]
	flush := func() {
		if count > 1 {
			ok := true
			for _, g := range runs[first : first+count] {
				if len(g) < 3 || len(g) > 6 {
					ok = false
				}
			}
			if ok {
				lo := len(s.joined)
				for _, g := range runs[first : first+count] {
					s.joined = append(s.joined, g...)
				}
				runs = append(runs, s.joined[lo:len(s.joined):len(s.joined)])
			}
		}
		first, count = len(runs), 0
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
		run := folded[i:j:j]
		if j < len(folded) && folded[j] == 'x' {
			run = folded[i : j+1 : j+1]
			j++
		}
		// Digits stuck to letters (other than a space) end a group.
		if i > 0 && folded[i-1] != ' ' {
			flush()
		}
		if count == 0 {
			first = len(runs)
		}
		runs = append(runs, run)
		count++
		if j < len(folded) && folded[j] != ' ' {
			flush()
		}
		i = j
	}
	flush()
	s.runs = runs
}

// validID reports whether s (18 characters, the last a digit or x) is a
// resident ID number of GB 11643: a birth date that exists and is not in
// the future, and the ISO 7064 MOD 11-2 check character.
func validID(s []byte) bool {
	if len(s) != 18 {
		return false
	}
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		sum += int(s[i]-'0') * weights[i]
	}
	want := "10x98765432"[sum%11]
	if s[17] != want {
		return false
	}
	birth, err := time.Parse("20060102", string(s[6:14]))
	return err == nil && birth.Year() >= 1900 && !birth.After(time.Now())
}

// luhn reports whether the digits of s pass the Luhn check.
func luhn(s []byte) bool {
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
