package fairness

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Phrase is the Chinese of a note written in English: a pattern of the
// English, its Chinese with $1… for the parts the pattern captures, and
// which of those parts are keys (a field, a label, a model) to be said by
// their display names.
type Phrase struct {
	Re   *regexp.Regexp
	Zh   string
	Keys []int
}

// Phrases are the notes and reasons this package writes.
var Phrases = []Phrase{
	{regexp.MustCompile(`^more than (\d+) distinct values: not tested \(an identifier cannot be judged by association\)$`), "取值超过 $1 种：未检测（标识符无法按关联度判断）", nil},
	{regexp.MustCompile(`^fewer than two values on one side: no association to measure$`), "一侧取值少于两种：无法衡量关联", nil},
	{regexp.MustCompile(`^constant feature: no association to measure$`), "该特征取值恒定：无法衡量关联", nil},
	{regexp.MustCompile(`^association ([0-9.]+) above ([0-9.]+): treat "([^"]*)" as sensitive until a reviewer clears it$`), "关联度 $1 高于 $2：在复核员解除之前，“$3”按敏感信息处理", []int{3}},
	{regexp.MustCompile(`^(\d+) of (\d+) decisions \(([^)]*)\) is under the minimum share (.+)$`), "$2 个决定中只有 $1 个（$3），低于最低占比 $4", nil},
	{regexp.MustCompile(`^share (.+?) is under the minimum (.+?): left out of impact ratios and differences \(FP-3\)$`), "占比 $1 低于最低占比 $2：不计入影响比和差值（FP-3）", nil},
	{regexp.MustCompile(`^scores were given without outcomes; calibration needs both and is left out$`), "只有评分没有真实结果：校准需要两者，因此省略", nil},
	{regexp.MustCompile(`^(\d+) of (\d+) decisions have no known outcome; error rates count only the (\d+) that do$`), "$2 个决定中有 $1 个没有已知结果；错误率只按有结果的 $3 个计算", nil},
	{regexp.MustCompile(`^(\d+) decisions with an outcome have no score and are left out of calibration$`), "$1 个有结果的决定没有评分，未纳入校准", nil},
	{regexp.MustCompile(`^calibration lists only score bands with members$`), "校准只列出有成员的评分区间", nil},
	{regexp.MustCompile(`^(\d+) of (\d+) possible combinations have no members and are not listed$`), "$2 种可能的组合中有 $1 种没有成员，未列出", nil},
	{regexp.MustCompile(`^no actual negatives: false-positive rate undefined \(null\)$`), "没有实际为否的样本：假阳性率无定义", nil},
	{regexp.MustCompile(`^no actual positives: false-negative and true-positive rates undefined \(null\)$`), "没有实际为是的样本：假阴性率和真阳性率无定义", nil},
	{regexp.MustCompile(`^every group is under the minimum share (.+?); no impact ratios$`), "每个群体的占比都低于 $1：没有影响比", nil},
	{regexp.MustCompile(`^no group has any selection; impact ratios undefined \(null\)$`), "没有任何群体获得有利结果：影响比无定义", nil},
	{regexp.MustCompile(`^fewer than two groups are compared: demographic-parity difference undefined \(null\)$`), "参与比较的群体少于两个：人口均等差无定义", nil},
	{regexp.MustCompile(`^fewer than two compared groups have actual positives: equal-opportunity difference undefined \(null\)$`), "有实际为是样本的群体少于两个：机会均等差无定义", nil},
}

// Say says a note in lang (zh-CN unless "en") by the first phrase of
// lists that matches it, keys by names (nil keeps them); a note no phrase
// matches, or any note in English, is returned as written.
func Say(lang, note string, names func(string) string, lists ...[]Phrase) string {
	if lang == "en" || note == "" {
		return note
	}
	for _, list := range lists {
		for _, p := range list {
			m := p.Re.FindStringSubmatch(note)
			if m == nil {
				continue
			}
			out := p.Zh
			// Replace the highest group first, so $1 does not eat $10.
			for i := len(m) - 1; i >= 1; i-- {
				v := m[i]
				if names != nil && containsInt(p.Keys, i) {
					v = names(v)
				}
				out = strings.ReplaceAll(out, "$"+strconv.Itoa(i), v)
			}
			return out
		}
	}
	return note
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// Say is the alert in lang (zh-CN unless "en"); the attributes are said by
// names (nil keeps them). Message stays the English sentence.
func (a Alert) Say(lang string, names func(string) string) string {
	if lang == "en" {
		return a.Message
	}
	if names == nil {
		names = func(k string) string { return k }
	}
	attrs := make([]string, len(a.Attributes))
	for i, at := range a.Attributes {
		attrs[i] = names(at)
	}
	test, sig := "双比例 z 检验", "在 5% 水平上不显著"
	if a.Test == TestFisher {
		test = "Fisher 精确检验"
	}
	if a.Significant {
		sig = "在 5% 水平上显著"
	}
	return fmt.Sprintf("%s为“%s”的分组，选中率只有参照组“%s”的 %.3f（低于 %.2f）；%s p = %s，%s",
		strings.Join(attrs, Sep), a.Group, a.Reference, a.Value, a.Threshold, test, fmtP(a.PValue), sig)
}
