package oversight

import (
	"slices"
	"strconv"
	"time"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/rights"
)

// Processing is the record of processing activities (GDPR Art. 30(1);
// FA-4), generated from the loaded catalog.
type Processing struct {
	Lang          string                   `json:"lang"`
	Generated     time.Time                `json:"generated"`
	CatalogDigest string                   `json:"catalog_digest"`
	Version       string                   `json:"catalog_version"`
	Controller    rights.NoticeHandler     `json:"controller"`
	Purposes      []ProcessingPurpose      `json:"purposes"`
	Subjects      []string                 `json:"data_subjects"`
	Categories    []ProcessingCategory     `json:"data_categories"`
	Recipients    []rights.NoticeRecipient `json:"recipients"`
	// Transfers lists transfers to third countries; TransfersText says so
	// in words, also when none are declared.
	Transfers     []string                  `json:"transfers"`
	TransfersText string                    `json:"transfers_text"`
	Security      []string                  `json:"security_measures"`
	Decisions     []ProcessingDetermination `json:"automated_decisions"`

	cat *catalog.Catalog // names the keys on the HTML page
}

// ProcessingPurpose is one purpose with its basis and what it uses.
type ProcessingPurpose struct {
	rights.NoticePurpose
	DataUse    string `json:"data_use"`
	Assessment string `json:"assessment,omitempty"`
}

// ProcessingCategory is one fideslang data category with the fields in it
// and the retention of each.
type ProcessingCategory struct {
	Key       string            `json:"key"`
	Name      string            `json:"name"`
	Sensitive bool              `json:"sensitive"`
	Fields    []ProcessingField `json:"fields"`
}

// ProcessingField is one declared field: its retention and purposes.
type ProcessingField struct {
	Name      string   `json:"name"`
	Retention string   `json:"retention"`
	Purposes  []string `json:"purposes"`
}

// ProcessingDetermination is one automated decision (GDPR Art. 22, 30, 35).
type ProcessingDetermination struct {
	rights.NoticeDetermination
	Model      string            `json:"model,omitempty"`
	Version    int               `json:"model_version,omitempty"`
	Assessment *apply.Assessment `json:"assessment_on_record,omitempty"`
}

func lang(l string) string {
	if l == "en" {
		return "en"
	}
	return "zh-CN"
}

func tr(l, zh, en string) string {
	if l == "en" {
		return en
	}
	return zh
}

// Processing returns the record of processing activities in lang ("zh-CN",
// the default, or "en").
func (s *Service) Processing(l string) Processing {
	l = lang(l)
	cat := s.point.Catalog()
	n := rights.BuildNotice(cat, l, s.opts.ReportDeadline)
	p := Processing{cat: cat, Lang: l, Generated: s.now(), CatalogDigest: catalogDigest(cat), Version: cat.Version, Controller: n.Handler,
		Purposes: []ProcessingPurpose{}, Categories: []ProcessingCategory{}, Recipients: n.Recipients, Transfers: []string{},
		Decisions: []ProcessingDetermination{}}
	for _, np := range n.Purposes {
		cp := cat.Purpose(np.ID)
		p.Purposes = append(p.Purposes, ProcessingPurpose{NoticePurpose: np, DataUse: cp.DataUse, Assessment: cp.Assessment})
	}
	p.Subjects = []string{tr(l, "本服务的用户（消费者）", "Users of the service (consumers)")}
	if cat.AgeField() != nil {
		p.Subjects = append(p.Subjects, tr(l, "其中可能包括未满十四周岁的未成年人：经监护人同意后处理，并适用未成年人保护规则",
			"possibly including minors under 14, processed with a guardian's consent and under the minors rules"))
	}
	for _, nc := range n.Categories {
		c := ProcessingCategory{Key: nc.Category, Name: nc.Name, Sensitive: nc.Sensitive}
		for _, name := range nc.Fields {
			f := cat.Field(name)
			c.Fields = append(c.Fields, ProcessingField{Name: f.Name, Retention: retention(f.Retention, l), Purposes: f.Purposes})
		}
		p.Categories = append(p.Categories, c)
	}
	p.TransfersText = tr(l, "目录未声明任何向境外（第三国或国际组织）提供个人信息的情形；所有处理均在处理者境内进行。",
		"The catalog declares no transfer of personal data to a third country or an international organisation.")
	p.Security = securityMeasures(s, l)
	for _, d := range n.Decisions {
		u := cat.UseCase(d.UseCase)
		pd := ProcessingDetermination{NoticeDetermination: d, Model: u.Model}
		if m := cat.Label(u.Model); m != nil {
			pd.Version = m.Version
		}
		if s.apply != nil {
			if a, ok := s.apply.Assessment(u.ID); ok {
				pd.Assessment = &a
			}
		}
		p.Decisions = append(p.Decisions, pd)
	}
	return p
}

// securityMeasures states the technical and organisational measures
// (GDPR Art. 30(1)(g), 32) from what this installation actually runs.
func securityMeasures(s *Service, l string) []string {
	return []string{
		tr(l, "信封加密：每位用户的数据用其独有的 AES-256-GCM 数据密钥加密，数据密钥由主密钥包裹；删除即销毁密钥（加密擦除）。",
			"Envelope encryption: each subject's data is sealed with their own AES-256-GCM data key, wrapped by the master key; erasure destroys the key (crypto-shredding)."),
		tr(l, "去标识化：存储与日志中的用户以 HMAC-SHA256 密钥化假名出现，原始标识仅以加密形式保存。",
			"Pseudonymisation: subjects appear in the store and the log as keyed HMAC-SHA256 pseudonyms; their ids are kept only sealed."),
		tr(l, "防篡改审计日志：每项决定写入 Merkle 树日志（"+s.log.Origin()+"），签名检查点、包含与一致性证明可供外部离线验证；日志不删除。",
			"Tamper-evident audit log: every decision is appended to a Merkle-tree log ("+s.log.Origin()+") with signed checkpoints and inclusion and consistency proofs that outsiders verify offline; the log is never pruned."),
		tr(l, "访问控制：按角色（管理员、运营、复核员、审计员、监管员）默认拒绝；所有个人数据访问须经策略决策点授权并记录。",
			"Access control: deny by default by role (admin, operator, reviewer, auditor, regulator); every access to personal data needs a grant from the policy decision point and is logged."),
		tr(l, "失败即关闭：审计日志无法记录的操作不会执行。", "Fail closed: an action the audit log cannot record does not happen."),
	}
}

func retention(d catalog.Duration, l string) string {
	td := time.Duration(d)
	day := 24 * time.Hour
	switch {
	case td >= 365*day && td%(365*day) == 0:
		return strconv.FormatInt(int64(td/(365*day)), 10) + tr(l, "年", " years")
	case td%day == 0:
		return strconv.FormatInt(int64(td/day), 10) + tr(l, "天", " days")
	}
	return td.String()
}

func sortedSet(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}
