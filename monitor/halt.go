package monitor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
)

// fairnessHalts halts, pending review, every high-tier decision use-case
// whose decisions raised a significant fairness alert — an impact ratio
// below the rule pack's and a p-value below its — in the pack's number of
// consecutive runs (issue 12 §5). Unlike a price escalation this is not
// the company's option (Options.AutoHalt): the threshold is the
// regulator's standard, so the halt goes through Deps.Halter whenever
// one is wired, and is recommended and logged when none is. Streaks live
// in memory, as price streaks do: a restart delays a halt, never causes
// one. An overseer lifts the halt after review (POST …/resume).
func (m *Monitor) fairnessHalts(ctx context.Context, cat *catalog.Catalog, now time.Time, rep *Report) error {
	th := cat.Pack().Alerts.Fairness
	worst := map[string]Alert{}
	for _, u := range rep.Fairness.UseCases {
		uc := cat.UseCase(u.UseCase)
		if u.Audit == nil || uc == nil || uc.Kind != "decision" || uc.Tier != catalog.TierHigh {
			continue
		}
		for _, al := range u.Audit.Alerts {
			if al.Metric != "impact_ratio" || al.Value >= th.ImpactRatio || al.PValue >= th.PValue {
				continue
			}
			if w, ok := worst[uc.ID]; !ok || al.Value < w.Value {
				worst[uc.ID] = Alert{Kind: "fairness", Requirement: "FP-4", Metric: "impact_ratio", Value: al.Value, Threshold: th.ImpactRatio,
					Scope: uc.ID + "/" + al.Group, Message: fmt.Sprintf("p = %.3g", al.PValue), Facts: &Facts{UseCase: uc.ID, Group: al.Group, PValue: &al.PValue}}
			}
		}
	}
	for uc := range m.fairStreaks {
		if _, ok := worst[uc]; !ok {
			delete(m.fairStreaks, uc)
		}
	}
	var recs []audit.Record
	for _, uc := range slices.Sorted(maps.Keys(worst)) {
		m.fairStreaks[uc]++
		runs := m.fairStreaks[uc]
		if runs < th.ConsecutiveRuns {
			continue
		}
		al := worst[uc]
		e := Escalation{Kind: "fairness", Context: al.Scope, Runs: runs, UseCases: []string{uc}, Actions: map[string]string{uc: "recommend_halt"},
			Message: fmt.Sprintf("use-case %s: impact ratio %.3f (%s), below the rule pack's %.2f at p < %g, in %d consecutive runs (at least %d): halted pending review (FP-4)",
				uc, al.Value, al.Message, th.ImpactRatio, th.PValue, runs, th.ConsecutiveRuns)}
		switch _, halted := m.deps.Point.Suspended(haltKind, uc); {
		case halted:
			e.Actions[uc] = "already_halted"
		case m.deps.Halter == nil:
			rep.Notes = append(rep.Notes, "no halter is wired: the fairness halt of "+uc+" is only recommended")
		default:
			reason := fmt.Sprintf("monitor report %s: decisions with impact ratio %.3f for %s (%s) in %d consecutive runs, below the rule pack's thresholds; halted pending review (FP-4)",
				rep.ID, al.Value, al.Scope, al.Message, runs)
			if err := m.deps.Halter.Halt(ctx, autoHalter, uc, reason); err != nil {
				e.Actions[uc] = "halt_failed"
				rep.Notes = append(rep.Notes, fmt.Sprintf("automatic halt of %s failed: %s", uc, portrait.ErrorMessage(err)))
			} else {
				e.Actions[uc] = "halted"
			}
		}
		rep.Escalations = append(rep.Escalations, e)
		recs = append(recs, audit.Record{Kind: "escalation", Time: now, Actor: actor(engine), Action: "unfair_decisions", Codes: []string{"FP-4"},
			Detail: map[string]any{"usecase": uc, "scope": al.Scope, "impact_ratio": al.Value, "runs": runs, "actions": e.Actions, "report": rep.ID,
				"pack_p_value": th.PValue, "pack_impact_ratio": th.ImpactRatio, "pack_runs": th.ConsecutiveRuns}})
	}
	if len(recs) == 0 {
		return nil
	}
	var first int64
	err := m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		first, err = m.deps.Log.Append(ctx, tx, recs...)
		return err
	})
	if err != nil {
		return fmt.Errorf("monitor: record fairness halts: %w", err)
	}
	n := len(rep.Escalations) - len(recs)
	for i := range recs {
		rep.Escalations[n+i].LogIndex = first + int64(i)
	}
	return nil
}
