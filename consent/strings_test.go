package consent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/consent"
	"github.com/portrait-dev/portrait/policy"
	"github.com/portrait-dev/portrait/tcf"
	"github.com/portrait-dev/portrait/tcf/tcftest"
)

// stringCatalog maps ads to TCF purposes 1, 3 and 4 with vendor 755, and to
// the usnat opt-outs of sale and targeted advertising.
func stringCatalog() *catalog.Catalog {
	c := testCatalog("2")
	p := c.Purpose(ads)
	p.TCF = &catalog.TCFMapping{Purposes: []int{1, 3, 4}, Vendor: 755}
	p.USNat = &catalog.USNatMapping{OptOuts: []string{"sale", "targeted_advertising"}}
	return c
}

func fromString(typ, s string) consent.Change {
	return consent.Change{Purpose: ads, NoticeVersion: "1", Channel: "cmp", ConsentString: s, StringType: typ}
}

// CN-2, CN-4: a CMP's consent string decides the purpose through the
// catalog's mapping; a later string without consent withdraws it; the
// record and the signed receipt keep the string.
func TestConsentFromStrings(t *testing.T) {
	yes := true
	all := tcftest.TC{Purposes: []int{1, 2, 3, 4}, Vendors: []int{755}}.String()
	cases := []struct {
		name, typ, s string
		want         policy.Status
	}{
		{"tc all purposes and vendor", consent.StringTCF, all, policy.Granted},
		{"tc purpose 4 missing", consent.StringTCF, tcftest.TC{Purposes: []int{1, 3}, Vendors: []int{755}}.String(), policy.Withdrawn},
		{"tc vendor missing", consent.StringTCF, tcftest.TC{Purposes: []int{1, 3, 4}, Vendors: []int{754}}.String(), policy.Refused},
		{"tc publisher forbids the vendor", consent.StringTCF, tcftest.TC{Purposes: []int{1, 3, 4}, Vendors: []int{755},
			Restrictions: []tcftest.Restriction{{Purpose: 3, Type: tcf.NotAllowed, Vendors: []int{755}}}}.String(), policy.Refused},
		{"gpp with tcf section", consent.StringGPP, tcftest.GPP(map[int]string{2: all}), policy.Granted},
		{"gpp usnat no opt-out", consent.StringGPP, tcftest.GPP(map[int]string{7: tcftest.USNat{Sale: 2, Sharing: 1, TargetedAdvertising: 2}.String()}), policy.Granted},
		{"gpp usnat sale opt-out", consent.StringGPP, tcftest.GPP(map[int]string{7: tcftest.USNat{Sale: 1, TargetedAdvertising: 2}.String()}), policy.Refused},
		{"gpp usnat GPC", consent.StringGPP, tcftest.GPP(map[int]string{7: tcftest.USNat{Sale: 2, TargetedAdvertising: 2, GPC: &yes}.String()}), policy.Refused},
		{"gpp both, usnat opted out", consent.StringGPP, tcftest.GPP(map[int]string{2: all, 7: tcftest.USNat{Sale: 2, TargetedAdvertising: 1}.String()}), policy.Refused},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newNode(t, openStore(t, t.TempDir()+"/p.db"), "", stringCatalog())
			id := "u" + string(rune('a'+i))
			if c.want == policy.Withdrawn {
				e.record(t, id, fromString(consent.StringTCF, all))
			}
			r := e.record(t, id, fromString(c.typ, c.s))
			if r.Status != c.want.String() || r.ConsentString != c.s || r.StringType != c.typ {
				t.Fatalf("receipt status %s string %q (%s), want %s with the string", r.Status, r.ConsentString, r.StringType, c.want)
			}
			data, _ := json.Marshal(r)
			if _, err := consent.VerifyReceipt(data, e.keys.ReceiptKey().Public().(ed25519.PublicKey)); err != nil {
				t.Fatalf("receipt with a consent string does not verify: %v", err)
			}
			if d := e.decide(t, id, ads); d.Allow != (c.want == policy.Granted) {
				t.Fatalf("decision after %s: allow=%v", c.want, d.Allow)
			}
			h, err := e.ledger.History(context.Background(), accessGrant(t, e.point, e.keys.Pseudonym(id)))
			if err != nil || h[len(h)-1].ConsentString != c.s || h[len(h)-1].StringType != c.typ {
				t.Fatalf("history does not keep the string: %v %+v", err, h)
			}
		})
	}
}

// CN-1: a string for a purpose without a mapping, a malformed string, a
// status that contradicts the string and a grant under an old notice are
// refused, and nothing is recorded.
func TestConsentStringRefusals(t *testing.T) {
	e := newNode(t, openStore(t, t.TempDir()+"/p.db"), "", stringCatalog())
	all := tcftest.TC{Purposes: []int{1, 3, 4}, Vendors: []int{755}}.String()
	usOnly := tcftest.GPP(map[int]string{7: tcftest.USNat{Sale: 2, TargetedAdvertising: 2}.String()})
	cases := []struct {
		name     string
		c        consent.Change
		req, msg string
	}{
		{"no mapping", consent.Change{Purpose: personalization, NoticeVersion: "2", ConsentString: all, StringType: consent.StringTCF}, "CN-1", "declare tcf:"},
		{"gpp without a mapped section", consent.Change{Purpose: ads, NoticeVersion: "1", ConsentString: tcftest.GPP(map[int]string{13: "x"}), StringType: consent.StringGPP}, "CN-1", "no section"},
		{"malformed", fromString(consent.StringTCF, all[:12]), "", "malformed"},
		{"unknown type", fromString("uspv1", "1YNN"), "", "want tcfv2 or gpp"},
		{"contradicting status", consent.Change{Purpose: ads, Status: policy.Refused, NoticeVersion: "1", ConsentString: all, StringType: consent.StringTCF}, "", "contradicts"},
		{"old notice", consent.Change{Purpose: ads, NoticeVersion: "0", ConsentString: usOnly, StringType: consent.StringGPP}, "CN-3", "current notice"},
	}
	for _, c := range cases {
		_, err := e.ledger.Record(context.Background(), operator, consent.ByID("v"), c.c)
		if err == nil {
			t.Errorf("%s: recorded", c.name)
			continue
		}
		wantError(t, err, "invalid", c.req, c.msg)
	}
	st, err := e.ledger.State(context.Background(), e.keys.Pseudonym("v"))
	if err == nil && st != nil && st.Consents[ads].Status != policy.None {
		t.Errorf("a refused string left a record: %+v", st.Consents[ads])
	}
}
