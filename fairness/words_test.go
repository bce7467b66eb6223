package fairness

import (
	"regexp"
	"strings"
	"testing"
)

// TestSay: every note the package writes has a Chinese phrase, the keys
// it names are said by name, English stays as written, and a note no
// phrase knows is shown as it is.
func TestSay(t *testing.T) {
	names := func(k string) string { return map[string]string{"income": "收入"}[k] }
	tests := []struct{ note, want string }{
		{`association 0.812 above 0.30: treat "income" as sensitive until a reviewer clears it`, "关联度 0.812 高于 0.30：在复核员解除之前，“收入”按敏感信息处理"},
		{"3 of 200 decisions (1.5 %) is under the minimum share 2.0 %", "200 个决定中只有 3 个（1.5 %），低于最低占比 2.0 %"},
		{"share 1.5 % is under the minimum 2.0 %: left out of impact ratios and differences (FP-3)", "占比 1.5 % 低于最低占比 2.0 %：不计入影响比和差值（FP-3）"},
		{"scores were given without outcomes; calibration needs both and is left out", "只有评分没有真实结果：校准需要两者，因此省略"},
		{"12 of 40 decisions have no known outcome; error rates count only the 28 that do", "40 个决定中有 12 个没有已知结果；错误率只按有结果的 28 个计算"},
		{"4 decisions with an outcome have no score and are left out of calibration", "4 个有结果的决定没有评分，未纳入校准"},
		{"calibration lists only score bands with members", "校准只列出有成员的评分区间"},
		{"2 of 6 possible combinations have no members and are not listed", "6 种可能的组合中有 2 种没有成员，未列出"},
		{"no actual negatives: false-positive rate undefined (null)", "没有实际为否的样本：假阳性率无定义"},
		{"no actual positives: false-negative and true-positive rates undefined (null)", "没有实际为是的样本：假阴性率和真阳性率无定义"},
		{"every group is under the minimum share 2.0 %; no impact ratios", "每个群体的占比都低于 2.0 %：没有影响比"},
		{"no group has any selection; impact ratios undefined (null)", "没有任何群体获得有利结果：影响比无定义"},
		{"fewer than two groups are compared: demographic-parity difference undefined (null)", "参与比较的群体少于两个：人口均等差无定义"},
		{"fewer than two compared groups have actual positives: equal-opportunity difference undefined (null)", "有实际为是样本的群体少于两个：机会均等差无定义"},
		{"more than 50 distinct values: not tested (an identifier cannot be judged by association)", "取值超过 50 种：未检测（标识符无法按关联度判断）"},
		{"fewer than two values on one side: no association to measure", "一侧取值少于两种：无法衡量关联"},
		{"constant feature: no association to measure", "该特征取值恒定：无法衡量关联"},
		{"something new", "something new"},
	}
	for _, tt := range tests {
		if got := Say("zh-CN", tt.note, names, Phrases); got != tt.want {
			t.Errorf("Say(%q) = %q, want %q", tt.note, got, tt.want)
		}
		if got := Say("en", tt.note, names, Phrases); got != tt.note {
			t.Errorf("Say(en, %q) = %q", tt.note, got)
		}
	}
}

// TestAlertSay: a fairness alert in Chinese names the attribute by its
// name and keeps the figures; in English it is the message.
func TestAlertSay(t *testing.T) {
	a := Alert{Group: "female", Attributes: []string{"gender"}, Reference: "male", Metric: "impact_ratio", Value: 0.5, Threshold: 0.8,
		Test: TestFisher, PValue: 0.01, Significant: true, Message: "female: selection rate …"}
	got := a.Say("zh-CN", func(k string) string { return map[string]string{"gender": "性别"}[k] })
	if want := "性别为“female”的分组，选中率只有参照组“male”的 0.500（低于 0.80）；Fisher 精确检验 p = 0.0100，在 5% 水平上显著"; got != want {
		t.Errorf("zh-CN: %q, want %q", got, want)
	}
	if regexp.MustCompile(`selection|rate`).MatchString(got) {
		t.Errorf("English left in %q", got)
	}
	if got := a.Say("en", nil); !strings.HasPrefix(got, "female: selection rate") {
		t.Errorf("en: %q", got)
	}
}
