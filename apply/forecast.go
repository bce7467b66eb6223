package apply

import (
	"context"
	"fmt"
	"math"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/derive"
	"github.com/portrait-dev/portrait/policy"
)

// decideForecast decides through a purchase forecast (a bgnbd label): the
// outcome is whether the subject is still an active customer, P(alive) of
// at least one half, on the subject's stored forecast of the declared
// version. It reads nothing but that label, through a Use grant for the
// use-case's purpose naming it (LP-3, CN-4), and is recorded, explained
// and appealable like every decision (AD-2, AD-4).
//
// gen is the generation st was read at; the subject's key is kept for it
// (cipher), as a recommendation's is; seen is the log size its gate read for the
// marks, or 0 (record).
func (s *Service) decideForecast(ctx context.Context, caller policy.Caller, st *policy.State, gen, seen int64, uc *catalog.UseCase, lbl *catalog.Label, pseudonym portrait.Pseudonym) (Determination, error) {
	c, err := s.cipher(ctx, gen, pseudonym)
	if err != nil {
		return Determination{}, fmt.Errorf("open key of %s: %w", pseudonym, err)
	}
	if c == nil {
		return Determination{}, portrait.Errorf(portrait.ENOTFOUND, "subject %s is not stored: there is no forecast to decide on", pseudonym)
	}
	dec := s.point.Decide(policy.Request{State: st, Purpose: uc.Purposes[0], Labels: []string{lbl.ID}, Action: policy.Use, Caller: caller})
	if !dec.Allow {
		return Determination{}, dec.Err()
	}
	lvs, err := s.store.Labels(ctx, dec.Grant)
	if err != nil {
		return Determination{}, failClosed("read labels", err)
	}
	var v *derive.Stored
	for _, lv := range lvs {
		if lv.Label != lbl.ID {
			continue
		}
		o, err := derive.Open(c, lv)
		if err != nil {
			return Determination{}, err
		}
		v = &o
	}
	if v == nil || v.Forecast == nil || v.Version != lbl.Version {
		return Determination{}, &portrait.Error{Code: portrait.EINVALID, Requirement: "AD-1",
			Message: fmt.Sprintf("the subject has no current %q forecast (version %d); nothing was decided — run derivation first", lbl.ID, lbl.Version)}
	}
	f := v.Forecast
	values := map[string]float64{"purchases": float64(f.Purchases), "weeks_since_first": f.Summary.T,
		"weeks_since_last": f.Summary.T - f.Summary.TX, "p_alive": f.Alive, "expected_purchases": f.Expected}
	outcome := f.Alive >= 0.5
	res := map[bool][2]string{true: {"通过（仍是活跃顾客）", "positive (still an active customer)"}, false: {"未通过（可能已不再购买）", "negative (may have stopped buying)"}}[outcome]
	why := v.Explain("zh-CN", lbl)
	whyEn := v.Explain("en", lbl)
	expl := catalog.Text{
		"zh-CN": fmt.Sprintf("本决定由自动化模型「%s」（第%d版，BG/NBD 模型，以周为单位）作出，用途为「%s」。方法：根据您的购买次数和最近一次购买距今的时间，结合全部顾客的购买规律，估计您仍是活跃顾客的概率，达到50%%即为通过。您的概率约为%.0f%%，结果为%s。%s 计入的数据仅为您的购买时间，未使用其他个人数据。",
			lbl.Name.In("zh-CN"), lbl.Version, uc.Description.In("zh-CN"), 100*f.Alive, res[0], why),
		"en": fmt.Sprintf("This decision was made by the automated model %q (version %d, the BG/NBD model, in weeks) for %q. Procedure: from how many times and how recently you bought, and the purchase patterns of all customers, it estimates the probability that you are still an active customer; 50%% or more passes. Yours is about %.0f%%, so the outcome is %s. %s Only the times of your purchases counted; no other personal data was used.",
			lbl.ID, lbl.Version, uc.Description.In("en"), 100*f.Alive, res[1], whyEn),
	}
	// What counted, in log-odds of being active: P(alive) = 1/(1 + e^(−k))
	// with k = −ln(a/(b+x−1)) from the purchase count and
	// −(r+x)·ln((α+T)/(α+tₓ)) from the weeks since the last purchase. A
	// customer with no repeat purchase is active by the model's assumption.
	contrib := map[string]float64{}
	if x := float64(f.Summary.X); x > 0 {
		pp := f.Params
		contrib["purchases"] = -math.Log(pp.A / (pp.B + x - 1))
		contrib["weeks_since_last"] = -(pp.R + x) * math.Log((pp.Alpha+f.Summary.T)/(pp.Alpha+f.Summary.TX))
	}
	if math.IsNaN(f.Alive) {
		return Determination{}, portrait.Errorf(portrait.EINVALID, "forecast %q: no probability", lbl.ID)
	}
	detail := Detail{Features: values, Contributions: contrib, Explanation: expl, Notice: decisionNotice(uc)}
	return s.record(ctx, caller, seen, uc, lbl, pseudonym, c, dec.Grant, []string{"event:" + lbl.Event}, f.Alive, outcome, detail)
}
