package tcf

import (
	"fmt"
	"strings"
	"time"
)

// TCString is a decoded TCF v2 TC string.
type TCString struct {
	// Core segment.
	Version             int           `json:"version"` // always 2
	Created             time.Time     `json:"created"`
	LastUpdated         time.Time     `json:"last_updated"`
	CMPID               int           `json:"cmp_id"`
	CMPVersion          int           `json:"cmp_version"`
	ConsentScreen       int           `json:"consent_screen"`
	ConsentLanguage     string        `json:"consent_language"` // ISO 639-1, upper case
	VendorListVersion   int           `json:"vendor_list_version"`
	PolicyVersion       int           `json:"tcf_policy_version"` // 4 for TCF v2.2
	IsServiceSpecific   bool          `json:"is_service_specific"`
	UseNonStandardTexts bool          `json:"use_non_standard_texts"`
	SpecialFeatures     IDSet         `json:"special_feature_opt_ins"`      // opt-ins, ids 1–12
	PurposeConsents     IDSet         `json:"purpose_consents"`             // ids 1–24
	PurposeLITransp     IDSet         `json:"purpose_legitimate_interests"` // legitimate interest established and disclosed, ids 1–24
	PurposeOneTreatment bool          `json:"purpose_one_treatment"`
	PublisherCC         string        `json:"publisher_cc"`
	VendorConsents      IDSet         `json:"vendor_consents"`
	VendorLI            IDSet         `json:"vendor_legitimate_interests"`
	Restrictions        []Restriction `json:"publisher_restrictions"`

	// Optional segments; nil or zero when absent.
	DisclosedVendors *IDSet       `json:"disclosed_vendors,omitempty"`
	AllowedVendors   *IDSet       `json:"allowed_vendors,omitempty"`
	Publisher        *PublisherTC `json:"publisher,omitempty"`
}

// Restriction types of a publisher restriction.
const (
	NotAllowed         = 0 // purpose flatly not allowed by the publisher
	RequireConsent     = 1
	RequireLegitimate  = 2
	restrictionUndefed = 3
)

// Restriction is one publisher restriction: for Purpose, the vendors in
// Vendors are subject to Type.
type Restriction struct {
	Purpose int     `json:"purpose"`
	Type    int     `json:"type"`
	Vendors []Range `json:"vendors"`
}

// Range is an inclusive range of vendor ids.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Restricts reports whether the restriction covers vendor.
func (r Restriction) Restricts(vendor int) bool {
	for _, v := range r.Vendors {
		if vendor >= v.Start && vendor <= v.End {
			return true
		}
	}
	return false
}

// PublisherTC is the publisher purposes segment (segment type 3).
type PublisherTC struct {
	PurposeConsents       IDSet `json:"purpose_consents"` // ids 1–24
	PurposeLITransp       IDSet `json:"purpose_legitimate_interests"`
	CustomPurposeConsents IDSet `json:"custom_purpose_consents"` // ids 1–NumCustomPurposes
	CustomPurposeLITransp IDSet `json:"custom_purpose_legitimate_interests"`
}

// Segment types of the optional segments.
const (
	segDisclosed = 1
	segAllowed   = 2
	segPublisher = 3
)

// ParseTC decodes a TC string: the core segment and any optional segments
// after it, separated by ".".
func ParseTC(s string) (*TCString, error) {
	if len(s) > maxString {
		return nil, fmt.Errorf("%w: TC string is %d bytes, more than %d", ErrMalformed, len(s), maxString)
	}
	segs := strings.Split(s, ".")
	r, err := decodeSegment(segs[0], "TC string core segment")
	if err != nil {
		return nil, err
	}
	t := &TCString{}
	t.Version = r.int(6)
	if r.err == nil && t.Version != 2 {
		return nil, fmt.Errorf("%w: TC string version %d; only TCF v2 (version 2) is read", ErrMalformed, t.Version)
	}
	t.Created = r.time()
	t.LastUpdated = r.time()
	t.CMPID = r.int(12)
	t.CMPVersion = r.int(12)
	t.ConsentScreen = r.int(6)
	t.ConsentLanguage = r.letters(2)
	t.VendorListVersion = r.int(12)
	t.PolicyVersion = r.int(6)
	t.IsServiceSpecific = r.bit()
	t.UseNonStandardTexts = r.bit()
	t.SpecialFeatures = r.bitfield(12)
	t.PurposeConsents = r.bitfield(24)
	t.PurposeLITransp = r.bitfield(24)
	t.PurposeOneTreatment = r.bit()
	t.PublisherCC = r.letters(2)
	t.VendorConsents = r.vendors("vendor consents")
	t.VendorLI = r.vendors("vendor legitimate interests")
	t.Restrictions = r.restrictions()
	if r.err != nil {
		return nil, r.err
	}
	seen := map[int]bool{}
	for i, seg := range segs[1:] {
		what := fmt.Sprintf("TC string segment %d", i+2)
		r, err := decodeSegment(seg, what)
		if err != nil {
			return nil, err
		}
		typ := r.int(3)
		if seen[typ] {
			return nil, fmt.Errorf("%w: %s repeats segment type %d", ErrMalformed, what, typ)
		}
		seen[typ] = true
		switch typ {
		case segDisclosed:
			v := r.vendors("disclosed vendors")
			t.DisclosedVendors = &v
		case segAllowed:
			v := r.vendors("allowed vendors")
			t.AllowedVendors = &v
		case segPublisher:
			p := &PublisherTC{PurposeConsents: r.bitfield(24), PurposeLITransp: r.bitfield(24)}
			n := r.int(6)
			p.CustomPurposeConsents = r.bitfield(n)
			p.CustomPurposeLITransp = r.bitfield(n)
			t.Publisher = p
		default:
			return nil, fmt.Errorf("%w: %s has segment type %d; want 1 (disclosed vendors), 2 (allowed vendors) or 3 (publisher purposes)", ErrMalformed, what, typ)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	return t, nil
}

// vendors reads a vendor section: MaxVendorId, then a bitfield of that
// many bits or a list of ranges.
func (r *reader) vendors(what string) IDSet {
	max := r.int(16)
	isRange := r.bit()
	if r.err != nil {
		return IDSet{}
	}
	if !isRange {
		if r.left() < max {
			r.err = fmt.Errorf("%w: %s: a bitfield of %d vendors but only %d bits left", ErrMalformed, what, max, r.left())
			return IDSet{}
		}
		return r.bitfield(max)
	}
	s := newIDSet(max)
	for _, rg := range r.ranges(what) {
		if rg.End > max {
			r.err = fmt.Errorf("%w: %s: vendor %d is beyond MaxVendorId %d", ErrMalformed, what, rg.End, max)
			return IDSet{}
		}
		s.addRange(rg.Start, rg.End)
	}
	return s
}

// ranges reads NumEntries (12 bits) and that many entries of IsARange,
// StartOrOnlyVendorId and, for a range, EndVendorId (16 bits each).
func (r *reader) ranges(what string) []Range {
	n := r.int(12)
	if r.err != nil || n*17 > r.left() {
		if r.err == nil {
			r.err = fmt.Errorf("%w: %s: %d entries but only %d bits left", ErrMalformed, what, n, r.left())
		}
		return nil
	}
	out := make([]Range, 0, n)
	for range n {
		isRange := r.bit()
		start := r.int(16)
		end := start
		if isRange {
			end = r.int(16)
		}
		if r.err != nil {
			return nil
		}
		if start == 0 || end < start {
			r.err = fmt.Errorf("%w: %s: vendor range %d–%d is empty or starts at 0", ErrMalformed, what, start, end)
			return nil
		}
		out = append(out, Range{start, end})
	}
	return out
}

func (r *reader) restrictions() []Restriction {
	n := r.int(12)
	if r.err != nil {
		return nil
	}
	out := []Restriction{}
	for i := range n {
		p := r.int(6)
		typ := r.int(2)
		vs := r.ranges(fmt.Sprintf("publisher restriction %d", i+1))
		if r.err != nil {
			return nil
		}
		if typ == restrictionUndefed {
			r.err = fmt.Errorf("%w: publisher restriction %d has the undefined type 3", ErrMalformed, i+1)
			return nil
		}
		out = append(out, Restriction{Purpose: p, Type: typ, Vendors: vs})
	}
	return out
}
