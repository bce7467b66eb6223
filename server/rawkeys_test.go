package server_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/oversight"
	"github.com/portrait-dev/portrait/review"
	"github.com/portrait-dev/portrait/rights"
)

// rawKeys is every word a Chinese page must not show to a reader: the
// demo catalog's field, label, use-case, purpose and event-type ids, the
// monitor's default price event type, every fideslang
// data-category and data-use key, and the enum values the pages translate
// (decision and request states, request types, legal bases, tiers, kinds).
var rawKeys = sync.OnceValue(func() map[string]string {
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		panic(err)
	}
	keys := map[string]string{}
	for _, p := range cat.Purposes {
		keys[p.ID] = "purpose id"
	}
	for _, f := range cat.Fields {
		keys[f.Name] = "field key"
	}
	for _, l := range cat.Labels {
		keys[l.ID] = "label id"
	}
	for _, u := range cat.UseCases {
		keys[u.ID] = "use-case id"
	}
	for _, e := range cat.EventTypes {
		keys[e.ID] = "event-type id"
	}
	keys["price_shown"] = "event-type id" // the monitor's default, declared or not
	for _, k := range catalog.Categories() {
		keys[k] = "taxonomy key"
	}
	for _, k := range catalog.DataUses() {
		keys[k] = "taxonomy key"
	}
	for _, b := range catalog.Bases {
		keys[string(b)] = "enum value"
	}
	for _, v := range []string{
		apply.StatusAutomated, apply.StatusPendingReview, apply.StatusUpheld, apply.StatusOverturned, apply.StatusModified,
		apply.KindRecommendation, apply.KindAudience, apply.KindDecision,
		rights.TypeAccess, rights.TypeExport, rights.TypeCorrection, rights.TypeErasure, rights.TypeRestriction,
		rights.TypeObjection, rights.TypePersonalization, rights.TypeExplanation, rights.TypeWithdrawal,
		rights.StatusOpen, rights.StatusFulfilled, rights.StatusRefused, review.KindAppeal, review.StatusClosed,
		oversight.TypeReport, catalog.TierHigh, catalog.TierLimited, catalog.TierMinimal, catalog.TierProhibited,
		"granted", "withdrawn",
	} {
		keys[v] = "enum value"
	}
	return keys
})

// word is a run of ASCII letters, digits and underscores, with dots inside
// (so taxonomy keys are one word). Hyphens split words: "demo-alice" is
// not a key.
var word = regexp.MustCompile(`[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*`)

// findRawKeys returns the raw keys in text, each once, sorted, with what
// they are: "city (field key)".
func findRawKeys(text string) []string {
	keys := rawKeys()
	seen := map[string]bool{}
	var out []string
	for _, w := range word.FindAllString(text, -1) {
		if what, ok := keys[w]; ok && !seen[w] {
			seen[w] = true
			out = append(out, w+" ("+what+")")
		}
	}
	sort.Strings(out)
	return out
}

// checkNoRawKeys fails naming the page and every raw key its rendered text
// shows. Text inside an element marked data-raw (a record shown as the
// evidence it is, such as an audit entry's JSON) is left out by the caller.
func checkNoRawKeys(t *testing.T, page, text string) {
	t.Helper()
	found := findRawKeys(text)
	if len(found) == 0 {
		return
	}
	var where []string
	for _, f := range found {
		key, _, _ := strings.Cut(f, " ")
		i := strings.Index(text, key)
		from, to := max(0, i-30), min(len(text), i+len(key)+30)
		where = append(where, fmt.Sprintf("%s in %q", f, strings.ToValidUTF8(text[from:to], "")))
	}
	t.Errorf("zh-CN page %s shows raw keys:\n\t%s", page, strings.Join(where, "\n\t"))
}

// visibleText is the script that returns the page's rendered text without
// the elements marked data-raw.
const visibleText = `(() => { const els = [...document.querySelectorAll('[data-raw]')];
  const old = els.map(e => e.style.display); els.forEach(e => e.style.display = 'none');
  const s = document.body.innerText; els.forEach((e, i) => e.style.display = old[i]); return s; })()`

// TestFindRawKeys: the scanner itself finds keys as words, not inside
// other words or hyphenated names.
func TestFindRawKeys(t *testing.T) {
	tests := []struct {
		text string
		want string
	}{
		{"您的城市：北京", ""},
		{"字段 city 已更正", "city (field key)"},
		{"类别 user.behavior.browsing_history", "user.behavior.browsing_history (taxonomy key)"},
		{"状态 pending_review", "pending_review (enum value)"},
		{"演示用户 demo-alice · privacy@example.com", ""},
		{"credit_limit, big_spender", "big_spender (label id), credit_limit (use-case id)"},
		{"cityscape", ""},
	}
	for _, tt := range tests {
		if got := strings.Join(findRawKeys(tt.text), ", "); got != tt.want {
			t.Errorf("findRawKeys(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
