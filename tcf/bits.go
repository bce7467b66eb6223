package tcf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed consent string")

// maxString bounds the input: real TC strings with range-encoded vendor
// lists stay well under 10 kB; GPP strings carry a few of them.
const maxString = 64 << 10

// reader reads big-endian bit fields from a segment, six bits per
// base64url character. GPP segments are padded to 6 bits, not to bytes (the
// specification's first header example, "DBABM", is 30 bits), so the text
// is read character by character rather than with encoding/base64. The first read
// past the end records an error and every later read returns zero, so a
// decoder reads a whole layout and checks r.err once.
type reader struct {
	b    []byte // one 6-bit value per character
	pos  int    // in bits
	err  error
	what string
}

func decodeSegment(s, what string) (*reader, error) {
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, fmt.Errorf("%w: %s is empty", ErrMalformed, what)
	}
	b := make([]byte, len(s))
	for i := range len(s) {
		v := b64[s[i]]
		if v == 0 {
			return nil, fmt.Errorf("%w: %s is not base64url: %q at byte %d", ErrMalformed, what, s[i], i)
		}
		b[i] = v - 1
	}
	return &reader{b: b, what: what}, nil
}

// b64 maps a base64url character to its value plus one; 0 marks others.
var b64 = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i + 1)
	}
	return t
}()

func (r *reader) left() int { return len(r.b)*6 - r.pos }

func (r *reader) bit() bool {
	if r.err != nil {
		return false
	}
	if r.pos >= len(r.b)*6 {
		r.err = fmt.Errorf("%w: %s ends at bit %d, in the middle of a field", ErrMalformed, r.what, r.pos)
		return false
	}
	v := r.b[r.pos/6]>>(5-r.pos%6)&1 == 1
	r.pos++
	return v
}

// int reads an n-bit unsigned integer, n ≤ 36.
func (r *reader) int(n int) int {
	v := 0
	for range n {
		v <<= 1
		if r.bit() {
			v |= 1
		}
	}
	return v
}

// time reads a 36-bit count of deciseconds since the Unix epoch.
func (r *reader) time() time.Time {
	ds := int64(r.int(36))
	return time.UnixMilli(ds * 100).UTC()
}

// letters reads n 6-bit letters, A = 0 (ISO 639-1 language or ISO 3166 country).
func (r *reader) letters(n int) string {
	b := make([]byte, n)
	for i := range b {
		v := r.int(6)
		if v > 25 && r.err == nil {
			r.err = fmt.Errorf("%w: %s has a letter code %d outside A–Z at bit %d", ErrMalformed, r.what, v, r.pos-6)
		}
		b[i] = 'A' + byte(v)
	}
	return string(b)
}

// bitfield reads n bits; bit i (from 0) set means id i+1 is in the set.
func (r *reader) bitfield(n int) IDSet {
	s := newIDSet(n)
	for id := 1; id <= n; id++ {
		if r.bit() {
			s.add(id)
		}
	}
	return s
}

// fibonacci reads one Fibonacci-coded positive integer: bits weigh 1, 2, 3,
// 5, 8, … and the code ends at the first "11". Codes longer than 40 bits
// (values beyond 2^27) are refused: nothing in a GPP string is that large.
func (r *reader) fibonacci() int {
	v, a, b := 0, 1, 2 // a is the weight of the current bit, b the next
	prev := false
	for i := 0; ; i++ {
		cur := r.bit()
		if r.err != nil {
			return 0
		}
		if cur && prev {
			return v
		}
		if i >= 40 {
			r.err = fmt.Errorf("%w: %s has a Fibonacci code longer than 40 bits at bit %d", ErrMalformed, r.what, r.pos)
			return 0
		}
		if cur {
			v += a
		}
		prev = cur
		a, b = b, a+b
	}
}

// IDSet is a set of small positive ids (purposes, vendors, features) kept
// as a bitset, so a range "1–65535" costs 8 kB rather than 65535 ints.
type IDSet struct {
	words []uint64
	max   int
}

func newIDSet(max int) IDSet { return IDSet{words: make([]uint64, max/64+1), max: max} }

func (s *IDSet) add(id int) { s.words[id/64] |= 1 << (id % 64) }

// addRange adds lo..hi a word at a time, so a hostile string of 4095
// ranges each covering every vendor costs milliseconds, not seconds.
func (s *IDSet) addRange(lo, hi int) {
	for id := lo; id <= hi; {
		if id%64 == 0 && id+63 <= hi {
			s.words[id/64] = ^uint64(0)
			id += 64
			continue
		}
		s.add(id)
		id++
	}
}

// MarshalJSON writes the set as a list of ids.
func (s IDSet) MarshalJSON() ([]byte, error) { return json.Marshal(s.IDs()) }

// Has reports whether id is in the set.
func (s IDSet) Has(id int) bool {
	return id > 0 && id <= s.max && s.words[id/64]&(1<<(id%64)) != 0
}

// Max is the largest id the set could hold (the field's width or MaxVendorId).
func (s IDSet) Max() int { return s.max }

// IDs lists the ids in the set in increasing order.
func (s IDSet) IDs() []int {
	out := []int{}
	for id := 1; id <= s.max; id++ {
		if s.Has(id) {
			out = append(out, id)
		}
	}
	return out
}

// Len is the number of ids in the set.
func (s IDSet) Len() int {
	n := 0
	for id := 1; id <= s.max; id++ {
		if s.Has(id) {
			n++
		}
	}
	return n
}
