package server_test

import (
	"context"
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

// TestErasureConfirm: the erasure page offers the export first; a post
// without the second, explicit confirmation erases nothing (SR-3).
func TestErasureConfirm(t *testing.T) {
	h := newHarness(t)
	p := h.seedSubject("demo-alice", 3)
	c, csrf := signedIn(t, h, h.token("demo-alice"), "/privacy/erasure")
	page := fetchPage(t, c, h.url+"/privacy/erasure")
	if !strings.Contains(page, `id="export-first"`) || strings.Contains(page, `id="confirm-erasure"`) {
		t.Errorf("first erasure page: no export offer, or erases in one click:\n%s", page)
	}
	if page := fetchPage(t, c, h.url+"/privacy/erasure?step=confirm"); !strings.Contains(page, `id="lost"`) || !strings.Contains(page, "4 条行为事件") {
		t.Errorf("second confirmation does not name what is lost:\n%s", page)
	}
	resp, err := c.PostForm(h.url+"/privacy/erasure", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	subs, _ := h.store.Subjects(context.Background(), []string{p})
	if resp.StatusCode != 400 || len(subs) != 1 {
		t.Fatalf("erasure without confirmation: %d, subject kept %v", resp.StatusCode, len(subs) == 1)
	}
	resp, err = c.PostForm(h.url+"/privacy/erasure", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("confirmed erasure: %d", resp.StatusCode)
	}
}

// TestPersonalizationSwitch: the dial says what its numbers mean, and a
// plain switch beside it turns personalisation off (level 0) and on
// again (LP-4, LP-5).
func TestPersonalizationSwitch(t *testing.T) {
	h := newHarness(t)
	p := h.seedSubject("demo-alice", 3)
	c, csrf := signedIn(t, h, h.token("demo-alice"), "/privacy/personalization")
	page := fetchPage(t, c, h.url+"/privacy/personalization")
	if !strings.Contains(page, `id="dial-meaning"`) || !strings.Contains(page, "100：") || !strings.Contains(page, `id="toggle-personalization"`) {
		t.Fatalf("dial without its meaning or the switch:\n%s", page)
	}
	level := func() int {
		sts, _ := h.store.States(context.Background(), []string{p})
		return sts[p].Personalization
	}
	for _, want := range []int{0, 100} {
		page := fetchPage(t, c, h.url+"/privacy/personalization")
		_, rest, _ := strings.Cut(page, `id="switch"`)
		_, rest, _ = strings.Cut(rest, `name="level" value="`)
		v, _, _ := strings.Cut(rest, `"`)
		resp, err := c.PostForm(h.url+"/privacy/personalization", url.Values{"csrf": {csrf}, "level": {v}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := level(); got != want {
			t.Errorf("after the switch: level %d, want %d", got, want)
		}
	}
}
