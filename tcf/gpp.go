package tcf

import (
	"fmt"
	"strings"
)

// GPP section ids (GPP "Section Information").
const (
	SectionTCFEU = 2
	SectionUSNat = 7
)

// GPP is a decoded Global Privacy Platform string.
type GPP struct {
	Version    int   `json:"version"` // always 1
	SectionIDs []int `json:"section_ids"`
	// TCFEU is section 2 (a TC string), USNat section 7; nil when absent.
	TCFEU *TCString `json:"tcfeuv2,omitempty"`
	USNat *USNat    `json:"usnat,omitempty"`
	// Sections holds every section as sent, by id, including those this
	// package does not decode.
	Sections map[int]string `json:"-"`
}

// maxSectionID bounds the ids a header may list; the registry holds a few
// dozen sections.
const maxSectionID = 1 << 10

// ParseGPP decodes a GPP string: the header, then one "~"-separated
// section per listed id, in the order the header lists them. Sections 2 and
// 7 are decoded; others are kept as sent.
func ParseGPP(s string) (*GPP, error) {
	if len(s) > maxString {
		return nil, fmt.Errorf("%w: GPP string is %d bytes, more than %d", ErrMalformed, len(s), maxString)
	}
	parts := strings.Split(s, "~")
	r, err := decodeSegment(parts[0], "GPP header")
	if err != nil {
		return nil, err
	}
	if typ := r.int(6); r.err == nil && typ != 3 {
		return nil, fmt.Errorf("%w: GPP header type %d; want 3", ErrMalformed, typ)
	}
	g := &GPP{Version: r.int(6), Sections: map[int]string{}}
	if r.err == nil && g.Version != 1 {
		return nil, fmt.Errorf("%w: GPP version %d; only version 1 is read", ErrMalformed, g.Version)
	}
	g.SectionIDs = r.fibonacciRange("GPP header section ids")
	if r.err != nil {
		return nil, r.err
	}
	if len(parts)-1 != len(g.SectionIDs) {
		return nil, fmt.Errorf("%w: the GPP header lists %d sections but %d follow it", ErrMalformed, len(g.SectionIDs), len(parts)-1)
	}
	for i, id := range g.SectionIDs {
		sec := parts[i+1]
		g.Sections[id] = sec
		switch id {
		case SectionTCFEU:
			t, err := ParseTC(sec)
			if err != nil {
				return nil, fmt.Errorf("GPP section %d (tcfeuv2): %w", id, err)
			}
			g.TCFEU = t
		case SectionUSNat:
			u, err := ParseUSNat(sec)
			if err != nil {
				return nil, fmt.Errorf("GPP section %d (usnat): %w", id, err)
			}
			g.USNat = u
		}
	}
	return g, nil
}

// fibonacciRange reads a GPP Range(Fibonacci): a 12-bit count, then per
// entry an IsRange bit and a Fibonacci offset from the previous id (0 for
// the first), plus for a group a Fibonacci length. Ids come out strictly
// increasing, as the specification requires.
func (r *reader) fibonacciRange(what string) []int {
	n := r.int(12)
	var out []int
	last := 0
	for range n {
		isRange := r.bit()
		start := last + r.fibonacci()
		end := start
		if isRange {
			end = start + r.fibonacci()
		}
		if r.err != nil {
			return nil
		}
		if end > maxSectionID || (len(out) > 0 && start <= last) {
			r.err = fmt.Errorf("%w: %s: ids %d–%d are out of order or beyond %d", ErrMalformed, what, start, end, maxSectionID)
			return nil
		}
		for id := start; id <= end; id++ {
			out = append(out, id)
		}
		last = end
	}
	return out
}

// USNat is the MSPA US National section (GPP section 7). Values follow the
// specification: for notices 0 not applicable, 1 yes, 2 no; for opt-outs 0
// not applicable, 1 opted out, 2 did not opt out; for consents 0 not
// applicable, 1 no consent, 2 consent.
type USNat struct {
	Version                             int   `json:"version"` // 1 or 2
	SharingNotice                       int   `json:"sharing_notice"`
	SaleOptOutNotice                    int   `json:"sale_opt_out_notice"`
	SharingOptOutNotice                 int   `json:"sharing_opt_out_notice"`
	TargetedAdvertisingOptOutNotice     int   `json:"targeted_advertising_opt_out_notice"`
	SensitiveDataProcessingOptOutNotice int   `json:"sensitive_data_processing_opt_out_notice"`
	SensitiveDataLimitUseNotice         int   `json:"sensitive_data_limit_use_notice"`
	SaleOptOut                          int   `json:"sale_opt_out"`
	SharingOptOut                       int   `json:"sharing_opt_out"`
	TargetedAdvertisingOptOut           int   `json:"targeted_advertising_opt_out"`
	SensitiveDataProcessing             []int `json:"sensitive_data_processing"`           // 12 entries (v1) or 16 (v2)
	KnownChildSensitiveDataConsents     []int `json:"known_child_sensitive_data_consents"` // 2 (v1) or 3 (v2)
	PersonalDataConsents                int   `json:"personal_data_consents"`
	MspaCoveredTransaction              int   `json:"mspa_covered_transaction"`
	MspaOptOutOptionMode                int   `json:"mspa_opt_out_option_mode"`
	MspaServiceProviderMode             int   `json:"mspa_service_provider_mode"`
	// GPC is the GPC sub-section's signal; nil when the sub-section is absent.
	GPC *bool `json:"gpc,omitempty"`
}

// Values of the US National fields.
const (
	NotApplicable = 0
	OptedOut      = 1 // for opt-outs; for consents 1 is "no consent"
	DidNotOptOut  = 2 // for opt-outs; for consents 2 is "consent"
)

// ParseUSNat decodes a usnat section: the core sub-section and an optional
// GPC sub-section after a ".".
func ParseUSNat(s string) (*USNat, error) {
	subs := strings.Split(s, ".")
	r, err := decodeSegment(subs[0], "usnat core")
	if err != nil {
		return nil, err
	}
	u := &USNat{Version: r.int(6)}
	sensitive, child := 0, 0
	switch u.Version {
	case 1:
		sensitive, child = 12, 2
	case 2:
		sensitive, child = 16, 3
	default:
		if r.err == nil {
			return nil, fmt.Errorf("%w: usnat version %d; want 1 or 2", ErrMalformed, u.Version)
		}
	}
	u.SharingNotice = r.int(2)
	u.SaleOptOutNotice = r.int(2)
	u.SharingOptOutNotice = r.int(2)
	u.TargetedAdvertisingOptOutNotice = r.int(2)
	u.SensitiveDataProcessingOptOutNotice = r.int(2)
	u.SensitiveDataLimitUseNotice = r.int(2)
	u.SaleOptOut = r.int(2)
	u.SharingOptOut = r.int(2)
	u.TargetedAdvertisingOptOut = r.int(2)
	u.SensitiveDataProcessing = make([]int, sensitive)
	for i := range u.SensitiveDataProcessing {
		u.SensitiveDataProcessing[i] = r.int(2)
	}
	u.KnownChildSensitiveDataConsents = make([]int, child)
	for i := range u.KnownChildSensitiveDataConsents {
		u.KnownChildSensitiveDataConsents[i] = r.int(2)
	}
	u.PersonalDataConsents = r.int(2)
	u.MspaCoveredTransaction = r.int(2)
	u.MspaOptOutOptionMode = r.int(2)
	u.MspaServiceProviderMode = r.int(2)
	if r.err != nil {
		return nil, r.err
	}
	for i, sub := range subs[1:] {
		r, err := decodeSegment(sub, fmt.Sprintf("usnat sub-section %d", i+2))
		if err != nil {
			return nil, err
		}
		switch typ := r.int(2); {
		case r.err != nil:
		case typ == 1 && u.GPC == nil:
			v := r.bit()
			u.GPC = &v
		default:
			return nil, fmt.Errorf("%w: usnat sub-section %d has type %d; want one GPC sub-section (type 1)", ErrMalformed, i+2, typ)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	return u, nil
}
