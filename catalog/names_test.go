package catalog

import (
	"strings"
	"testing"
)

// CN-7: the notice names data categories and uses in words people read, in both
// languages; every translated key is a real taxonomy key.
func TestCategoryNames(t *testing.T) {
	for _, line := range strings.Split(categoryNamesZH, "\n") {
		key, _, ok := strings.Cut(line, "\t")
		if ok && !strings.HasPrefix(line, "#") && !KnownCategory(key) {
			t.Errorf("category_names.zh-CN.txt names %q, which fideslang does not have", key)
		}
	}
	for _, line := range strings.Split(dataUseNamesZH, "\n") {
		key, _, ok := strings.Cut(line, "\t")
		if ok && !strings.HasPrefix(line, "#") && !KnownDataUse(key) {
			t.Errorf("data_use_names.zh-CN.txt names %q, which fideslang does not have", key)
		}
	}
	for _, key := range Categories() {
		if CategoryName(key, "zh-CN") == CategoryName(key, "en") {
			t.Errorf("category %s has no Chinese name", key)
		}
	}
	for _, key := range DataUses() {
		if DataUseName(key, "zh-CN") == DataUseName(key, "en") {
			t.Errorf("data use %s has no Chinese name", key)
		}
	}
	tests := []struct{ key, lang, want string }{
		{"user.behavior.browsing_history", "zh-CN", "浏览记录"},
		{"user.behavior.browsing_history", "en", "Browsing History"},
		{"user.nonsense", "en", "user.nonsense"},
		{"personalize.content.profiling", "zh-CN", "用于个性化的画像"},
		{"personalize.content.profiling", "en", "Profiling for Personalization"},
	}
	for _, tt := range tests {
		got := CategoryName(tt.key, tt.lang)
		if KnownDataUse(tt.key) {
			got = DataUseName(tt.key, tt.lang)
		}
		if got != tt.want {
			t.Errorf("CategoryName(%q, %q) = %q, want %q", tt.key, tt.lang, got, tt.want)
		}
	}
}

// CN-7: a field, purpose or use-case without a display name in zh-CN or
// en loads, with one warning per missing name at its place in the file;
// the names are what pages show, the key when there is none.
func TestDisplayNames(t *testing.T) {
	data := []byte(`handler: {name: {zh-CN: 示例, en: Example}, contact: a@example.com, officer: b@example.com}
purposes:
  - id: service
    title: {zh-CN: 购物服务, en: Shopping}
    basis: contract
    notice: {zh-CN: 提供服务, en: Provide the service}
    notice_version: "1"
    data_use: essential.service
fields:
  - name: city
    title: {zh-CN: 所在城市}
    category: user.location.imprecise
    purposes: [service]
    retention: 30d
  - name: item
    category: user.behavior.browsing_history
    purposes: [service]
    retention: 30d
event_types:
  - id: view
    title: {en: Views}
    fields: [city, item]
`)
	c, err := Parse("t.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.String())
	}
	want := []string{
		`t.yaml:11:12: field "city": no display name in en; pages show the key "city" instead; fix: add title: {zh-CN: …, en: …}, a few words people read [CN-7]`,
		`t.yaml:15:5: field "item": no display name in zh-CN; pages show the key "item" instead; fix: add title: {zh-CN: …, en: …}, a few words people read [CN-7]`,
		`t.yaml:15:5: field "item": no display name in en; pages show the key "item" instead; fix: add title: {zh-CN: …, en: …}, a few words people read [CN-7]`,
		`t.yaml:21:12: event type "view": no display name in zh-CN; pages show the key "view" instead; fix: add title: {zh-CN: …, en: …}, a few words people read [CN-7]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	tests := []struct{ got, want string }{
		{c.FieldName("city", "zh-CN"), "所在城市"},
		{c.FieldName("city", "en"), "所在城市"}, // zh-CN stands in for a missing en
		{c.FieldName("item", "zh-CN"), "item"},
		{c.FieldName("nope", "en"), "nope"},
		{c.PurposeName("service", "en"), "Shopping"},
		{c.UseCaseName("nope", "zh-CN"), "nope"},
		{c.EventTypeName("view", "en"), "Views"},
		{c.DisplayName("view", "zh-CN"), "Views"}, // en stands in for a missing zh-CN
		{c.EventTypeName("price_shown", "zh-CN"), "price_shown"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}
