package tcf

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// bits builds a segment bit by bit from a specification's field table, so
// tests state each field with its width as the table does.
type bits struct{ b []bool }

func (w *bits) int(n, v int) *bits {
	for i := n - 1; i >= 0; i-- {
		w.b = append(w.b, v>>i&1 == 1)
	}
	return w
}

func (w *bits) bool(v bool) *bits {
	w.b = append(w.b, v)
	return w
}

// str appends a string of 0s and 1s, as the specifications print bits.
func (w *bits) str(s string) *bits {
	for _, c := range strings.ReplaceAll(s, " ", "") {
		w.b = append(w.b, c == '1')
	}
	return w
}

func (w *bits) letters(s string) *bits {
	for _, c := range s {
		w.int(6, int(c-'A'))
	}
	return w
}

func (w *bits) time(t time.Time) *bits { return w.int(36, int(t.UnixMilli()/100)) }

func (w *bits) field(n int, ids ...int) *bits {
	for i := 1; i <= n; i++ {
		w.bool(slices.Contains(ids, i))
	}
	return w
}

// encode pads to a multiple of 6 bits (the GPP rule; TCF pads to bytes,
// which base64url without padding reads the same) and encodes.
func (w *bits) encode() string {
	b := append([]bool(nil), w.b...)
	for len(b)%8 != 0 {
		b = append(b, false)
	}
	out := make([]byte, len(b)/8)
	for i, v := range b {
		if v {
			out[i/8] |= 1 << (7 - i%8)
		}
	}
	s := base64.RawURLEncoding.EncodeToString(out)
	// Drop characters that only carry padding bits.
	for n := (len(w.b) + 5) / 6; len(s) > n; {
		s = s[:len(s)-1]
	}
	return s
}

var (
	created = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	updated = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// core writes a TCF v2.2 core segment up to and including PublisherCC.
func core(purposes, li []int) *bits {
	w := &bits{}
	w.int(6, 2).time(created).time(updated).int(12, 300).int(12, 7).int(6, 3).letters("FR").
		int(12, 84).int(6, 4).bool(true).bool(false).field(12, 2).field(24, purposes...).field(24, li...).
		bool(false).letters("DE")
	return w
}

func TestParseTCBuiltFromFieldTable(t *testing.T) {
	// Vendor consents 2, 3 and 10–12 as a bitfield; legitimate interests
	// as ranges; two publisher restrictions; a disclosed-vendors segment
	// and a publisher-purposes segment with two custom purposes.
	w := core([]int{1, 3, 4}, []int{2, 7})
	w.int(16, 12).bool(false).field(12, 2, 3, 10, 11, 12)
	w.int(16, 40).bool(true).int(12, 2).bool(false).int(16, 5).bool(true).int(16, 30).int(16, 40)
	w.int(12, 2).
		int(6, 3).int(2, RequireConsent).int(12, 1).bool(true).int(16, 10).int(16, 12).
		int(6, 7).int(2, NotAllowed).int(12, 1).bool(false).int(16, 755)
	disclosed := (&bits{}).int(3, 1).int(16, 755).bool(true).int(12, 1).bool(true).int(16, 700).int(16, 755)
	pub := (&bits{}).int(3, 3).field(24, 1, 9).field(24).int(6, 2).field(2, 2).field(2, 1)
	s := w.encode() + "." + disclosed.encode() + "." + pub.encode()

	tc, err := ParseTC(s)
	if err != nil {
		t.Fatal(err)
	}
	check := []struct {
		name      string
		got, want any
	}{
		{"version", tc.Version, 2},
		{"created", tc.Created, created},
		{"updated", tc.LastUpdated, updated},
		{"cmp", tc.CMPID, 300},
		{"cmp version", tc.CMPVersion, 7},
		{"screen", tc.ConsentScreen, 3},
		{"language", tc.ConsentLanguage, "FR"},
		{"vendor list", tc.VendorListVersion, 84},
		{"policy", tc.PolicyVersion, 4},
		{"service specific", tc.IsServiceSpecific, true},
		{"special features", tc.SpecialFeatures.IDs(), []int{2}},
		{"purposes", tc.PurposeConsents.IDs(), []int{1, 3, 4}},
		{"li", tc.PurposeLITransp.IDs(), []int{2, 7}},
		{"publisher cc", tc.PublisherCC, "DE"},
		{"vendor consents", tc.VendorConsents.IDs(), []int{2, 3, 10, 11, 12}},
		{"vendor li count", tc.VendorLI.Len(), 1 + 11},
		{"vendor li 30", tc.VendorLI.Has(30), true},
		{"vendor li 29", tc.VendorLI.Has(29), false},
		{"restrictions", len(tc.Restrictions), 2},
		{"restriction 1", tc.Restrictions[0].Restricts(11), true},
		{"restriction 2", tc.Restrictions[1], Restriction{Purpose: 7, Type: NotAllowed, Vendors: []Range{{755, 755}}}},
		{"disclosed", tc.DisclosedVendors.Len(), 56},
		{"publisher purposes", tc.Publisher.PurposeConsents.IDs(), []int{1, 9}},
		{"custom consents", tc.Publisher.CustomPurposeConsents.IDs(), []int{2}},
		{"custom li", tc.Publisher.CustomPurposeLITransp.IDs(), []int{1}},
	}
	for _, c := range check {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	switch a := a.(type) {
	case []int:
		return slices.Equal(a, b.([]int))
	case Restriction:
		b := b.(Restriction)
		return a.Purpose == b.Purpose && a.Type == b.Type && slices.Equal(a.Vendors, b.Vendors)
	case time.Time:
		return a.Equal(b.(time.Time))
	}
	return a == b
}

// The TC string in the GPP specification's examples ("GPP String Examples"
// 1–3), with the values its fields hold.
const specTC = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"

func TestParseTCSpecExample(t *testing.T) {
	tc, err := ParseTC(specTC)
	if err != nil {
		t.Fatal(err)
	}
	if tc.Version != 2 || tc.CMPID != 31 || tc.CMPVersion != 640 || tc.ConsentLanguage != "EN" ||
		tc.PublisherCC != "DE" || tc.VendorListVersion != 126 || tc.PolicyVersion != 2 ||
		!tc.Created.Equal(time.Date(2022, 4, 20, 22, 0, 0, 0, time.UTC)) || tc.PurposeConsents.Len() != 0 {
		t.Errorf("decoded %+v", tc)
	}
}

// A TC string a CMP produced in 2020 (CMP 6) with 12 publisher
// restrictions, and a publisher-purposes segment; the expected vendors are
// those an independent decoder (the Erlang consent_string library's tests)
// finds in it.
const wildTC = "CO4tVeBO4tVeBAGABBENA0CgAP_AAH_AAAYgGVtf_X9fb2-j-9599dt0eY1fd_63t-wxjgeNs-8NyZvX-J4Xp0MyvB3wpqYKmR4EunLBAQdlHGHcTQgAwIkFqTLsYk2MizNKJ7JEikMbM0dYGG1vH8XT_ZCY7k-_f__7vn-_-___6oGUEEGCAKAQBCGAAIEihEIQAIQxIAIAACihEAgEkACRQALI4COQACABAYgIQIAQAgoAYBAAIAAElAQAgAAIBQARAIAAQADAEAACAAkFgBIgAAACIEhAARABKBAQUBAQcggQFQBBACBAMEQHQAVABWAC4AIYARIApABkADLAGoANkAcQA_ACMAFLAKuAawA-QCGwEXgJEATYAnYBQ4CkQFyAMCAYSAw8Bk4SCSAAgABcAFAAVAAyABwADwAIAARAAqAB4AD6AIYAiABMACfAFUAVgAsABcADeAHMAPQAhoBEAESAI4ASwAmgBSgDDAGQAMsAagA2QBxADvAHsAPiAfYB-gEYAI4AUsAq4BfgDCAGKANYAbQA3ABvAD0AHyAQ2AioBF4CRAExAJlATYAnYBQ4CkQFNgKwAWKAtgBcgC7wGBAMGAYSAw0Bh4DIgGSAMnDQIQAVABWAC4AIYARIApABkADLAGkANQAbIA4gB-AEYAKWAVeAtAC0gGsAN4AfIBDYCLwEiAJsATsAocBSIC5AGBAMJAYeAxgBk4YAIAbIA6gC-gGRjoJIAC4AKAAqABcADIAHAAQAAiABiADwAH0AQwBEACZAFUAVgAsABcADEAGYAN4AcwA9ACGAEQAJYATAAmoBRgFKAMgAZUA0QDSAGoANmAb4BwADiAHeAPaAfYB-AEYAI4AVcAsUBaAFpALmAXkAvwBhADFAG4gOmA6gB6AENgIiAReAkEBIgCbAE7AKHgU0BTYCrAFiwLYAtkBcAC5AF2gLvAYSAw0Bh4DEgGMAMeAZIAycZAYAAoACoAIYATAAuACOAFIAMsAagA4gB-AEYAI4AUsAq4BWwDeAJiATYApsBaIDAgGHgMiGAAQB4CoDAAFAAVABDACYAFwARwApABlgDUAHEAPwAjABHAClwFoAWkA3gCQQExAJsAU2AuQBgQDDwGREIFgACwAKAAZABEADEAIYATAAqgBcADMAG8APQAjgBSADKAGoAN8AcQA7wB-AEDAIwARwAocBaAFpAL8AYQAxQB1AD0AJBASIAmyBTQFNgLFAWjAtgC2QFwALkAXaAw8BiQDIgGTkoEwACAAFgAUAAuABkADgAMQAeABEACYAFUALgAYgAzABtAEIAIaARABEwCkAKUAZQA0gBsgDvAH4ARgAjkBaAFpAMUAbgA6gCLwEiAJsAWKAu0Bh4DIgGTlIG4ACwAKAAXAAyABwAEAAMQAeQBDAEQAJgAUgAqgBYAC4AGIAMwAcwBDACIgFGAUoAyoBogGkANkAcQA74B9gH4ARgAjgBQwCtgF5AMIAbQA3AB1AD0AIvASIAmwBOwCh4FNAU2ArYBYoC2AFwALkAXaAw0Bh4DEgGMAMiAZIAycqACAB8Aks.YAAAAAAAAAAA"

func TestParseTCPublisherRestrictions(t *testing.T) {
	tc, err := ParseTC(wildTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(tc.Restrictions) != 12 || tc.CMPID != 6 || tc.Publisher == nil {
		t.Fatalf("restrictions %d, cmp %d, publisher segment %v", len(tc.Restrictions), tc.CMPID, tc.Publisher)
	}
	ids := func(r Restriction) []int {
		var out []int
		for _, v := range r.Vendors {
			for id := v.Start; id <= v.End; id++ {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	first, last := tc.Restrictions[0], tc.Restrictions[11]
	want4 := []int{42, 86, 92, 134, 137, 164, 200, 203, 212, 217, 226, 252, 280, 331, 343, 428, 498, 539, 559, 580, 620, 630, 647, 657, 740, 770, 777, 783, 807}
	if first.Purpose != 4 || first.Type != RequireConsent || !slices.Equal(ids(first), want4) {
		t.Errorf("restriction for purpose 4: %+v", first)
	}
	if last.Purpose != 10 || last.Type != RequireLegitimate || !slices.Equal(ids(last), []int{62, 587}) {
		t.Errorf("restriction for purpose 10: %+v", last)
	}
}

func TestParseGPPSpecExamples(t *testing.T) {
	// Header example 1 bit by bit: Type 3, Version 1, one single id 2.
	h1 := (&bits{}).str("000011 000001 000000 000001 001100").encode()
	if h1 != "DBABM" {
		t.Fatalf("header example 1 encodes to %q, want DBABM", h1)
	}
	for _, c := range []struct {
		s   string
		ids []int
		tcf bool
	}{
		{h1 + "~" + specTC, []int{2}, true},
		{"DBABMA~" + specTC, []int{2}, true},
		{"DBACNYA~" + specTC + "~1YNN", []int{2, 6}, true}, // example 2: 2, then offset 4
		{"DBABjw~" + specTC + "~1YNN", []int{5, 6}, false}, // example 3: the range 5–6
	} {
		g, err := ParseGPP(c.s)
		if err != nil {
			t.Errorf("%s: %v", c.s, err)
			continue
		}
		if !slices.Equal(g.SectionIDs, c.ids) || (g.TCFEU != nil) != c.tcf {
			t.Errorf("%s: ids %v, tcf %v", c.s, g.SectionIDs, g.TCFEU != nil)
		}
		if c.tcf && g.TCFEU.CMPID != 31 {
			t.Errorf("%s: TCF section CMP %d", c.s, g.TCFEU.CMPID)
		}
	}
	// The Range(Fibonacci) example of the data-type table: [3, 5, 6, 7, 8].
	r, err := decodeSegment((&bits{}).str("000000000010 0 0011 1 011 0011").encode(), "range")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.fibonacciRange("range"); r.err != nil || !slices.Equal(got, []int{3, 5, 6, 7, 8}) {
		t.Errorf("Fibonacci range example: %v %v", got, r.err)
	}
}

func usnat(version int, opt [3]int, sensitive []int) *bits {
	w := (&bits{}).int(6, version)
	for range 6 {
		w.int(2, 1) // every notice given
	}
	for _, v := range opt {
		w.int(2, v)
	}
	for _, v := range sensitive {
		w.int(2, v)
	}
	n := 2
	if version == 2 {
		n = 3
	}
	for range n {
		w.int(2, NotApplicable)
	}
	return w.int(2, 2).int(2, 1).int(2, 2).int(2, 2)
}

func TestParseUSNat(t *testing.T) {
	v1 := make([]int, 12)
	v1[7] = 2 // precise geolocation: consent
	v2 := make([]int, 16)
	v2[15] = 1
	gpc := (&bits{}).int(2, 1).bool(true).encode()
	for _, c := range []struct {
		name string
		sec  string
		want func(*USNat) bool
	}{
		{"v1", usnat(1, [3]int{OptedOut, DidNotOptOut, OptedOut}, v1).encode(), func(u *USNat) bool {
			return u.Version == 1 && u.SaleOptOut == OptedOut && u.SharingOptOut == DidNotOptOut &&
				u.TargetedAdvertisingOptOut == OptedOut && len(u.SensitiveDataProcessing) == 12 &&
				u.SensitiveDataProcessing[7] == 2 && u.PersonalDataConsents == 2 && u.MspaCoveredTransaction == 1 && u.GPC == nil
		}},
		{"v2 with GPC", usnat(2, [3]int{DidNotOptOut, DidNotOptOut, DidNotOptOut}, v2).encode() + "." + gpc, func(u *USNat) bool {
			return u.Version == 2 && len(u.SensitiveDataProcessing) == 16 && u.SensitiveDataProcessing[15] == 1 &&
				len(u.KnownChildSensitiveDataConsents) == 3 && u.GPC != nil && *u.GPC
		}},
	} {
		// GPP header with the single section 7: Fibonacci 7 = 01011.
		h := (&bits{}).int(6, 3).int(6, 1).int(12, 1).bool(false).str("01011").encode()
		g, err := ParseGPP(h + "~" + c.sec)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(g.SectionIDs, []int{7}) || g.USNat == nil || !c.want(g.USNat) {
			t.Errorf("%s: %+v", c.name, g.USNat)
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	ok := core([]int{1}, nil).int(16, 0).bool(false).int(16, 0).bool(false).int(12, 0)
	okS := ok.encode()
	hostile := core(nil, nil).int(16, 65535).bool(true).int(12, 4095)
	for range 4095 {
		hostile.bool(true).int(16, 1).int(16, 65535)
	}
	cases := []struct {
		name, s string
		gpp     bool
		want    string
	}{
		{"empty", "", false, "empty"},
		{"not base64", "C$$$", false, "base64"},
		{"version 1", (&bits{}).int(6, 1).int(200, 0).encode(), false, "version 1"},
		{"truncated", okS[:20], false, "ends at bit"},
		{"range beyond max", core(nil, nil).int(16, 10).bool(true).int(12, 1).bool(false).int(16, 11).encode(), false, "beyond MaxVendorId"},
		{"range from 0", core(nil, nil).int(16, 10).bool(true).int(12, 1).bool(false).int(16, 0).encode(), false, "starts at 0"},
		{"restriction type 3", core(nil, nil).int(16, 0).bool(false).int(16, 0).bool(false).int(12, 1).int(6, 1).int(2, 3).int(12, 0).encode(), false, "type 3"},
		{"unknown segment", okS + "." + (&bits{}).int(3, 5).int(30, 0).encode(), false, "segment type 5"},
		{"repeated segment", okS + ".YAAAAAAAAAAA.YAAAAAAAAAAA", false, "repeats"},
		{"letter beyond Z", core(nil, nil).encode()[:10] + "_____________________", false, ""},
		{"gpp count mismatch", "DBABM", true, "lists 1 sections but 0"},
		{"gpp type", (&bits{}).int(6, 4).int(6, 1).int(12, 0).encode(), true, "header type 4"},
		{"gpp bad tcf section", "DBABM~" + okS[:10], true, "section 2"},
		{"usnat version 3", (&bits{}).int(6, 3).int(6, 1).int(12, 1).bool(false).str("01011").encode() + "~" + (&bits{}).int(6, 3).int(60, 0).encode(), true, "usnat version 3"},
		{"hostile ranges", hostile.int(16, 0).bool(false).int(12, 0).encode(), false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			var err error
			if c.gpp {
				_, err = ParseGPP(c.s)
			} else {
				_, err = ParseTC(c.s)
			}
			if c.name == "hostile ranges" {
				// Decodes (it is well formed) but cheaply.
				if err != nil || time.Since(start) > time.Second {
					t.Errorf("hostile ranges: %v after %v", err, time.Since(start))
				}
				return
			}
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want ErrMalformed mentioning %q", err, c.want)
			}
		})
	}
	if _, err := ParseTC(okS); err != nil {
		t.Errorf("the well-formed base of these cases: %v", err)
	}
}

// FuzzParse: any input yields a value or an ErrMalformed, never a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{specTC, wildTC, "DBABMA~" + specTC, "DBACNYA~" + specTC + "~1YNN", "DBABjw~x~y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) error{
			func(s string) error { _, err := ParseTC(s); return err },
			func(s string) error { _, err := ParseGPP(s); return err },
			func(s string) error { _, err := ParseUSNat(s); return err },
		} {
			if err := parse(s); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
		}
	})
}

func BenchmarkParseTC(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTC(wildTC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGPP(b *testing.B) {
	s := "DBACNYA~" + specTC + "~1YNN"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseGPP(s); err != nil {
			b.Fatal(err)
		}
	}
}
