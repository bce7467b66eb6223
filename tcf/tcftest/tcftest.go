// Package tcftest builds TCF v2.2 TC strings and GPP strings for tests of
// code that consumes them, as net/http/httptest builds servers. It writes
// the fields of the IAB field tables in order; package tcf's own tests
// check the decoder bit by bit, and these builders only against it.
package tcftest

import (
	"slices"
	"time"
)

// TC describes a TC string's core segment.
type TC struct {
	Created         time.Time
	CMPID           int
	Purposes        []int // purpose consents, ids 1–24
	LI              []int // purpose legitimate interests
	SpecialFeatures []int
	Vendors         []int // vendor consents (bitfield encoding)
	// Restrictions: purpose → restriction type → vendors.
	Restrictions []Restriction
}

// Restriction is one publisher restriction with single vendor ids.
type Restriction struct {
	Purpose, Type int
	Vendors       []int
}

// String encodes the core segment.
func (t TC) String() string {
	if t.Created.IsZero() {
		t.Created = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	}
	w := &bits{}
	ds := int(t.Created.UnixMilli() / 100)
	w.int(6, 2).int(36, ds).int(36, ds).int(12, t.CMPID).int(12, 1).int(6, 1).letters("EN").
		int(12, 100).int(6, 4).bool(true).bool(false).field(12, t.SpecialFeatures).field(24, t.Purposes).
		field(24, t.LI).bool(false).letters("DE")
	maxV := slices.Max(append([]int{0}, t.Vendors...))
	w.int(16, maxV).bool(false).field(maxV, t.Vendors)
	w.int(16, 0).bool(false)
	w.int(12, len(t.Restrictions))
	for _, r := range t.Restrictions {
		w.int(6, r.Purpose).int(2, r.Type).int(12, len(r.Vendors))
		for _, v := range r.Vendors {
			w.bool(false).int(16, v)
		}
	}
	return w.encode()
}

// USNat describes a usnat (GPP section 7, version 1) core sub-section: the
// three opt-outs (1 opted out, 2 did not) and the 12 sensitive-data
// consents (1 no consent, 2 consent); GPC adds the GPC sub-section.
type USNat struct {
	Sale, Sharing, TargetedAdvertising int
	Sensitive                          [12]int
	GPC                                *bool
}

// String encodes the section.
func (u USNat) String() string {
	w := (&bits{}).int(6, 1)
	for range 6 {
		w.int(2, 1)
	}
	w.int(2, u.Sale).int(2, u.Sharing).int(2, u.TargetedAdvertising)
	for _, v := range u.Sensitive {
		w.int(2, v)
	}
	w.int(2, 0).int(2, 0).int(2, 0).int(2, 1).int(2, 2).int(2, 2)
	s := w.encode()
	if u.GPC != nil {
		s += "." + (&bits{}).int(2, 1).bool(*u.GPC).encode()
	}
	return s
}

// GPP joins sections into a GPP string; ids must increase.
func GPP(sections map[int]string) string {
	var ids []int
	for id := range sections {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	w := (&bits{}).int(6, 3).int(6, 1).int(12, len(ids))
	last := 0
	for _, id := range ids {
		w.bool(false).fibonacci(id - last)
		last = id
	}
	s := w.encode()
	for _, id := range ids {
		s += "~" + sections[id]
	}
	return s
}

type bits struct{ b []bool }

func (w *bits) int(n, v int) *bits {
	for i := n - 1; i >= 0; i-- {
		w.b = append(w.b, v>>i&1 == 1)
	}
	return w
}

func (w *bits) bool(v bool) *bits { w.b = append(w.b, v); return w }

func (w *bits) letters(s string) *bits {
	for _, c := range s {
		w.int(6, int(c-'A'))
	}
	return w
}

func (w *bits) field(n int, ids []int) *bits {
	for i := 1; i <= n; i++ {
		w.bool(slices.Contains(ids, i))
	}
	return w
}

// fibonacci writes n ≥ 1 in Fibonacci coding (Zeckendorf digits, then 1).
func (w *bits) fibonacci(n int) *bits {
	fib := []int{1, 2}
	for fib[len(fib)-1] <= n {
		fib = append(fib, fib[len(fib)-1]+fib[len(fib)-2])
	}
	code := make([]bool, len(fib))
	for i := len(fib) - 1; i >= 0; i-- {
		if fib[i] <= n {
			code[i] = true
			n -= fib[i]
		}
	}
	for len(code) > 0 && !code[len(code)-1] {
		code = code[:len(code)-1]
	}
	w.b = append(w.b, code...)
	w.b = append(w.b, true)
	return w
}

// encode writes six bits per base64url character, padding the last.
func (w *bits) encode() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var out []byte
	for i := 0; i < len(w.b); i += 6 {
		v := 0
		for j := range 6 {
			v <<= 1
			if i+j < len(w.b) && w.b[i+j] {
				v |= 1
			}
		}
		out = append(out, alphabet[v])
	}
	return string(out)
}
