package server_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestLabelsPage: the labels page lists only labels attached to the
// person, each once, with the purposes it serves and one state word that
// matches the explanation; a rule label the person does not meet is not
// shown as theirs (LP-3).
func TestLabelsPage(t *testing.T) {
	h := newHarness(t)
	p := h.seedSubject("demo-alice", 3)
	h.putLabel(p, "sports_fan")
	h.putLabelMet(p, "big_spender", false)
	c, csrf := signedIn(t, h, h.token("demo-alice"), "/privacy/labels")
	page := fetchPage(t, c, h.url+"/privacy/labels")
	if !strings.Contains(page, `id="label-sports_fan"`) || strings.Count(page, `id="label-sports_fan"`) != 1 {
		t.Errorf("the met label is not listed once:\n%s", page)
	}
	if strings.Contains(page, `id="label-big_spender"`) {
		t.Errorf("a rule label the person does not meet is listed as theirs")
	}
	if !strings.Contains(page, `id="state-sports_fan">使用中`) || !strings.Contains(page, "用途：") || !strings.Contains(page, "根据您的浏览和购买记录为您推荐商品") {
		t.Errorf("state word or purposes missing:\n%s", page)
	}
	resp, err := c.PostForm(h.url+"/privacy/labels/sports_fan", url.Values{"csrf": {csrf}, "action": {"deselect"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page = fetchPage(t, c, h.url+"/privacy/labels")
	if !strings.Contains(page, `id="state-sports_fan">已停用`) {
		t.Errorf("a paused label does not say 已停用:\n%s", page)
	}
	if strings.Contains(page, "sports_fan · ") {
		t.Errorf("the flash names the label by its key")
	}
}
