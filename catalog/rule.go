package catalog

import (
	"unicode"
	"unicode/utf8"
)

// ruleRead is something a label rule reads: a profile field used as a
// variable, or an event type, field or window named in an aggregate call.
type ruleRead struct {
	kind string // "variable", "event", "field", "window"
	name string
	// event is the event type a field argument belongs to.
	event string
}

// aggregates gives, per aggregate function of the label engine, the argument
// positions of the event type, field and window for each accepted arity.
var aggregates = map[string]map[int][3]int{
	"count":     {2: {0, -1, 1}, 4: {0, 2, 1}},
	"sum":       {3: {0, 1, 2}},
	"mean":      {3: {0, 1, 2}},
	"min":       {3: {0, 1, 2}},
	"max":       {3: {0, 1, 2}},
	"distinct":  {3: {0, 1, 2}},
	"monetary":  {3: {0, 1, 2}},
	"recency":   {1: {0, -1, -1}},
	"frequency": {2: {0, -1, 1}},
}

type token struct {
	kind byte // 'i' identifier, 's' string literal, 'p' punctuation, 'n' number
	text string
}

// ruleReads lists what a CEL rule reads, as far as can be told without the
// label engine's type environment: identifiers that may be fields, and the
// literal arguments of aggregate calls. The label engine's LabelCheck
// compiles the rule in full; this pass gives line-accurate problems for the
// declarations a rule depends on (invariant 1).
func ruleReads(rule string) []ruleRead {
	toks := tokenize(rule)
	var out []ruleRead
	for i, t := range toks {
		if t.kind != 'i' || (i > 0 && toks[i-1].text == ".") {
			continue
		}
		if i+1 < len(toks) && toks[i+1].text == "(" {
			if shapes, ok := aggregates[t.text]; ok {
				args := callArgs(toks[i+2:])
				if pos, ok := shapes[len(args)]; ok {
					out = append(out, aggregateReads(args, pos)...)
				}
			}
			continue
		}
		out = append(out, ruleRead{kind: "variable", name: t.text})
	}
	return out
}

func aggregateReads(args [][]token, pos [3]int) []ruleRead {
	literal := func(i int) (string, bool) {
		if i < 0 || len(args[i]) != 1 || args[i][0].kind != 's' {
			return "", false
		}
		return args[i][0].text, true
	}
	var out []ruleRead
	ev, evOK := literal(pos[0])
	if evOK {
		out = append(out, ruleRead{kind: "event", name: ev})
	}
	if f, ok := literal(pos[1]); ok {
		r := ruleRead{kind: "field", name: f}
		if evOK {
			r.event = ev
		}
		out = append(out, r)
	}
	if w, ok := literal(pos[2]); ok {
		out = append(out, ruleRead{kind: "window", name: w})
	}
	return out
}

// callArgs splits the tokens after "(" into top-level arguments up to the
// matching ")".
func callArgs(toks []token) [][]token {
	var args [][]token
	var cur []token
	depth := 0
	for _, t := range toks {
		switch t.text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			if depth == 0 {
				if len(cur) > 0 || len(args) > 0 {
					args = append(args, cur)
				}
				return args
			}
			depth--
		case ",":
			if depth == 0 && t.kind == 'p' {
				args = append(args, cur)
				cur = nil
				continue
			}
		}
		cur = append(cur, t)
	}
	return nil // unbalanced: the label engine's compiler reports it
}

func tokenize(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += n
		case r == '"' || r == '\'':
			text, end := stringLiteral(s, i, false)
			toks = append(toks, token{'s', text})
			i = end
		case r == '_' || unicode.IsLetter(r):
			j := i
			for j < len(s) {
				r, n := utf8.DecodeRuneInString(s[j:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				j += n
			}
			word := s[i:j]
			if (word == "r" || word == "R") && j < len(s) && (s[j] == '"' || s[j] == '\'') {
				text, end := stringLiteral(s, j, true)
				toks = append(toks, token{'s', text})
				i = end
				continue
			}
			toks = append(toks, token{'i', word})
			i = j
		case unicode.IsDigit(r):
			j := i
			for j < len(s) && (s[j] == '.' || s[j] == '_' || s[j] < utf8.RuneSelf && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])))) {
				j++
			}
			toks = append(toks, token{'n', s[i:j]})
			i = j
		default:
			toks = append(toks, token{'p', string(r)})
			i += n
		}
	}
	return toks
}

// stringLiteral reads the quoted literal starting at s[i] and returns its
// text (escapes kept as written) and the index after it.
func stringLiteral(s string, i int, raw bool) (string, int) {
	q := s[i : i+1]
	if len(s) >= i+3 && s[i:i+3] == q+q+q {
		q = s[i : i+3]
	}
	start := i + len(q)
	for j := start; j < len(s); j++ {
		if s[j] == '\\' && !raw {
			j++
			continue
		}
		if len(s)-j >= len(q) && s[j:j+len(q)] == q {
			return s[start:j], j + len(q)
		}
	}
	return s[start:], len(s)
}
