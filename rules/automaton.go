package rules

import "sort"

// automaton finds every occurrence of a set of byte strings in one pass
// over a text (Aho–Corasick), so that matching costs the length of the
// text plus the hits, not the number of terms. Terms are UTF-8 and so is
// the text; a valid UTF-8 term found at any byte offset of valid UTF-8
// text starts on a character boundary, so byte matching finds exactly
// what strings.Contains finds.
type automaton struct {
	// root is the root's full transition table: most bytes of a text
	// leave the root, and a table there saves following failure links.
	root [256]int32
	// States 1.. have sparse edges, sorted by byte, in one slice each.
	edges [][]edge
	fail  []int32
	// out lists the terms ending at a state; dict is the nearest state on
	// the failure chain whose out is not empty (0 if none), so that all
	// terms ending at a position are reached without walking every link.
	out  [][]int32
	dict []int32
	// length of each term, by term index.
	length []int
}

type edge struct {
	b  byte
	to int32
}

// newAutomaton builds the automaton for terms; term i is reported as i.
// Empty terms are never reported.
func newAutomaton(terms []string) *automaton {
	a := &automaton{edges: [][]edge{nil}, fail: []int32{0}, out: [][]int32{nil}, dict: []int32{0}, length: make([]int, len(terms))}
	for i, t := range terms {
		a.length[i] = len(t)
		if t == "" {
			continue
		}
		s := int32(0)
		for j := 0; j < len(t); j++ {
			next := a.step(s, t[j])
			if next < 0 {
				next = int32(len(a.edges))
				a.edges = append(a.edges, nil)
				a.fail = append(a.fail, 0)
				a.out = append(a.out, nil)
				a.dict = append(a.dict, 0)
				es := a.edges[s]
				k := sort.Search(len(es), func(k int) bool { return es[k].b >= t[j] })
				es = append(es, edge{})
				copy(es[k+1:], es[k:])
				es[k] = edge{t[j], next}
				a.edges[s] = es
			}
			s = next
		}
		a.out[s] = append(a.out[s], int32(i))
	}
	// Failure links, breadth first: a state's failure is the longest
	// proper suffix of its string that is a prefix of some term.
	queue := make([]int32, 0, len(a.edges))
	for _, e := range a.edges[0] {
		queue = append(queue, e.to)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, e := range a.edges[s] {
			f := a.fail[s]
			for f != 0 && a.step(f, e.b) < 0 {
				f = a.fail[f]
			}
			if n := a.step(f, e.b); n >= 0 && n != e.to {
				a.fail[e.to] = n
			}
			if ff := a.fail[e.to]; len(a.out[ff]) > 0 {
				a.dict[e.to] = ff
			} else {
				a.dict[e.to] = a.dict[ff]
			}
			queue = append(queue, e.to)
		}
	}
	for b := range 256 {
		a.root[b] = max(a.step(0, byte(b)), 0)
	}
	return a
}

// step is the goto function: the state reached from s on b, or -1.
func (a *automaton) step(s int32, b byte) int32 {
	es := a.edges[s]
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].b < b {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(es) && es[lo].b == b {
		return es[lo].to
	}
	return -1
}

// find calls hit(term, start) for every occurrence of a term in text,
// start being its byte offset; hit returns false to stop early.
func (a *automaton) find(text []byte, hit func(term int32, start int) bool) {
	s := int32(0)
	for i := 0; i < len(text); i++ {
		b := text[i]
		for {
			if s == 0 {
				s = a.root[b]
				break
			}
			if n := a.step(s, b); n >= 0 {
				s = n
				break
			}
			s = a.fail[s]
		}
		for o := s; o != 0; o = a.dict[o] {
			for _, t := range a.out[o] {
				if !hit(t, i+1-a.length[t]) {
					return
				}
			}
		}
	}
}
