package tcftest_test

import (
	"slices"
	"testing"

	"github.com/portrait-dev/portrait/tcf"
	"github.com/portrait-dev/portrait/tcf/tcftest"
)

// The builders round-trip through the decoder.
func TestBuilders(t *testing.T) {
	s := tcftest.TC{CMPID: 9, Purposes: []int{1, 3}, Vendors: []int{5, 755},
		Restrictions: []tcftest.Restriction{{Purpose: 3, Type: tcf.NotAllowed, Vendors: []int{755}}}}.String()
	tc, err := tcf.ParseTC(s)
	if err != nil || tc.CMPID != 9 || !slices.Equal(tc.PurposeConsents.IDs(), []int{1, 3}) ||
		!slices.Equal(tc.VendorConsents.IDs(), []int{5, 755}) || len(tc.Restrictions) != 1 || !tc.Restrictions[0].Restricts(755) {
		t.Fatalf("%v %+v", err, tc)
	}
	yes := true
	g, err := tcf.ParseGPP(tcftest.GPP(map[int]string{2: s, 7: tcftest.USNat{Sale: 1, Sharing: 2, GPC: &yes}.String(), 13: "x"}))
	if err != nil || !slices.Equal(g.SectionIDs, []int{2, 7, 13}) || g.TCFEU == nil || g.USNat.SaleOptOut != 1 || !*g.USNat.GPC {
		t.Fatalf("%v %+v", err, g)
	}
}
