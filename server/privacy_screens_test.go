package server_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/browsertest"
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
	subs, _ := h.store.Subjects(context.Background(), []portrait.Pseudonym{p})
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
		sts, _ := h.store.States(context.Background(), []portrait.Pseudonym{p})
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

// TestPrivacyPagesBrowser opens every privacy-centre page in Chromium at
// 1280 and 390 px in both languages: nothing is wider than the screen
// (wide tables become cards on a phone), and with PORTRAIT_SCREENSHOTS=1
// each is saved in docs/screenshots (PNG).
func TestPrivacyPagesBrowser(t *testing.T) {
	browsertest.Require(t)
	h := newHarness(t)
	p := h.seedSubject("demo-alice", 3)
	h.putLabel(p, "sports_fan")
	shots := os.Getenv("PORTRAIT_SCREENSHOTS") == "1"
	pages := []string{"", "notice", "consents", "labels", "personalization", "profile", "decisions", "requests", "export", "erasure", "erasure?step=confirm"}
	for _, width := range []int{1280, 390} {
		ctx, cancel := browsertest.Open(t, width, 900, 300*time.Second) // a loaded 2-core machine
		// Headless Chromium keeps a window at least 500 px wide: the
		// phone's width is emulated, as a phone reports it.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), 900), chromedp.Navigate(h.url+"/privacy/"), chromedp.Click(chromedp.ID("demo-demo-alice")), chromedp.WaitVisible(chromedp.CSS(".cards"))); err != nil {
			t.Fatalf("%d px: sign in: %v", width, err)
		}
		for _, page := range pages {
			for _, lang := range []string{"zh-CN", "en"} {
				u := h.url + "/privacy/" + page
				if strings.Contains(page, "?") {
					u += "&lang=" + lang
				} else {
					u += "?lang=" + lang
				}
				if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.ID("main"))); err != nil {
					t.Fatalf("%d px, %s: %v", width, page, err)
				}
				over, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`))
				if err != nil {
					t.Fatal(err)
				}
				if iw, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`)); err != nil || iw != width {
					t.Fatalf("%d px: the page is %d px wide (%v)", width, iw, err)
				}
				if over > 0 {
					t.Errorf("%d px, /privacy/%s (%s): the page is %d px wider than the screen", width, page, lang, over)
				}
				if lang == "zh-CN" {
					text, err := chromedp.Run(ctx, chromedp.Evaluate[string](visibleText))
					if err != nil {
						t.Fatal(err)
					}
					checkNoRawKeys(t, fmt.Sprintf("/privacy/%s (%d px)", page, width), text)
				}
				if shots {
					name := strings.NewReplacer("?step=", "-", "/", "-").Replace(page)
					if name == "" {
						name = "home"
					}
					name = "privacy-" + name + "-" + map[string]string{"zh-CN": "zh", "en": "en"}[lang] + "-" + map[int]string{1280: "wide", 390: "phone"}[width] + ".png"
					b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
					if err != nil {
						t.Fatal(err)
					}
					saveShot(t, name, b)
				}
			}
		}
		cancel()
	}
}
