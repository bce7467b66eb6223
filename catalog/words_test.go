package catalog_test

import (
	"strings"
	"testing"

	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/examples/demo"
	"github.com/portrait-dev/portrait/label"
)

// TestChangeWords: a catalog change is said to people in Chinese first,
// declarations, data uses and categories by their names, not their keys;
// English on request; a change recorded before edits existed still reads.
func TestChangeWords(t *testing.T) {
	cat, err := catalog.Parse(demo.CatalogName, demo.Catalog, label.Check)
	if err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(string(demo.Catalog), `    data_use: personalize.content.profiling
    notice_version: "1"`, `    data_use: personalize.content.profiling
    recipients: [ads.example.com]
    separate_consent: true
    notice_version: "1"`, 1)
	changed, err := catalog.Parse(demo.CatalogName, []byte(src), label.Check)
	if err != nil {
		t.Fatal(err)
	}
	chs := catalog.DiffScopes(cat.Scopes(), changed)
	if len(chs) != 1 || len(chs[0].Edits) != 2 {
		t.Fatalf("diff: %+v", chs)
	}
	purpose := changed.PurposeName(chs[0].ID, "zh-CN")
	for _, c := range []struct {
		name, lang string
		ch         catalog.Change
		want, not  []string
	}{
		{"purpose zh", "zh-CN", chs[0], []string{"处理目的「" + purpose + "」：", "单独同意 不需要 → 需要", "接收方 无 → ads.example.com", "须发布新的告知版本"}, []string{chs[0].ID, "recipients", "notice_version"}},
		{"purpose en", "en", chs[0], []string{"recipients none → ads.example.com", "needs a new notice version"}, []string{"接收方"}},
		{"label zh", "zh-CN", catalog.Change{Kind: "label", ID: "sports_fan", What: "changed", Needs: catalog.NeedsApproval}, []string{"标签「运动爱好者」：定义已修改；须由作者以外的具名人员批准"}, []string{"sports_fan"}},
		{"use-case added en", "en", catalog.Change{Kind: "use_case", ID: "credit_limit", What: "added"}, []string{"use-case “", "”: added"}, []string{"credit_limit"}},
		{"data use by name", "zh-CN", catalog.Change{Kind: "purpose", ID: "x", Edits: []catalog.Edit{{Aspect: "data_use", Was: []string{"marketing.advertising"}, Is: []string{"personalize"}}}},
			[]string{"数据用途 " + catalog.DataUseName("marketing.advertising", "zh-CN") + " → " + catalog.DataUseName("personalize", "zh-CN")}, []string{"marketing.advertising"}},
		{"old record", "zh-CN", catalog.Change{Kind: "purpose", ID: "x", What: "basis consent → contract"}, []string{"处理目的「x」：basis consent → contract"}, nil},
	} {
		got := c.ch.Words(c.lang, changed)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
		for _, w := range c.not {
			if strings.Contains(got, w) {
				t.Errorf("%s: %q shows the key %q", c.name, got, w)
			}
		}
	}
}
