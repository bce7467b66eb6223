package catalog

import (
	"strings"
	"testing"
)

// CN-7: the notice names data categories in words people read, in both
// languages; every translated key is a real taxonomy key.
func TestCategoryNames(t *testing.T) {
	for _, line := range strings.Split(categoryNamesZH, "\n") {
		key, _, ok := strings.Cut(line, "\t")
		if ok && !strings.HasPrefix(line, "#") && !KnownCategory(key) {
			t.Errorf("category_names.zh-CN.txt names %q, which fideslang does not have", key)
		}
	}
	for _, key := range Categories() {
		if strings.HasPrefix(key, "user") && CategoryName(key, "zh-CN") == CategoryName(key, "en") {
			t.Errorf("%s has no Chinese name", key)
		}
	}
	tests := []struct{ key, lang, want string }{
		{"user.behavior.browsing_history", "zh-CN", "浏览记录"},
		{"user.behavior.browsing_history", "en", "Browsing History"},
		{"user.nonsense", "en", "user.nonsense"},
	}
	for _, tt := range tests {
		if got := CategoryName(tt.key, tt.lang); got != tt.want {
			t.Errorf("CategoryName(%q, %q) = %q, want %q", tt.key, tt.lang, got, tt.want)
		}
	}
}
