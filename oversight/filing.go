package oversight

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/portrait-dev/portrait/apply"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/rights"
)

// Filing is the algorithm filing record (算法备案, ARR Art. 24; FA-3),
// generated from the loaded catalog, the assessments on record and the
// catalog records of the audit log.
type Filing struct {
	Lang           string               `json:"lang"`
	Generated      time.Time            `json:"generated"`
	CatalogDigest  string               `json:"catalog_digest"`
	Version        string               `json:"catalog_version"`
	Provider       rights.NoticeHandler `json:"provider"`
	ServiceForms   []string             `json:"service_forms"`
	Fields         []string             `json:"application_fields"`
	Algorithms     []FilingAlgorithm    `json:"algorithms"`
	SelfAssessment []FilingAssessment   `json:"self_assessment"`
	Public         []FilingDescription  `json:"public_description"`
	History        []FilingChange       `json:"history"`

	cat *catalog.Catalog // names the keys on the HTML page
}

// FilingAlgorithm is one algorithm: a use-case (recommendation, audience,
// decision) or a label (rule, segment, score, rfm).
type FilingAlgorithm struct {
	ID   string `json:"id"`
	Of   string `json:"of"` // use_case or label
	Kind string `json:"kind"`
	Type string `json:"algorithm_type"`
	// Rule is a rule label's CEL condition, as declared.
	Rule      string   `json:"rule,omitempty"`
	Inputs    []string `json:"inputs"`
	Purposes  []string `json:"purposes"`
	Tier      string   `json:"tier,omitempty"`
	Version   int      `json:"version,omitempty"`
	Owner     string   `json:"owner,omitempty"`
	Sensitive bool     `json:"sensitive,omitempty"`
}

// FilingAssessment is the self-assessment of one use-case: its risk tier
// and the impact assessment on record, if any.
type FilingAssessment struct {
	UseCase  string    `json:"usecase"`
	Tier     string    `json:"tier"`
	Required bool      `json:"assessment_required"`
	Summary  string    `json:"summary"`
	Created  time.Time `json:"assessed,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	Config   string    `json:"config_digest,omitempty"`
	LogIndex *int64    `json:"log_index,omitempty"`
}

// FilingDescription is the public, plain-language description of one
// recommender or decision: principle, purpose and main mechanism (LP-6).
type FilingDescription struct {
	UseCase   string   `json:"usecase"`
	Kind      string   `json:"kind"`
	Principle string   `json:"principle"`
	Purposes  []string `json:"purposes"`
	Mechanism string   `json:"mechanism"`
}

// FilingChange is one catalog the system ran with, from its audit record,
// and what changed against the one before.
type FilingChange struct {
	Date     time.Time `json:"date"`
	LogIndex int64     `json:"log_index"`
	Digest   string    `json:"catalog_digest"`
	Version  string    `json:"catalog_version"`
	Added    []string  `json:"added"`
	Removed  []string  `json:"removed"`
	Changed  []string  `json:"changed"`
}

// Filing returns the algorithm filing record in lang ("zh-CN", the default,
// or "en"). It first records the loaded catalog if it is new, so the
// history always ends with the catalog the record describes.
func (s *Service) Filing(ctx context.Context, l string) (Filing, error) {
	l = lang(l)
	if err := s.RecordCatalog(ctx); err != nil {
		return Filing{}, err
	}
	size, err := s.store.LogSize(ctx)
	if err != nil {
		return Filing{}, fmt.Errorf("filing: log size: %w", err)
	}
	if err := s.scanCatalogs(ctx, size); err != nil {
		return Filing{}, err
	}
	cat := s.point.Catalog()
	n := rights.BuildNotice(cat, l, s.opts.ReportDeadline)
	f := Filing{cat: cat, Lang: l, Generated: s.now(), CatalogDigest: catalogDigest(cat), Version: cat.Version, Provider: n.Handler,
		ServiceForms: []string{}, Fields: []string{}, Algorithms: []FilingAlgorithm{}, SelfAssessment: []FilingAssessment{},
		Public: []FilingDescription{}, History: changes(s.history())}
	forms := map[string]bool{}
	var fields []string
	for _, u := range cat.UseCases {
		forms[serviceForm(u.Kind, l)] = true
		fields = append(fields, u.Tags...)
		for _, id := range u.Purposes {
			if p := cat.Purpose(id); p != nil && p.DataUse != "" {
				fields = append(fields, p.DataUse)
			}
		}
		a := FilingAlgorithm{ID: u.ID, Of: "use_case", Kind: u.Kind, Type: useCaseAlgorithm(cat, u, l), Purposes: u.Purposes,
			Tier: u.Tier, Owner: u.Owner, Inputs: useCaseInputs(cat, u)}
		f.Algorithms = append(f.Algorithms, a)
		f.SelfAssessment = append(f.SelfAssessment, s.selfAssessment(u, l))
	}
	for _, lb := range cat.Labels {
		f.Algorithms = append(f.Algorithms, FilingAlgorithm{ID: lb.ID, Of: "label", Kind: lb.Kind, Type: labelAlgorithm(cat, lb, l), Rule: lb.Rule,
			Inputs: lb.Fields(), Purposes: lb.Purposes, Version: lb.Version, Owner: lb.Owner, Sensitive: lb.Sensitive})
	}
	f.ServiceForms = slices.Sorted(maps.Keys(forms))
	f.Fields = sortedSet(fields)
	purposeText := func(ids []string) []string {
		out := []string{}
		for _, id := range ids {
			if p := cat.Purpose(id); p != nil {
				out = append(out, p.Notice.In(l))
			}
		}
		return out
	}
	for _, r := range n.Recommenders {
		f.Public = append(f.Public, FilingDescription{UseCase: r.UseCase, Kind: r.Kind, Principle: r.Text, Purposes: purposeText(r.Purposes), Mechanism: r.Mechanism})
	}
	for _, d := range n.Decisions {
		f.Public = append(f.Public, FilingDescription{UseCase: d.UseCase, Kind: "decision", Principle: d.Text, Purposes: purposeText(d.Purposes),
			Mechanism: d.Logic + tr(l, "。", ". ") + d.Consequences})
	}
	return f, nil
}

// serviceForm names the ARR Art. 2 class of a use-case kind.
func serviceForm(kind, l string) string {
	switch kind {
	case apply.KindRecommendation:
		return tr(l, "个性化推送类", "personalised push")
	case apply.KindAudience:
		return tr(l, "个性化推送类（定向营销人群）", "personalised push (targeted marketing audiences)")
	case apply.KindDecision:
		return tr(l, "调度决策类", "scheduling and decision-making")
	}
	return kind
}

func useCaseAlgorithm(cat *catalog.Catalog, u catalog.UseCase, l string) string {
	switch u.Kind {
	case apply.KindRecommendation:
		return tr(l, "推荐混合：商品热度与标签亲和度加权排序，受多样性约束与用户个性化程度设定限制",
			"recommendation blend: item popularity and label affinity, bounded by diversity rules and each user's personalisation setting")
	case apply.KindAudience:
		return tr(l, "人群圈选：按已登记标签的条件筛选，默认输出去标识化或汇总结果",
			"audience selection: a condition over registered labels; de-identified or aggregated output by default")
	case apply.KindDecision:
		if m := cat.Label(u.Model); m != nil && m.Model != nil {
			return fmt.Sprintf(tr(l, "自动化决策：%s 模型（标签 %s，版本 %d），阈值 %g，可解释并可申请人工复核",
				"automated decision: %s model (label %s, version %d), threshold %g, explained and open to human review"),
				catalog.ModelKindName(m.Model.Kind, l), cat.LabelName(m.ID, l), m.Version, m.Model.Threshold)
		}
		return tr(l, "自动化决策", "automated decision")
	}
	return u.Kind
}

// labelAlgorithm says what a label computes; a rule label's condition is
// its Rule, shown as written.
func labelAlgorithm(cat *catalog.Catalog, lb catalog.Label, l string) string {
	switch lb.Kind {
	case catalog.KindRule:
		return tr(l, "规则（对事件与聚合的 CEL 条件，见下）", "rule (a CEL condition over events and aggregates, below)")
	case catalog.KindSegment:
		names := make([]string, len(lb.Features))
		for i, f := range lb.Features {
			names[i] = cat.FieldName(f, l)
		}
		return fmt.Sprintf(tr(l, "分群：k-means++ 聚类，k=%d，特征 %s", "segment: k-means++ clustering, k=%d, features %s"), lb.K, strings.Join(names, tr(l, "、", ", ")))
	case catalog.KindScore:
		if lb.Model != nil {
			return fmt.Sprintf(tr(l, "评分：%s 模型，阈值 %g", "score: %s model, threshold %g"), catalog.ModelKindName(lb.Model.Kind, l), lb.Model.Threshold)
		}
		return tr(l, "评分", "score")
	case catalog.KindRFM:
		return tr(l, "RFM 分层：最近购买、购买频次、消费金额", "RFM tiers: recency, frequency and monetary value")
	case catalog.KindBGNBD:
		return fmt.Sprintf(tr(l, "购买预测：BG/NBD 模型（Fader、Hardie、Lee 2005），按周计，读取“%s”事件的时间，预测期 %s",
			"purchase forecast: the BG/NBD model (Fader, Hardie & Lee 2005) in weeks, reading the times of %q events, horizon %s"), cat.EventTypeName(lb.Event, l), lb.Horizon)
	}
	return lb.Kind
}

func useCaseInputs(cat *catalog.Catalog, u catalog.UseCase) []string {
	in := slices.Clone(u.Fields)
	for _, id := range append(slices.Clone(u.Labels), u.Model) {
		if lb := cat.Label(id); lb != nil {
			in = append(in, lb.Fields()...)
		}
	}
	return append([]string{}, sortedSet(in)...)
}

// selfAssessment states the tier of a use-case, what the tier requires
// (RO-9) and the assessment on record.
func (s *Service) selfAssessment(u catalog.UseCase, l string) FilingAssessment {
	fa := FilingAssessment{UseCase: u.ID, Tier: u.Tier, Required: u.Tier == catalog.TierHigh || u.Kind == apply.KindDecision}
	switch u.Tier {
	case catalog.TierProhibited:
		fa.Summary = tr(l, "禁止类用途：系统拒绝运行。", "Prohibited use: the system refuses to run it.")
	case catalog.TierHigh:
		fa.Summary = tr(l, "高风险：须事前影响评估、解释、人工复核与公平性监测。", "High risk: needs a prior impact assessment, explanation, human review and fairness monitoring.")
	case catalog.TierLimited:
		fa.Summary = tr(l, "有限风险：须告知与透明。", "Limited risk: needs notice and transparency.")
	default:
		fa.Summary = tr(l, "低风险：仅记录日志。", "Minimal risk: runs with logging only.")
	}
	if s.apply == nil {
		return fa
	}
	if a, ok := s.apply.Assessment(u.ID); ok {
		fa.Created, fa.Expires, fa.Config = a.Created, a.Expires, a.Config
		idx := a.LogIndex
		fa.LogIndex = &idx
	} else if fa.Required {
		fa.Summary += tr(l, "尚无影响评估记录，用途上线前须完成评估。", " No impact assessment is on record; the use-case cannot go live until one is.")
	}
	return fa
}

// changes turns the catalog records into dated changes: what each added,
// removed or changed against the one before (the first adds everything).
func changes(recs []catalogRecord) []FilingChange {
	out := []FilingChange{}
	var prev map[string]string
	for _, r := range recs {
		c := FilingChange{Date: r.Time, LogIndex: r.Index, Digest: r.Digest, Version: r.Version, Added: []string{}, Removed: []string{}, Changed: []string{}}
		for _, k := range slices.Sorted(maps.Keys(r.Declarations)) {
			old, ok := prev[k]
			switch {
			case !ok:
				c.Added = append(c.Added, k)
			case old != r.Declarations[k]:
				c.Changed = append(c.Changed, k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(prev)) {
			if _, ok := r.Declarations[k]; !ok {
				c.Removed = append(c.Removed, k)
			}
		}
		prev = r.Declarations
		out = append(out, c)
	}
	return out
}
