package monitor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	portrait "github.com/portrait-dev/portrait"
	"github.com/portrait-dev/portrait/audit"
	"github.com/portrait-dev/portrait/catalog"
	"github.com/portrait-dev/portrait/policy"
)

// priceKey is an item shown in a context: the unit a price alert repeats on.
type priceKey struct{ item, context string }

// pricingTags mark use-cases that set prices or terms (as the catalog's
// FP-1 check reads them).
var pricingTags = []string{"pricing", "terms"}

// haltKind is the suspension kind of an overseer's halt (apply.KindHalt;
// apply is not imported, see Deps.Halter).
const haltKind = "halt"

// autoHalter is who an automatic halt is recorded as: the monitor acting
// on the standing instruction an overseer gave by setting AutoHalt.
var autoHalter = policy.Caller{Role: policy.Admin, ID: "monitor-autohalt"}

// Escalation is a price alert that kept coming back (FP-1): the pricing
// use-cases that may show the price are to be halted, or were.
type Escalation struct {
	// Kind is price or fairness (a high-tier decision use-case whose
	// impact ratio stayed significantly low; Context is then the group).
	Kind     string   `json:"kind"`
	Item     string   `json:"item"`
	Context  string   `json:"context"`
	Runs     int      `json:"consecutive_runs"`
	UseCases []string `json:"usecases"`
	// Action: recommend_halt, halted, already_halted, halt_failed, or
	// none when no pricing use-case is declared.
	Actions  map[string]string `json:"actions"`
	Message  string            `json:"message"`
	LogIndex int64             `json:"log_index"`
}

// escalate counts, per item and context, the consecutive runs with a
// price alert, and for those at EscalateAfter or more names the pricing
// use-cases to halt, halting them when AutoHalt is set. Every escalation
// is appended to the audit log (kind "escalation"). Streaks live in
// memory: a restart starts them again, which delays a halt but never
// causes one.
func (m *Monitor) escalate(ctx context.Context, cat *catalog.Catalog, now time.Time, rep *Report) error {
	alerted := map[priceKey]bool{}
	if rep.Price.Scan != nil {
		for _, a := range rep.Price.Scan.Alerts {
			alerted[priceKey{a.Item, a.Context}] = true
		}
	}
	for k := range m.streaks {
		if !alerted[k] {
			delete(m.streaks, k)
		}
	}
	var due []priceKey
	for k := range alerted {
		m.streaks[k]++
		if m.streaks[k] >= m.opts.EscalateAfter {
			due = append(due, k)
		}
	}
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(a, b priceKey) int {
		return strings.Compare(a.item+"\x00"+a.context, b.item+"\x00"+b.context)
	})
	var pricing []string
	for _, u := range cat.UseCases {
		for _, t := range pricingTags {
			if slices.Contains(u.Tags, t) {
				pricing = append(pricing, u.ID)
				break
			}
		}
	}
	for _, k := range due {
		e := Escalation{Kind: "price", Item: k.item, Context: k.context, Runs: m.streaks[k], UseCases: []string{}, Actions: map[string]string{}}
		// A context that names a pricing use-case says which one showed
		// the price; otherwise any of them may have.
		if len(pricing) > 0 {
			e.UseCases = pricing
		}
		if slices.Contains(pricing, k.context) {
			e.UseCases = []string{k.context}
		}
		if len(e.UseCases) == 0 {
			e.Message = fmt.Sprintf("item %s in context %q was priced differently across segments in %d consecutive runs, but no use-case tagged pricing or terms is declared: find what sets these prices", k.item, k.context, e.Runs)
		} else {
			e.Message = fmt.Sprintf("item %s in context %q was priced differently across segments in %d consecutive runs (at least %d): halt %s (FP-1)",
				k.item, k.context, e.Runs, m.opts.EscalateAfter, strings.Join(e.UseCases, ", "))
		}
		for _, uc := range e.UseCases {
			e.Actions[uc] = "recommend_halt"
			if _, halted := m.deps.Point.Suspended(haltKind, uc); halted {
				e.Actions[uc] = "already_halted"
				continue
			}
			if !m.opts.AutoHalt {
				continue
			}
			reason := fmt.Sprintf("monitor report %s: price discrimination (FP-1) on item %s, context %q, in %d consecutive runs", rep.ID, k.item, k.context, e.Runs)
			if err := m.deps.Halter.Halt(ctx, autoHalter, uc, reason); err != nil {
				e.Actions[uc] = "halt_failed"
				rep.Notes = append(rep.Notes, fmt.Sprintf("automatic halt of %s failed: %s", uc, portrait.ErrorMessage(err)))
				continue
			}
			e.Actions[uc] = "halted"
		}
		rep.Escalations = append(rep.Escalations, e)
	}
	recs := make([]audit.Record, len(rep.Escalations))
	for i, e := range rep.Escalations {
		recs[i] = audit.Record{Kind: "escalation", Time: now, Actor: actor(engine), Action: "price_discrimination", Codes: []string{"FP-1"},
			Detail: map[string]any{"item": e.Item, "context": e.Context, "runs": e.Runs, "usecases": e.UseCases, "actions": e.Actions, "report": rep.ID}}
	}
	var first int64
	err := m.deps.Store.Update(ctx, func(ctx context.Context, tx portrait.Tx) error {
		var err error
		first, err = m.deps.Log.Append(ctx, tx, recs...)
		return err
	})
	if err != nil {
		return fmt.Errorf("monitor: record escalations: %w", err)
	}
	for i := range rep.Escalations {
		rep.Escalations[i].LogIndex = first + int64(i)
	}
	return nil
}
