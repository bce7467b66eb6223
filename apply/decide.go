package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/keys"
	"github.com/portrait-dev/portrait/label"
	"github.com/portrait-dev/portrait/policy"
)

// Decision and review statuses.
const (
	StatusAutomated     = "automated"
	StatusPendingReview = "pending_review"
	StatusUpheld        = "upheld"
	StatusOverturned    = "overturned"
	// StatusModified: a reviewer let the decision stand in direction but
	// changed its terms, stated in the review's reason (采纳、修正或者推翻).
	StatusModified = "modified"
)

// DefaultReviewDeadline is how long a human review may take: PIPL Art. 50
// and GB/T 35273 8.7 ask for an answer to a subject's request within 15
// days (AD-3).
const DefaultReviewDeadline = 15 * 24 * time.Hour

// Counterfactual is the smallest change to one actionable feature that
// would flip the outcome (AD-4).
type Counterfactual struct {
	Field string  `json:"field"`
	From  float64 `json:"from"`
	To    float64 `json:"to"`
}

// Detail is the personal part of a decision, sealed in its record: the
// features it read, what each contributed, the counterfactual, and the
// explanation and notice in zh-CN and en (AD-2, AD-4, AD-7).
type Detail struct {
	Features       map[string]float64 `json:"features"`
	Contributions  map[string]float64 `json:"contributions"`
	Counterfactual *Counterfactual    `json:"counterfactual,omitempty"`
	Explanation    catalog.Text       `json:"explanation"`
	Notice         catalog.Text       `json:"notice"`
}

// Determination is the answer to a decision request. While a human reviews it
// (the subject refused automated processing) Outcome and Score are held
// back from the caller and Status is pending_review.
type Determination struct {
	ID           string   `json:"id"`
	UseCase      string   `json:"usecase"`
	Model        string   `json:"model"`
	ModelVersion int      `json:"model_version"`
	Status       string   `json:"status"`
	Outcome      *bool    `json:"outcome,omitempty"`
	Score        *float64 `json:"score,omitempty"`
	Review       string   `json:"review,omitempty"`
	Detail
	InputHash string `json:"input_hash"`
	LogIndex  int64  `json:"log_index"`
}

func newID(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// decisionAD binds a sealed decision detail to its subject and id.
func decisionAD(p portrait.Pseudonym, id string) []byte { return keys.DecisionAD(p, id) }

// OpenDecision opens the sealed detail of a stored decision.
func OpenDecision(c *keys.Cipher, d portrait.StoredDetermination) (Detail, error) {
	var out Detail
	b, err := c.Open(d.Sealed, decisionAD(d.Pseudonym, d.ID))
	if err != nil {
		return out, fmt.Errorf("open decision %s: %w", d.ID, err)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("decode decision %s: %w", d.ID, err)
	}
	return out, nil
}

// Determine makes one automated decision about the subject's pseudonym
// through a decision use-case (AD-2, AD-4): the gate must let the
// use-case run (RO-9, RO-6, AD-7, AD-5, CN-11), the decision point must
// allow Use of the model's features and label for the use-case's purpose,
// and each feature must be in the subject's profile. The decision, its
// sealed explanation and its audit record are written in one transaction
// (invariant 3). A subject who refused automated decisions for the
// use-case gets a human instead: the record is pending_review with a
// review case opened, and the answer holds no automated outcome (AD-2).
func (s *Service) Determine(ctx context.Context, caller policy.Caller, pseudonym portrait.Pseudonym, usecase string) (Determination, error) {
	if caller.Role != policy.Admin && caller.Role != policy.Operator && caller.Role != policy.System {
		return Determination{}, portrait.Errorf(portrait.EFORBIDDEN, "role %q may not request decisions", caller.Role)
	}
	states, gen, err := s.ledger.StatesAt(ctx, []portrait.Pseudonym{pseudonym})
	if err != nil {
		return Determination{}, err
	}
	st := states[pseudonym]
	var seen int64 // the log size the gate's notice check read, if it did
	uc, err := s.gate(ctx, usecase, KindDecision, st, &seen)
	if err != nil {
		return Determination{}, err
	}
	cat := s.point.Catalog()
	lbl := cat.Label(uc.Model)
	if lbl != nil && lbl.Kind == catalog.KindBGNBD {
		return s.decideForecast(ctx, caller, st, gen, seen, uc, lbl, pseudonym)
	}
	if lbl == nil || lbl.Model == nil {
		return Determination{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "AD-1",
			Message: fmt.Sprintf("use-case %q names model %q, which is not a declared score label with a model", uc.ID, uc.Model)}
	}
	features := make([]string, 0, len(lbl.Model.Weights))
	for f := range lbl.Model.Weights {
		fd := cat.Field(f)
		switch {
		case fd == nil:
			return Determination{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "AD-1", Message: fmt.Sprintf("model %q weighs feature %q, which is not a declared field", lbl.ID, f)}
		case fd.Protected:
			return Determination{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "FP-2", Message: fmt.Sprintf("model %q weighs protected field %q, which may never be a feature", lbl.ID, f)}
		}
		features = append(features, f)
	}
	slices.Sort(features)
	// The subject's opened key is kept at the generation its state was
	// read at: an erasure moves it, and the next request on any node
	// reads the row again and finds none (invariant 4, 5).
	c, err := s.cipher(ctx, gen, pseudonym)
	if err != nil {
		return Determination{}, fmt.Errorf("open key of %s: %w", pseudonym, err)
	}
	if c == nil {
		return Determination{}, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored: there is no profile to decide on", pseudonym)
	}
	dec := s.point.Decide(policy.Request{State: st, Purpose: uc.Purposes[0], Fields: features, Labels: []string{lbl.ID}, Action: policy.Use, Caller: caller})
	if !dec.Allow {
		return Determination{}, dec.Err()
	}
	values, err := s.features(ctx, dec.Grant, c, features)
	if err != nil {
		return Determination{}, err
	}
	model := label.Model(*lbl.Model)
	score, contrib, err := model.Score(values)
	if err != nil {
		return Determination{}, portrait.Errorf(portrait.EINVALID, "model %q: %v", lbl.ID, err)
	}
	outcome := model.Outcome(score)
	var actionable []string
	for _, f := range features {
		if cat.Field(f).Actionable {
			actionable = append(actionable, f)
		}
	}
	var cf *Counterfactual
	if field, to, ok := label.Counterfactual(*lbl.Model, values, actionable); ok {
		cf = &Counterfactual{Field: field, From: values[field], To: to}
	}
	detail := Detail{Features: values, Contributions: contrib, Counterfactual: cf,
		Explanation: explain(uc, lbl, score, outcome, values, contrib, cf), Notice: decisionNotice(uc)}
	return s.record(ctx, caller, seen, uc, lbl, pseudonym, c, dec.Grant, features, score, outcome, detail)
}

// record stores an automated decision with its sealed detail and audit
// record in one transaction (invariant 3), or, when the subject refused
// automated decisions for the use-case, a pending review instead (AD-2).
// seen is the log size the request's gate read for the marks, or 0.
func (s *Service) record(ctx context.Context, caller policy.Caller, seen int64, uc *catalog.UseCase, lbl *catalog.Label, pseudonym portrait.Pseudonym,
	c *keys.Cipher, g policy.Grant, features []string, score float64, outcome bool, detail Detail) (Determination, error) {
	values := detail.Features
	refused, err := s.markedAt(ctx, &seen, markRefusal, pseudonym, uc.ID)
	if err != nil {
		return Determination{}, err
	}
	now := s.now()
	d := Determination{ID: newID("dec_"), UseCase: uc.ID, Model: lbl.ID, ModelVersion: lbl.Version, Status: StatusAutomated, Detail: detail}
	in, _ := json.Marshal(values)
	d.InputHash = hex.EncodeToString(s.keys.IdemHash(pseudonym, "decision-input/"+string(in)))
	sealed, err := json.Marshal(d.Detail)
	if err != nil {
		return Determination{}, fmt.Errorf("encode decision: %w", err)
	}
	rec := portrait.StoredDetermination{Grant: g, ID: d.ID, Pseudonym: pseudonym, UseCase: uc.ID, Model: lbl.ID, ModelVersion: lbl.Version,
		Outcome: outcome, Score: score, InputHash: d.InputHash, Sealed: c.Seal(sealed, decisionAD(pseudonym, d.ID)),
		Status: StatusAutomated, Created: now}
	var review *portrait.Review
	if refused {
		rec.Status, d.Status = StatusPendingReview, StatusPendingReview
		review = &portrait.Review{ID: newID("rev_"), DeterminationID: d.ID, Pseudonym: pseudonym, UseCase: uc.ID, Kind: "refusal",
			Status: "open", Created: now, Deadline: now.Add(DefaultReviewDeadline)}
		d.Review = review.ID
	} else {
		d.Outcome, d.Score = &outcome, &score
	}
	allow := true
	logRec := audit.Record{Kind: "decision", Time: now, Actor: actor(caller), Pseudonym: pseudonym, Purpose: uc.Purposes[0],
		Action: uc.ID, Allow: &allow, Digest: d.InputHash,
		Detail: map[string]any{"id": d.ID, "usecase": uc.ID, "model": lbl.ID, "model_version": lbl.Version, "status": rec.Status, "features": features}}
	err = s.store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		idx, err := s.log.Append(ctx, tx, logRec)
		if err != nil {
			return err
		}
		rec.LogIndex, d.LogIndex = idx, idx
		if err := tx.PutDetermination(ctx, rec); err != nil {
			return err
		}
		if review != nil {
			return tx.PutReview(ctx, *review)
		}
		return nil
	})
	if err != nil {
		return Determination{}, failClosed("record decision", err)
	}
	s.marks.passed(d.LogIndex)
	return d, nil
}

// features opens the model's features from the subject's profile; a
// missing or non-numeric one refuses the decision, naming it.
func (s *Service) features(ctx context.Context, g policy.Grant, c *keys.Cipher, names []string) (map[string]float64, error) {
	prof, err := s.store.Profile(ctx, g)
	if err != nil {
		return nil, failClosed("read profile", err)
	}
	p := g.Pseudonym()
	out := make(map[string]float64, len(names))
	for _, v := range prof {
		if !slices.Contains(names, v.Field) {
			continue
		}
		b, err := c.Open(v.Sealed, keys.ProfileAD(p, v.Field))
		if err != nil {
			return nil, fmt.Errorf("open profile field %s of %s: %w", v.Field, p, err)
		}
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			return nil, fmt.Errorf("decode profile field %s of %s: %w", v.Field, p, err)
		}
		switch n := x.(type) {
		case float64:
			out[v.Field] = n
		case string:
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, portrait.Errorf(portrait.EINVALID, "the subject's %s is %q, not a number the model can use; correct it", v.Field, n)
			}
			out[v.Field] = f
		default:
			return nil, portrait.Errorf(portrait.EINVALID, "the subject's %s is not a number the model can use; correct it", v.Field)
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, portrait.Errorf(portrait.EINVALID, "the subject's profile has no %s, which the model needs; nothing was decided", n)
		}
	}
	return out, nil
}

func fieldName(name string, zh bool) string {
	if zh {
		if t, ok := zhNames[name]; ok {
			return t
		}
	}
	return name
}

// zhNames are Chinese names of common features for explanations; other
// fields keep their declared name.
var zhNames = map[string]string{"income": "收入", "age": "年龄", "city": "城市", "amount": "消费金额", "quantity": "数量", "price": "价格"}

func num(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// explain says, in zh-CN and en, the procedure and principles applied and
// which data counted and how much (AD-4).
func explain(uc *catalog.UseCase, l *catalog.Label, score float64, outcome bool, values, contrib map[string]float64, cf *Counterfactual) catalog.Text {
	names := make([]string, 0, len(contrib))
	for n := range contrib {
		names = append(names, n)
	}
	// Largest effect first, so the reader meets what mattered most.
	slices.SortFunc(names, func(a, b string) int {
		if d := math.Abs(contrib[b]) - math.Abs(contrib[a]); d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	m := l.Model
	var zh, en strings.Builder
	unitZh, unitEn := "分", "points"
	procZh := fmt.Sprintf("评分卡模型：每项数据乘以其权重后与基础分%s相加，得分达到%s即为通过", num(m.Intercept), num(m.Threshold))
	procEn := fmt.Sprintf("a scorecard: each data item times its weight, added to a base of %s; a score of %s or more passes", num(m.Intercept), num(m.Threshold))
	if m.Kind == "logistic" {
		procZh = fmt.Sprintf("逻辑回归模型：每项数据乘以其权重后相加（截距%s），换算为0到1之间的概率，概率达到%s即为通过", num(m.Intercept), num(m.Threshold))
		procEn = fmt.Sprintf("a logistic model: each data item times its weight, summed with an intercept of %s and turned into a probability between 0 and 1; a probability of %s or more passes", num(m.Intercept), num(m.Threshold))
	}
	res := map[bool][2]string{true: {"通过", "positive"}, false: {"未通过", "negative"}}[outcome]
	scoreZh, scoreEn := "您的得分为"+round1(score), "Your score was "+round1(score)
	if m.Kind == "logistic" {
		// A probability reads as a percentage; log-odds do not read at all.
		scoreZh = fmt.Sprintf("按模型估计，您通过的可能性约为 %.0f%%（达到 %.0f%% 即通过）", score*100, m.Threshold*100)
		scoreEn = fmt.Sprintf("The model put your chance of passing at about %.0f%% (%.0f%% or more passes)", score*100, m.Threshold*100)
	}
	fmt.Fprintf(&zh, "本决定由自动化模型「%s」（第%d版）作出，用途为「%s」。方法：%s。%s，结果为%s。", l.Name.In("zh-CN"), l.Version, uc.Description.In("zh-CN"), procZh, scoreZh, res[0])
	fmt.Fprintf(&en, "This decision was made by the automated model %q (version %d) for %q. Procedure: %s. %s, so the outcome is %s.", l.ID, l.Version, uc.Description.In("en"), procEn, scoreEn, res[1])
	zh.WriteString("计入的数据及其影响：")
	en.WriteString(" The data that counted, and how much:")
	total := 0.0
	for _, n := range names {
		total += math.Abs(contrib[n])
	}
	for i, n := range names {
		sep := "；"
		if i == len(names)-1 {
			sep = "。"
		}
		if m.Kind == "logistic" {
			share := 0.0
			if total > 0 {
				share = math.Abs(contrib[n]) / total * 100
			}
			dirZh, dirEn := "提高", "raised"
			if contrib[n] < 0 {
				dirZh, dirEn = "降低", "lowered"
			}
			fmt.Fprintf(&zh, "%s（%s）%s了通过的可能，占全部影响的 %.0f%%%s", fieldName(n, true), num(values[n]), dirZh, share, sep)
			fmt.Fprintf(&en, " %s (%s) %s your chance, %.0f%% of all the influence", n, num(values[n]), dirEn, share)
		} else {
			fmt.Fprintf(&zh, "%s（%s）%s%s%s", fieldName(n, true), num(values[n]), signed1(contrib[n]), unitZh, sep)
			fmt.Fprintf(&en, " %s (%s) counted %s %s", n, num(values[n]), signed1(contrib[n]), unitEn)
		}
		if i < len(names)-1 {
			en.WriteString(";")
		} else {
			en.WriteString(".")
		}
	}
	if cf != nil {
		fmt.Fprintf(&zh, "如果您的%s从%s变为%s，结果将会不同。", fieldName(cf.Field, true), num(cf.From), num(cf.To))
		fmt.Fprintf(&en, " Had your %s been %s instead of %s, the outcome would have been different.", cf.Field, num(cf.To), num(cf.From))
	}
	zh.WriteString("未使用其他个人数据。")
	en.WriteString(" No other personal data was used.")
	return catalog.Text{"zh-CN": zh.String(), "en": en.String()}
}

// round1 writes x rounded to one decimal, without a trailing ".0".
func round1(x float64) string {
	return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64)
}

func signed1(x float64) string {
	if x >= 0 {
		return "+" + round1(x)
	}
	return round1(x)
}

// decisionNotice tells the subject a (high-risk) automated system decided
// and how to get a human (AD-2, AD-3, AD-7).
func decisionNotice(uc *catalog.UseCase) catalog.Text {
	zh := "本决定由自动化系统作出。"
	en := "This decision was made by an automated system."
	if uc.Tier == catalog.TierHigh {
		zh = "本决定由高风险自动化决策系统作出。"
		en = "This decision was made by a high-risk automated decision system."
	}
	zh += "您可以陈述意见并申请人工复核（POST /v1/me/decisions/{id}/appeal），或拒绝对该用途仅通过自动化方式作出决定（PUT /v1/me/usecases/" + uc.ID + "/automation）。"
	en += " You may state your view and ask for human review (POST /v1/me/decisions/{id}/appeal), or refuse purely automated decisions for this use-case (PUT /v1/me/usecases/" + uc.ID + "/automation)."
	return catalog.Text{"zh-CN": zh, "en": en}
}
